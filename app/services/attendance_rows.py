"""Attendance rows: the rules that turn one attendee's events into figures, and writing them.

The rules for one attendee's heartbeats, in time order, within one visit (a join or a leave
starts a new visit, and so does a silence longer than `VISIT_GAP`):
* every heartbeat moves `furthest_seconds` up to its position; a playing one adds the minute of
  its position to `minutes`;
* two consecutive playing heartbeats add the time between them to `watched_seconds`, at most
  `PAIR_CAP` (two heartbeat intervals: a browser may report late from a background tab), and,
  when they are at most `PAIR_CAP` apart and the position moved forward no faster than twice
  real time (not a seek), every minute between their positions to `minutes`.
A leave moves `furthest_seconds` up to where the player was; joins set `first_join_at`; joins,
heartbeats and leaves move `last_seen_at`. `stayed_to_end` is `furthest_seconds` reaching
`STAYED_SHARE` of the video's length.

A change is added to its row by one `INSERT ... ON CONFLICT DO UPDATE` for many rows: counters
are added, times and positions compared and minute lists united inside the statement, so two
processes updating one row never lose each other's changes. `rebuild` computes the rows afresh
from the stored events (chat messages and answers from their own tables) with the same rules.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app.models import (
    AnalyticsEvent,
    Attendance,
    ChatMessage,
    InteractionResponse,
    Webinar,
    WebinarSession,
)
from app.services import analytics_events
from app.services.rows import insert_statements

JOIN = "join"
HEARTBEAT = "heartbeat"
LEAVE = "leave"
OFFER_CLICK = "offer_click"
LINK_CLICK = "link_click"
DOWNLOAD = "download"
# How often players report where they are (the wire protocol's HEARTBEAT_SECONDS).
HEARTBEAT_SECONDS = 20.0
PAIR_CAP = 2 * HEARTBEAT_SECONDS
VISIT_GAP = timedelta(minutes=10)
STAYED_SHARE = 0.95
# A session's length when its webinar has no (ready) video, as the room assumes.
DEFAULT_DURATION_SECONDS = 3600.0
_DURATION_TTL = 60.0
_REBUILD_SESSIONS = 20


# --- one attendee's change, and the rules that make it ------------------------------------------


@dataclass
class Change:
    """What to add to one Attendance row (all of it, for a rebuilt row)."""

    webinar_id: int
    session_id: int
    registrant_id: int
    contact_id: int
    first_join_at: datetime | None = None
    last_seen_at: datetime | None = None
    watched_seconds: float = 0.0
    furthest_seconds: float = 0.0
    minutes: set[int] = field(default_factory=set)
    clicked_offer: bool = False
    clicked: set[int] = field(default_factory=set)
    chat_messages: int = 0
    responses: int = 0
    downloads: int = 0

    def joined(self, at: datetime) -> None:
        """The attendee came into the room."""
        if self.first_join_at is None or at < self.first_join_at:
            self.first_join_at = at
        self.seen(at)

    def seen(self, at: datetime) -> None:
        """The attendee was in the room at this time."""
        if self.last_seen_at is None or at > self.last_seen_at:
            self.last_seen_at = at

    def reached(self, seconds: float | None) -> None:
        """The attendee's player was at this position."""
        if seconds is not None and math.isfinite(seconds) and seconds > self.furthest_seconds:
            self.furthest_seconds = seconds

    def merge(self, other: Change) -> None:
        """Add another change of the same attendee to this one."""
        if other.first_join_at is not None:
            self.joined(other.first_join_at)
        if other.last_seen_at is not None:
            self.seen(other.last_seen_at)
        self.watched_seconds += other.watched_seconds
        self.reached(other.furthest_seconds)
        self.minutes |= other.minutes
        self.clicked_offer = self.clicked_offer or other.clicked_offer
        self.clicked |= other.clicked
        self.chat_messages += other.chat_messages
        self.responses += other.responses
        self.downloads += other.downloads


@dataclass(frozen=True)
class Beat:
    """One heartbeat: when, where the player was, and whether it was playing."""

    at: datetime
    seconds: float
    playing: bool


def minute_of(seconds: float) -> int:
    """The video minute (0-based) a position falls in."""
    return max(int(seconds // 60), 0) if math.isfinite(seconds) else 0


@dataclass
class Visit:
    """The previous heartbeat of one attendee's current visit."""

    last: Beat | None = None

    def beat(self, change: Change, beat: Beat) -> None:
        """Apply one heartbeat to the change (the rules in the module's docstring)."""
        previous, self.last = self.last, beat
        change.seen(beat.at)
        change.reached(beat.seconds)
        if not beat.playing:
            return
        change.minutes.add(minute_of(beat.seconds))
        if previous is None or not previous.playing:
            return
        gap = (beat.at - previous.at).total_seconds()
        if gap <= 0 or gap > VISIT_GAP.total_seconds():
            return
        change.watched_seconds += min(gap, PAIR_CAP)
        moved = beat.seconds - previous.seconds
        if gap <= PAIR_CAP and 0 <= moved <= 2 * gap + 1:
            change.minutes.update(range(minute_of(previous.seconds), minute_of(beat.seconds) + 1))

    def restart(self) -> None:
        """A join or a leave: the next heartbeat starts a new visit."""
        self.last = None


async def apply_changes(
    changes: Sequence[Change],
    connection: BaseDBAsyncClient | None = None,
    durations: dict[int, float] | None = None,
) -> None:
    """Add changes to their Attendance rows (one statement per few thousand rows)."""
    if not changes:
        return
    if durations is None:
        durations = await video_durations({change.webinar_id for change in changes})
    await _upsert(connection or connections.get("default"), changes, durations)


# --- writing rows -------------------------------------------------------------------------------

_COLUMNS = (
    "webinar_id",
    "session_id",
    "registrant_id",
    "contact_id",
    "first_join_at",
    "last_seen_at",
    "watched_seconds",
    "furthest_seconds",
    "minutes",
    "stayed_to_end",
    "clicked_offer",
    "chat_messages",
    "responses",
    "downloads",
    "clicked",
)


def _later(column: str, earlier: bool = False) -> str:
    sign = "<" if earlier else ">"
    return (
        f'CASE WHEN excluded."{column}" IS NOT NULL AND ("attendance"."{column}" IS NULL '
        f'OR excluded."{column}" {sign} "attendance"."{column}") '
        f'THEN excluded."{column}" ELSE "attendance"."{column}" END'
    )


def _union(column: str, postgres: bool) -> str:
    # Only constant column names are put into the SQL. Most changes add nothing new (three
    # heartbeats fall in each minute, few click anything), so the row's list is kept as it is
    # without building the union whenever that is cheap to see.
    existing, added = f'"attendance"."{column}"', f'excluded."{column}"'
    if postgres:
        return (
            f"CASE WHEN {existing} @> {added} THEN {existing} ELSE "  # noqa: S608
            f"(SELECT COALESCE(jsonb_agg(v ORDER BY v), '[]'::jsonb) FROM ("
            f"SELECT jsonb_array_elements({existing}) AS v "
            f"UNION SELECT jsonb_array_elements({added})) AS u) END"
        )
    return (
        f"CASE WHEN {added} = '[]' OR {added} = {existing} THEN {existing} ELSE "  # noqa: S608
        "(SELECT json_group_array(value) FROM (SELECT value FROM "
        f"json_each({existing}) UNION SELECT value FROM json_each({added}) "
        "ORDER BY value)) END"
    )


@functools.cache
def _update_clause(postgres: bool) -> str:
    def added(column: str) -> str:
        return f'"attendance"."{column}" + excluded."{column}"'

    def either(column: str) -> str:
        return f'"attendance"."{column}" OR excluded."{column}"'

    furthest = (
        'CASE WHEN excluded."furthest_seconds" > "attendance"."furthest_seconds" '
        'THEN excluded."furthest_seconds" ELSE "attendance"."furthest_seconds" END'
    )
    sets = {
        "first_join_at": _later("first_join_at", earlier=True),
        "last_seen_at": _later("last_seen_at"),
        "watched_seconds": added("watched_seconds"),
        "furthest_seconds": furthest,
        "minutes": _union("minutes", postgres),
        "stayed_to_end": either("stayed_to_end"),
        "clicked_offer": either("clicked_offer"),
        "chat_messages": added("chat_messages"),
        "responses": added("responses"),
        "downloads": added("downloads"),
        "clicked": _union("clicked", postgres),
    }
    return ", ".join(f'"{column}" = {value}' for column, value in sets.items())


def stayed(furthest_seconds: float, duration_seconds: float) -> bool:
    """Whether someone who got this far stayed to the end (STAYED_SHARE of the video)."""
    return furthest_seconds >= STAYED_SHARE * duration_seconds


def _values(change: Change, duration: float) -> tuple[Any, ...]:
    """The change as the values of `_COLUMNS`, in that order."""
    return (
        change.webinar_id,
        change.session_id,
        change.registrant_id,
        change.contact_id,
        change.first_join_at,
        change.last_seen_at,
        round(change.watched_seconds, 3),
        change.furthest_seconds,
        sorted(change.minutes),
        stayed(change.furthest_seconds, duration),
        change.clicked_offer,
        change.chat_messages,
        change.responses,
        change.downloads,
        sorted(change.clicked),
    )


def _placeholders(postgres: bool, start: int, count: int) -> str:
    if postgres:
        return ", ".join(f"${start + i + 1}" for i in range(count))
    return ", ".join("?" * count)


async def _upsert(
    connection: BaseDBAsyncClient, changes: Sequence[Change], durations: dict[int, float]
) -> None:
    """Add each change to its row (created when missing), many rows per statement.

    On PostgreSQL the rows go as one array per column: the statement reads the same for any
    number of rows, so it is parsed and planned once per connection, not at every flush.
    """
    if not changes:
        return
    dialect = connection.capabilities.dialect
    on_conflict = 'ON CONFLICT ("session_id", "registrant_id") DO UPDATE SET ' + _update_clause(
        dialect == "postgres"
    )
    values = [
        _values(change, durations.get(change.webinar_id, DEFAULT_DURATION_SECONDS))
        for change in changes
    ]
    for sql, parameters in insert_statements(
        dialect, Attendance, _COLUMNS, values, returning=(), on_conflict=on_conflict
    ):
        await connection.execute_query(sql, parameters)


# Per event loop, as a process has one (and each test its own database and loop).
_durations: dict[asyncio.AbstractEventLoop, dict[int, tuple[float, float]]] = {}


def _known_durations() -> dict[int, tuple[float, float]]:
    loop = asyncio.get_running_loop()
    found = _durations.get(loop)
    if found is None:
        for other in [known for known in _durations if known.is_closed()]:
            del _durations[other]
        found = _durations[loop] = {}
    return found


async def video_durations(webinar_ids: Iterable[int]) -> dict[int, float]:
    """Each webinar's video length in seconds (DEFAULT_DURATION_SECONDS without a video).

    Read at most once a minute per webinar: the heartbeat flush asks every second.
    """
    wanted = set(webinar_ids)
    known = _known_durations()
    now = time.monotonic()
    answer = {
        webinar_id: known[webinar_id][1]
        for webinar_id in wanted
        if webinar_id in known and now - known[webinar_id][0] < _DURATION_TTL
    }
    missing = wanted - answer.keys()
    if missing:
        found = dict(
            await Webinar.filter(id__in=missing).values_list("id", "video__duration_seconds")
        )
        for webinar_id in missing:
            seconds = found.get(webinar_id)
            if seconds is None or not math.isfinite(seconds) or seconds <= 0:
                seconds = DEFAULT_DURATION_SECONDS
            answer[webinar_id] = float(seconds)
            known[webinar_id] = (now, float(seconds))
    return answer


# --- rebuilding rows from the events ------------------------------------------------------------

_ROOM_KINDS = (JOIN, HEARTBEAT, LEAVE, OFFER_CLICK, LINK_CLICK, DOWNLOAD)


def as_datetime(value: Any) -> datetime:
    """A timestamp as the database driver returned it, as an aware datetime."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


async def rebuild(session_id: int | None = None) -> int:
    """Compute Attendance rows afresh from the stored events; how many rows were written.

    Rebuilds one session, or every session that has events (a session whose events all
    passed the retention period keeps its rows). Without a session, the daily visitor counts
    are rebuilt from the landing-page views too.
    """
    connection = connections.get("default")
    if session_id is None:
        found: list[Any] = (
            await AnalyticsEvent.filter(session_id__isnull=False, kind__in=_ROOM_KINDS)
            .distinct()
            .values_list("session_id", flat=True)
        )
        sessions = sorted({int(value) for value in found})
    else:
        sessions = [session_id]
    written = 0
    for first in range(0, len(sessions), _REBUILD_SESSIONS):
        written += await _rebuild_sessions(connection, sessions[first : first + _REBUILD_SESSIONS])
    if session_id is None:
        await analytics_events.rebuild_visitors()
    return written


async def _rebuild_sessions(connection: BaseDBAsyncClient, sessions: list[int]) -> int:
    webinar_of = dict(await WebinarSession.filter(id__in=sessions).values_list("id", "webinar_id"))
    changes: dict[tuple[int, int], Change] = {}
    postgres = connection.capabilities.dialect == "postgres"
    in_sessions = _placeholders(postgres, 0, len(sessions))
    in_kinds = _placeholders(postgres, len(sessions), len(_ROOM_KINDS))
    rows = await connection.execute_query(
        "SELECT session_id, registrant_id, contact_id, webinar_id, kind, at, video_seconds, "  # noqa: S608
        f"data FROM analytics_event WHERE session_id IN ({in_sessions}) "
        f"AND kind IN ({in_kinds}) AND registrant_id IS NOT NULL "
        "ORDER BY session_id, registrant_id, at, id",
        [*sessions, *_ROOM_KINDS],
    )
    visit = Visit()
    current: tuple[int, int] | None = None
    for row in rows[1]:
        key = (int(row[0]), int(row[1]))
        if key != current:
            current, visit = key, Visit()
        change = changes.get(key)
        if change is None:
            webinar_id = webinar_of.get(key[0], row[3])
            change = changes[key] = Change(int(webinar_id or 0), key[0], key[1], int(row[2] or 0))
        kind, at, seconds = row[4], as_datetime(row[5]), row[6]
        data = row[7] if isinstance(row[7], dict) else json.loads(row[7] or "{}")
        if kind == HEARTBEAT:
            visit.beat(change, Beat(at, float(seconds or 0.0), data.get("playing") is True))
        elif kind == JOIN:
            change.joined(at)
            visit.restart()
        elif kind == LEAVE:
            change.seen(at)
            change.reached(seconds)
            visit.restart()
        else:
            interaction_id = data.get("interaction_id")
            if isinstance(interaction_id, int):
                change.clicked.add(interaction_id)
            change.clicked_offer = change.clicked_offer or kind == OFFER_CLICK
            change.downloads += kind == DOWNLOAD
    await _add_room_rows(changes, sessions, webinar_of)
    durations = await video_durations({change.webinar_id for change in changes.values()})
    async with in_transaction() as transaction:
        await Attendance.filter(session_id__in=sessions).using_db(transaction).delete()
        await _upsert(transaction, list(changes.values()), durations)
    return len(changes)


async def _add_room_rows(
    changes: dict[tuple[int, int], Change], sessions: list[int], webinar_of: dict[int, int]
) -> None:
    """Count each attendee's chat messages and answers from their own tables."""
    chats = await ChatMessage.filter(
        session_id__in=sessions,
        staff_id__isnull=True,
        automatic=False,
        registrant_id__isnull=False,
    ).values_list("session_id", "registrant_id", "registrant__contact_id")
    answers = await InteractionResponse.filter(session_id__in=sessions).values_list(
        "session_id", "registrant_id", "registrant__contact_id"
    )
    for counted, rows in (("chat_messages", chats), ("responses", answers)):
        for session_id, registrant_id, contact_id in rows:
            key = (int(session_id), int(registrant_id))
            change = changes.get(key)
            if change is None:
                change = changes[key] = Change(
                    webinar_of.get(key[0], 0), key[0], key[1], int(contact_id)
                )
            setattr(change, counted, getattr(change, counted) + 1)
