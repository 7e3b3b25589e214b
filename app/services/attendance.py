"""Who is in the room and what each attendee did there: events, online counts, Attendance rows.

Joins, leaves and clicks are written at once (the team's "has this attendee left?" reads them):
`record` returns once its event is in the database. Events recorded within `GROUP_WAIT` (10 ms)
of each other share one multi-row INSERT, so a crowd joining at the start costs a statement per
group rather than one per person. Heartbeats arrive every few seconds from every player, so they are
buffered and written together, one multi-row INSERT per flush. Someone counts as online in a
session while their latest event there is a join or a heartbeat no older than `ONLINE_WINDOW`;
a process that dies without writing leaves therefore stops counting its attendees soon after.

Each attendee's `Attendance` row (one per registrant and session) is kept up to date from the
same calls: joins, heartbeats, leaves, clicks, chat messages and answers add to a pending change
per attendee in memory (nothing is read or written for them), and the flush that writes the
heartbeats applies every pending change with one statement in the same transaction (the rules
are in `app.services.attendance_rows`). Pending changes a crashed process never wrote are
restored by `rebuild`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app.models import AnalyticsEvent
from app.services.attendance_rows import (
    DOWNLOAD,
    HEARTBEAT,
    JOIN,
    LEAVE,
    LINK_CLICK,
    OFFER_CLICK,
    VISIT_GAP,
    Beat,
    Change,
    Visit,
    apply_changes,
    rebuild,
    video_durations,
)
from app.services.rows import any_of, insert_rows, marks

log = logging.getLogger("encore.attendance")

__all__ = [
    "DOWNLOAD",
    "HEARTBEAT",
    "JOIN",
    "LEAVE",
    "LINK_CLICK",
    "OFFER_CLICK",
    "HeartbeatBuffer",
    "Presence",
    "is_online",
    "last_position",
    "note_chat",
    "note_download",
    "note_response",
    "online_counts",
    "online_registrants",
    "rebuild",
    "record",
]

# Two missed heartbeats (sent every 20 s) and a little slack.
ONLINE_WINDOW = timedelta(seconds=45)
# The events that say whether someone is in the room.
ONLINE_KINDS = (JOIN, HEARTBEAT, LEAVE)
# How long the first event recorded waits for others to share its INSERT.
GROUP_WAIT = 0.01


@dataclass(frozen=True)
class Presence:
    """Who an attendee connection is, for the events it writes."""

    webinar_id: int
    session_id: int
    registrant_id: int
    contact_id: int


class _Event(NamedTuple):
    """One event to write, as the values of the AnalyticsEvent fields of the same names."""

    kind: str
    at: datetime
    webinar_id: int
    session_id: int
    registrant_id: int
    contact_id: int
    video_seconds: float | None
    data: dict[str, Any]


_EVENT_FIELDS = _Event._fields


def _event(kind: str, who: Presence, at: datetime, seconds: float | None, **data: Any) -> _Event:
    return _Event(
        kind, at, who.webinar_id, who.session_id, who.registrant_id, who.contact_id, seconds, data
    )


async def _insert(connection: BaseDBAsyncClient, events: list[_Event]) -> None:
    """Write events with one statement (one per few thousand on SQLite), without model objects."""
    await insert_rows(connection, AnalyticsEvent, _EVENT_FIELDS, events, returning=())


# --- the pending changes of this process --------------------------------------------------------


class _Pending:
    """Changes not yet written, and each attendee's visit, for one event loop."""

    def __init__(self) -> None:
        self.changes: dict[tuple[int, int], Change] = {}
        self.visits: dict[tuple[int, int], Visit] = {}
        self.pruned = time.monotonic()
        self.group: _Group | None = None  # events being gathered for one INSERT

    def change(self, who: Presence) -> Change:
        key = (who.session_id, who.registrant_id)
        found = self.changes.get(key)
        if found is None:
            found = self.changes[key] = Change(
                who.webinar_id, who.session_id, who.registrant_id, who.contact_id
            )
        return found

    def visit(self, who: Presence) -> Visit:
        key = (who.session_id, who.registrant_id)
        found = self.visits.get(key)
        if found is None:
            found = self.visits[key] = Visit()
        return found

    def take(self) -> list[Change]:
        taken, self.changes = list(self.changes.values()), {}
        return taken

    def give_back(self, changes: Iterable[Change]) -> None:
        for change in changes:
            key = (change.session_id, change.registrant_id)
            newer = self.changes.get(key)
            self.changes[key] = change
            if newer is not None:
                change.merge(newer)

    def prune(self, now: datetime) -> None:
        """Forget visits silent for longer than VISIT_GAP (their next heartbeat starts anew)."""
        if time.monotonic() - self.pruned < 60:
            return
        self.pruned = time.monotonic()
        stale = [
            key
            for key, visit in self.visits.items()
            if visit.last is None or now - visit.last.at > VISIT_GAP
        ]
        for key in stale:
            del self.visits[key]


@dataclass
class _Group:
    """Events recorded close together, written by one INSERT; `done` when it has run."""

    done: asyncio.Future[None]
    events: list[_Event]


async def _written(event: _Event) -> None:
    """Write the event with the others recorded within GROUP_WAIT; return once it is stored."""
    pending = _here()
    group = pending.group
    if group is None:
        loop = asyncio.get_running_loop()
        group = pending.group = _Group(loop.create_future(), [])
        loop.call_later(GROUP_WAIT, _start_writing, pending, group)
    group.events.append(event)
    await asyncio.shield(group.done)


def _start_writing(pending: _Pending, group: _Group) -> None:
    pending.group = None  # later events start the next group
    task = asyncio.get_running_loop().create_task(_write_group(group))
    _writing.add(task)
    task.add_done_callback(_writing.discard)


async def _write_group(group: _Group) -> None:
    try:
        await _insert(connections.get("default"), group.events)
    except Exception as error:
        group.done.set_exception(error)
        group.done.exception()  # each waiter gets it; none left unseen if a waiter went away
    else:
        group.done.set_result(None)


# Group writes under way (the loop keeps only weak references to tasks).
_writing: set[asyncio.Task[None]] = set()
_pending: dict[asyncio.AbstractEventLoop, _Pending] = {}


def _here() -> _Pending:
    """The pending changes of the running event loop (tests run one loop each)."""
    loop = asyncio.get_running_loop()
    found = _pending.get(loop)
    if found is None:
        for other in [known for known in _pending if known.is_closed()]:
            del _pending[other]
        found = _pending[loop] = _Pending()
    return found


async def record(
    kind: str, who: Presence, at: datetime, seconds: float | None = None, **data: Any
) -> None:
    """Write one event now (joins, leaves, clicks); its Attendance change waits for a flush."""
    await _written(_event(kind, who, at, seconds, **data))
    pending = _here()
    if kind == JOIN:
        pending.change(who).joined(at)
        pending.visit(who).restart()
    elif kind == LEAVE:
        change = pending.change(who)
        change.seen(at)
        change.reached(seconds)
        pending.visit(who).restart()
    elif kind in (OFFER_CLICK, LINK_CLICK):
        change = pending.change(who)
        change.clicked_offer = change.clicked_offer or kind == OFFER_CLICK
        interaction_id = data.get("interaction_id")
        if isinstance(interaction_id, int):
            change.clicked.add(interaction_id)


def note_chat(who: Presence) -> None:
    """An attendee's chat message was stored (counted with the next flush)."""
    _here().change(who).chat_messages += 1


def note_response(who: Presence, *, question: bool = False) -> None:
    """An attendee's answer was stored; a question to the presenter is a chat message too."""
    change = _here().change(who)
    change.responses += 1
    if question:
        change.chat_messages += 1


async def note_download(
    *,
    webinar_id: int,
    session_id: int | None,
    registrant_id: int,
    contact_id: int,
    interaction_id: int,
) -> None:
    """A registrant fetched a download: counted in their row now (no room flush may follow)."""
    if session_id is None:
        return
    change = Change(webinar_id, session_id, registrant_id, contact_id, downloads=1)
    change.clicked.add(interaction_id)
    await apply_changes([change])


class HeartbeatBuffer:
    """Heartbeats waiting to be written; `flush` writes them in one statement."""

    def __init__(self) -> None:
        self._pending: list[_Event] = []

    def add(self, who: Presence, at: datetime, seconds: float, *, playing: bool) -> None:
        """Keep one heartbeat for the next flush."""
        self._pending.append(_event(HEARTBEAT, who, at, seconds, playing=playing))
        pending = _here()
        pending.visit(who).beat(pending.change(who), Beat(at, seconds, playing))

    def __len__(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write the heartbeats and every pending Attendance change in one transaction.

        On a database error both are kept for the next flush.
        """
        pending = _here()
        changes = pending.take()
        if not self._pending and not changes:
            return 0
        batch, self._pending = self._pending, []
        try:
            durations = await video_durations({change.webinar_id for change in changes})
            async with in_transaction() as connection:
                await _insert(connection, batch)
                await apply_changes(changes, connection, durations)
        except Exception:
            # Kept, bounded: a long outage must not grow the buffer without limit.
            self._pending = (batch + self._pending)[-50_000:]
            pending.give_back(changes)
            raise
        if batch:
            pending.prune(batch[-1].at)
        return len(batch)


# Who is online: each attendee's latest room event in the window, where it is not a leave. The
# database answers (one row per session, or per person online) rather than the web process
# reading every recent event of the crowd; the hub counts once a second while a session fills.
_ONLINE_SQL = """
SELECT {wanted} FROM (
    SELECT session_id, registrant_id, kind, ROW_NUMBER() OVER (
        PARTITION BY session_id, registrant_id ORDER BY at DESC, id DESC) AS recency
    FROM analytics_event
    WHERE session_id {sessions} AND kind {kinds} AND at >= {since}
      AND registrant_id IS NOT NULL
) latest
WHERE recency = 1 AND kind <> {leave}
{grouped}
"""
_AT = AnalyticsEvent._meta.fields_map["at"]


async def _online(session_ids: list[int], now: datetime, *, counted: bool) -> list[Any]:
    """(session, count) rows when `counted`, else (session, registrant) of everyone online."""
    connection = connections.get("default")
    dialect = connection.capabilities.dialect
    sessions, session_values = any_of(dialect, 0, session_ids, sql_type="int")
    kinds, kind_values = any_of(dialect, len(session_values), ONLINE_KINDS, sql_type="text")
    since, leave = marks(dialect, len(session_values) + len(kind_values), 2).split(", ")
    sql = _ONLINE_SQL.format(
        wanted="session_id, COUNT(*)" if counted else "session_id, registrant_id",
        grouped="GROUP BY session_id" if counted else "",
        sessions=sessions,
        kinds=kinds,
        since=since,
        leave=leave,
    )
    values = [
        *session_values,
        *kind_values,
        _AT.to_db_value(now - ONLINE_WINDOW, AnalyticsEvent),
        LEAVE,
    ]
    _count, rows = await connection.execute_query(sql, values)
    return list(rows)


async def online_counts(session_ids: Iterable[int], now: datetime) -> dict[int, int]:
    """Attendees online now per session (0 for sessions nobody is in)."""
    wanted = list(dict.fromkeys(session_ids))
    counts = dict.fromkeys(wanted, 0)
    if wanted:
        for session_id, online in await _online(wanted, now, counted=True):
            counts[int(session_id)] = int(online)
    return counts


async def online_registrants(session_id: int, now: datetime) -> set[int]:
    """The registrants online in one session now."""
    return {int(row[1]) for row in await _online([session_id], now, counted=False)}


async def is_online(session_id: int, registrant_id: int, now: datetime) -> bool:
    """Whether this attendee is in the room now (on any web process)."""
    latest: Any = (
        await AnalyticsEvent.filter(
            session_id=session_id,
            registrant_id=registrant_id,
            kind__in=ONLINE_KINDS,
            at__gte=now - ONLINE_WINDOW,
        )
        .order_by("-at", "-id")
        .first()
        .values_list("kind", flat=True)
    )
    return latest is not None and latest != LEAVE


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
