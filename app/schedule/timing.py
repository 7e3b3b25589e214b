"""Timing around one session: replays, capacity overflow, playback position and reminders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from .rules import ScheduleRules, require_aware
from .slots import Slot


class PlaybackState(StrEnum):
    """Where a session is for someone in the room."""

    WAITING = "waiting"
    LIVE = "live"
    ENDED = "ended"


@dataclass(frozen=True)
class Playback:
    """A viewer's place in a session at one instant."""

    state: PlaybackState
    position: float  # seconds into the video: 0 while waiting, the full duration once ended
    starts_in: float  # seconds until the start; 0 once it has started


@dataclass(frozen=True)
class Reminder:
    """One reminder to send: `before` the start (negative: after it), due at `due_at`."""

    before: timedelta
    due_at: datetime


def replay_window(
    session_start: datetime, duration: timedelta, rules: ScheduleRules
) -> tuple[datetime, datetime] | None:
    """When the replay of a session opens (its end) and expires, or None without replays."""
    require_aware(session_start, "session_start")
    if rules.replay is None:
        return None
    opens = session_start + duration
    return opens, opens + rules.replay


def choose_session_with_capacity(
    slots: Sequence[Slot], registered_counts: Mapping[datetime, int], capacity: int | None
) -> Slot | None:
    """The first slot with a free seat, the chosen one first; None when every one is full."""
    # `slots` runs from the visitor's choice onwards, so a full session overflows to the next.
    for slot in slots:
        if capacity is None or registered_counts.get(slot.starts_at, 0) < capacity:
            return slot
    return None


def playback_position(session_start: datetime, now: datetime, duration: timedelta) -> Playback:
    """Where a viewer arriving at `now` is: late joiners join in progress, clamped to the video."""
    require_aware(session_start, "session_start")
    require_aware(now, "now")
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {duration}")
    elapsed = (now - session_start).total_seconds()
    if elapsed < 0:
        return Playback(PlaybackState.WAITING, 0.0, -elapsed)
    if elapsed < duration.total_seconds():
        return Playback(PlaybackState.LIVE, elapsed, 0.0)
    return Playback(PlaybackState.ENDED, duration.total_seconds(), 0.0)


def reminder_plan(
    session_start: datetime,
    offsets: Iterable[timedelta],
    now: datetime,
    registered_at: datetime,
) -> list[Reminder]:
    """The reminders still to send for one registration, earliest first."""
    require_aware(session_start, "session_start")
    require_aware(now, "now")
    require_aware(registered_at, "registered_at")
    # A reminder whose moment had passed at registration is never planned (nobody wants "starts
    # in 24 hours" an hour before), and when re-planning after an edit, `now` keeps one that came
    # due meanwhile from going out late.
    after = max(now, registered_at)
    plan = (
        Reminder(before, session_start - before) for before in sorted(set(offsets), reverse=True)
    )
    return [reminder for reminder in plan if reminder.due_at > after]
