"""Who is in the room: join, heartbeat and leave events, and the online counts they give.

Joins and leaves are written at once (one each per connection, and the team's "has this
attendee left?" reads them). Heartbeats arrive every few seconds from every player, so they are
buffered and written together, one multi-row INSERT per flush. Someone counts as online in a
session while their latest event there is a join or a heartbeat no older than `ONLINE_WINDOW`;
a process that dies without writing leaves therefore stops counting its attendees soon after.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise import connections

from app.models import AnalyticsEvent
from app.services.rows import insert_many

log = logging.getLogger("encore.attendance")

JOIN = "join"
HEARTBEAT = "heartbeat"
LEAVE = "leave"
OFFER_CLICK = "offer_click"
LINK_CLICK = "link_click"
# Two missed heartbeats (sent every 20 s) and a little slack.
ONLINE_WINDOW = timedelta(seconds=45)


@dataclass(frozen=True)
class Presence:
    """Who an attendee connection is, for the events it writes."""

    webinar_id: int
    session_id: int
    registrant_id: int
    contact_id: int


def _event(
    kind: str, who: Presence, at: datetime, seconds: float | None, **data: Any
) -> AnalyticsEvent:
    return AnalyticsEvent(
        kind=kind,
        at=at,
        webinar_id=who.webinar_id,
        session_id=who.session_id,
        registrant_id=who.registrant_id,
        contact_id=who.contact_id,
        video_seconds=seconds,
        data=data,
    )


async def record(
    kind: str, who: Presence, at: datetime, seconds: float | None = None, **data: Any
) -> None:
    """Write one event now (joins, leaves, clicks)."""
    await _event(kind, who, at, seconds, **data).save()


class HeartbeatBuffer:
    """Heartbeats waiting to be written; `flush` writes them in one statement."""

    def __init__(self) -> None:
        self._pending: list[AnalyticsEvent] = []

    def add(self, who: Presence, at: datetime, seconds: float, *, playing: bool) -> None:
        """Keep one heartbeat for the next flush."""
        self._pending.append(_event(HEARTBEAT, who, at, seconds, playing=playing))

    def __len__(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write what is pending; on a database error the rows are kept for the next flush."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, []
        try:
            await insert_many(connections.get("default"), batch, returning=())
        except Exception:
            # Kept, bounded: a long outage must not grow the buffer without limit.
            self._pending = (batch + self._pending)[-50_000:]
            raise
        return len(batch)


async def online_counts(session_ids: Iterable[int], now: datetime) -> dict[int, int]:
    """Attendees online now per session (0 for sessions nobody is in)."""
    wanted = list(dict.fromkeys(session_ids))
    counts = dict.fromkeys(wanted, 0)
    for session_id, registrants in (await _online(wanted, now)).items():
        counts[session_id] = len(registrants)
    return counts


async def online_registrants(session_id: int, now: datetime) -> set[int]:
    """The registrants online in one session now."""
    return (await _online([session_id], now)).get(session_id, set())


async def is_online(session_id: int, registrant_id: int, now: datetime) -> bool:
    """Whether this attendee is in the room now (on any web process)."""
    latest: Any = (
        await AnalyticsEvent.filter(
            session_id=session_id,
            registrant_id=registrant_id,
            kind__in=(JOIN, HEARTBEAT, LEAVE),
            at__gte=now - ONLINE_WINDOW,
        )
        .order_by("-at", "-id")
        .first()
        .values_list("kind", flat=True)
    )
    return latest is not None and latest != LEAVE


async def _online(session_ids: list[int], now: datetime) -> dict[int, set[int]]:
    if not session_ids:
        return {}
    rows = (
        await AnalyticsEvent.filter(
            session_id__in=session_ids,
            kind__in=(JOIN, HEARTBEAT, LEAVE),
            at__gte=now - ONLINE_WINDOW,
        )
        .order_by("at", "id")
        .values_list("session_id", "registrant_id", "kind")
    )
    latest: dict[tuple[int, int], str] = {}
    for session_id, registrant_id, kind in rows:
        if registrant_id is not None:
            latest[(int(session_id), int(registrant_id))] = str(kind)
    online: dict[int, set[int]] = {}
    for (session_id, registrant_id), kind in latest.items():
        if kind != LEAVE:
            online.setdefault(session_id, set()).add(registrant_id)
    return online


async def last_position(session_id: int, registrant_id: int) -> float | None:
    """Where this attendee's player was at their latest heartbeat or leave in this session."""
    value: Any = (
        await AnalyticsEvent.filter(
            session_id=session_id,
            registrant_id=registrant_id,
            kind__in=(HEARTBEAT, LEAVE),
            video_seconds__isnull=False,
        )
        .order_by("-at", "-id")
        .first()
        .values_list("video_seconds", flat=True)
    )
    return None if value is None else float(value)
