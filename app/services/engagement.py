"""Engagement figures for the dashboards: funnel, attendance, drop-off, interactions, chat.

Everything is computed from rows kept up to date as things happen, never from the raw events:
`Attendance` (one row per attendee and session), `DailyVisitor` (landing-page visitors per day),
`Registrant`, `InteractionResponse` and `ChatMessage`. Each result says how each of its figures
is computed in `FORMULAS` (plain English, shown on the pages).

Filters choose a webinar, one session, and a range of session start dates (UTC, both days
included). Landing-page visitors belong to a webinar, not to a session: with a session chosen
they are None; with dates, they are the visitors who came on those days.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from app.models import Interaction, Webinar, WebinarSession
from app.services import interactions as interaction_rules
from app.services.attendance_rows import as_datetime, video_durations
from app.services.engagement_results import (
    AttendanceSummary,
    ChatSummary,
    DropOff,
    Funnel,
    FunnelStage,
    InteractionSummary,
    Marker,
    WebinarRow,
    percentile,
    share,
    watch_share,
)

__all__ = [
    "AttendanceSummary",
    "ChatSummary",
    "DropOff",
    "Filters",
    "Funnel",
    "FunnelStage",
    "InteractionSummary",
    "Marker",
    "WebinarRow",
    "attendance_summary",
    "chat_summary",
    "drop_off",
    "funnel",
    "interaction_results",
    "percentile",
    "share",
    "watch_share",
    "webinar_overview",
]

CLICKABLE = ("offer", "link", "download")


@dataclass(frozen=True)
class Filters:
    """What a dashboard shows: a webinar, a session, session start dates (UTC, inclusive)."""

    webinar_id: int | None = None
    session_id: int | None = None
    start: date | None = None
    end: date | None = None


# --- the scope of a query -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    webinar_id: int | None
    sessions: tuple[int, ...] | None  # None: every session (of the webinar, if one)
    start: date | None
    end: date | None
    single_session: bool


def _bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    if start is not None and end is not None and start > end:
        raise ValueError("The start date is after the end date.")
    low = None if start is None else datetime.combine(start, time.min, UTC)
    high = None if end is None else datetime.combine(end + timedelta(days=1), time.min, UTC)
    return low, high


async def _scope(f: Filters) -> _Scope:
    low, high = _bounds(f.start, f.end)
    if f.session_id is not None:
        found = await WebinarSession.get_or_none(id=f.session_id).values("webinar_id", "starts_at")
        webinar_id = f.webinar_id
        sessions: tuple[int, ...] = ()
        if found is not None and f.webinar_id in (None, found["webinar_id"]):
            webinar_id = found["webinar_id"]
            starts = found["starts_at"]
            if (low is None or starts >= low) and (high is None or starts < high):
                sessions = (f.session_id,)
        return _Scope(webinar_id, sessions, f.start, f.end, single_session=True)
    if low is None and high is None:
        return _Scope(f.webinar_id, None, None, None, single_session=False)
    query = WebinarSession.all()
    if f.webinar_id is not None:
        query = query.filter(webinar_id=f.webinar_id)
    if low is not None:
        query = query.filter(starts_at__gte=low)
    if high is not None:
        query = query.filter(starts_at__lt=high)
    listed: list[Any] = await query.values_list("id", flat=True)
    ids = tuple(sorted(int(value) for value in listed))
    return _Scope(f.webinar_id, ids, f.start, f.end, single_session=False)


async def _session_ids(scope: _Scope) -> tuple[int, ...] | None:
    """The scope's sessions as a list (None: every session of every webinar)."""
    if scope.sessions is not None:
        return scope.sessions
    if scope.webinar_id is None:
        return None
    found: list[Any] = await WebinarSession.filter(webinar_id=scope.webinar_id).values_list(
        "id", flat=True
    )
    return tuple(sorted(int(value) for value in found))


class _Sql:
    """Bind parameters in the connection's dialect."""

    def __init__(self, connection: BaseDBAsyncClient) -> None:
        self.connection = connection
        self.postgres = connection.capabilities.dialect == "postgres"
        self.params: list[Any] = []

    def p(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}" if self.postgres else "?"

    def many(self, values: Iterable[Any]) -> str:
        return ", ".join(self.p(value) for value in values)

    def day(self, value: date) -> str:
        return self.p(value if self.postgres else value.isoformat())

    def instant(self, value: datetime) -> str:
        field = WebinarSession._meta.fields_map["starts_at"]
        return self.p(field.to_db_value(value, WebinarSession))

    def scope(self, scope: _Scope, alias: str) -> str:
        """Conditions on a table with webinar_id and session_id columns."""
        if scope.sessions == ():
            return "1 = 0"
        parts = []
        if scope.webinar_id is not None:
            parts.append(f"{alias}.webinar_id = {self.p(scope.webinar_id)}")
        if scope.sessions is not None:
            parts.append(f"{alias}.session_id IN ({self.many(scope.sessions)})")
        return " AND ".join(parts) or "1 = 1"

    async def rows(self, sql: str) -> list[Any]:
        return list((await self.connection.execute_query(sql, self.params))[1])


def _sql() -> _Sql:
    return _Sql(connections.get("default"))


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    loaded = json.loads(value or "[]")
    return loaded if isinstance(loaded, list) else []


async def _visitors(scope: _Scope) -> int:
    q = _sql()
    where = ["1 = 1"]
    if scope.webinar_id is not None:
        where.append(f"webinar_id = {q.p(scope.webinar_id)}")
    if scope.start is not None:
        where.append(f"day >= {q.day(scope.start)}")
    if scope.end is not None:
        where.append(f"day <= {q.day(scope.end)}")
    sql = f"SELECT COUNT(DISTINCT visitor) FROM daily_visitor WHERE {' AND '.join(where)}"  # noqa: S608
    return int((await q.rows(sql))[0][0])


async def _registered(scope: _Scope) -> int:
    q = _sql()
    sql = f"SELECT COUNT(*) FROM registrant r WHERE {q.scope(scope, 'r')}"  # noqa: S608
    return int((await q.rows(sql))[0][0])


# --- the queries --------------------------------------------------------------------------------


async def funnel(f: Filters) -> Funnel:
    """Visitors -> registered -> attended -> stayed to the end -> converted."""
    scope = await _scope(f)
    visitors = None if scope.single_session else await _visitors(scope)
    q = _sql()
    sql = (
        "SELECT COUNT(*), "  # noqa: S608
        "SUM(CASE WHEN a.stayed_to_end THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN a.clicked_offer THEN 1 ELSE 0 END) "
        f"FROM attendance a WHERE {q.scope(scope, 'a')} AND a.first_join_at IS NOT NULL"
    )
    attended, stayed, converted = (await q.rows(sql))[0]
    return Funnel(
        visitors=visitors,
        registered=await _registered(scope),
        attended=int(attended or 0),
        stayed_to_end=int(stayed or 0),
        converted=int(converted or 0),
    )


async def _attended_rows(scope: _Scope, columns: str) -> list[Any]:
    q = _sql()
    sql = (
        f"SELECT {columns} FROM attendance a "  # noqa: S608
        f"WHERE {q.scope(scope, 'a')} AND a.first_join_at IS NOT NULL"
    )
    return await q.rows(sql)


async def attendance_summary(f: Filters) -> AttendanceSummary:
    """Registered, attended, attendance rate, average and median watch time, watch share."""
    scope = await _scope(f)
    rows = await _attended_rows(scope, "a.webinar_id, a.watched_seconds")
    registered = await _registered(scope)
    watched = [float(row[1]) for row in rows]
    durations = await video_durations({int(row[0]) for row in rows})
    shares = [watch_share(float(row[1]), durations[int(row[0])]) for row in rows]
    return AttendanceSummary(
        registered=registered,
        attended=len(rows),
        attendance_rate=share(len(rows), registered),
        average_watch_seconds=statistics.fmean(watched) if watched else None,
        median_watch_seconds=statistics.median(watched) if watched else None,
        average_watch_share=statistics.fmean(shares) if shares else None,
    )


def _need_webinar(scope: _Scope) -> int:
    if scope.webinar_id is None:
        raise ValueError("Choose a webinar or a session.")
    return scope.webinar_id


async def _interactions_of(scope: _Scope) -> list[Interaction]:
    """The webinar's interactions: its own, and those pushed into the chosen sessions."""
    webinar_id = _need_webinar(scope)
    found = await Interaction.filter(webinar_id=webinar_id).order_by(
        "opens_at_seconds", "position", "id"
    )
    if scope.sessions is None:
        return list(found)
    chosen = set(scope.sessions)
    return [
        interaction
        for interaction in found
        if getattr(interaction, "session_id", None) in (None, *chosen)
    ]


async def drop_off(f: Filters) -> DropOff:
    """Viewers per minute of the video, with the interactions as markers."""
    scope = await _scope(f)
    webinar_id = _need_webinar(scope)
    duration = (await video_durations([webinar_id]))[webinar_id]
    viewers = [0] * max(math.ceil(duration / 60), 1)
    rows = await _attended_rows(scope, "a.minutes")
    for row in rows:
        for minute in set(_json_list(row[0])):
            if isinstance(minute, int) and 0 <= minute < len(viewers):
                viewers[minute] += 1
    markers = [
        Marker(
            seconds=float(interaction.opens_at_seconds),
            kind=interaction.kind,
            title=interaction.title,
            interaction_id=interaction.id,
        )
        for interaction in await _interactions_of(scope)
    ]
    return DropOff(duration_seconds=duration, attended=len(rows), viewers=viewers, markers=markers)


async def interaction_results(f: Filters) -> list[InteractionSummary]:
    """Each interaction's results, in the order they open."""
    scope = await _scope(f)
    found = await _interactions_of(scope)
    if not found:
        return []
    q = _sql()
    where = f"interaction_id IN ({q.many(i.id for i in found)})"
    if scope.sessions is not None:
        where += f" AND session_id IN ({q.many(scope.sessions) or 'NULL'})"
    answers: dict[int, list[Any]] = defaultdict(list)
    for interaction_id, answer in await q.rows(
        f"SELECT interaction_id, answer FROM interaction_response WHERE {where}"  # noqa: S608
    ):
        answers[int(interaction_id)].append(
            interaction_rules.given_answer(
                json.loads(answer) if isinstance(answer, str) else answer
            )
        )
    # Everyone who opened one counts, also a download fetched without joining the room.
    q = _sql()
    rows = await q.rows(
        "SELECT CASE WHEN a.first_join_at IS NULL THEN 0 ELSE 1 END, a.clicked "  # noqa: S608
        f"FROM attendance a WHERE {q.scope(scope, 'a')}"
    )
    attended = sum(int(row[0]) for row in rows)
    clicked: dict[int, int] = defaultdict(int)
    for row in rows:
        for interaction_id in set(_json_list(row[1])):
            if isinstance(interaction_id, int):
                clicked[interaction_id] += 1
    summaries = []
    for interaction in found:
        given = answers.get(interaction.id, [])
        clickable = interaction.kind in CLICKABLE
        people = clicked.get(interaction.id, 0) if clickable else None
        results = {"total": people} if clickable else interaction_rules.tally(interaction, given)
        summaries.append(
            InteractionSummary(
                interaction_id=interaction.id,
                kind=interaction.kind,
                title=interaction.title,
                opens_at=float(interaction.opens_at_seconds),
                session_id=getattr(interaction, "session_id", None),
                responses=len(given),
                results=results,
                clicked=people,
                click_through=share(people, attended) if clickable else None,
            )
        )
    return summaries


async def chat_summary(f: Filters) -> ChatSummary:
    """Attendee messages, questions, team replies and the team's response times."""
    scope = await _scope(f)
    sessions = await _session_ids(scope)
    q = _sql()
    where = "1 = 1" if sessions is None else f"session_id IN ({q.many(sessions) or 'NULL'})"
    rows = await q.rows(
        "SELECT id, session_id, registrant_id, staff_id, automatic, reply_to_id, "  # noqa: S608
        "created_at, media_seconds, CASE WHEN body LIKE '%?%' THEN 1 ELSE 0 END "
        f"FROM chat_message WHERE {where} ORDER BY created_at, id"
    )
    conversation_of: dict[int, tuple[int, int]] = {}
    waiting: dict[tuple[int, int], list[datetime]] = defaultdict(list)
    times: list[float] = []
    attendee = questions = team = 0
    minutes: dict[int, int] = defaultdict(int)
    for (
        message_id,
        session_id,
        registrant_id,
        staff_id,
        automatic,
        reply_to,
        at,
        media,
        asks,
    ) in rows:
        conversation = None if registrant_id is None else (int(session_id), int(registrant_id))
        if conversation is None and reply_to is not None:
            conversation = conversation_of.get(int(reply_to))
        if conversation is not None:
            conversation_of[int(message_id)] = conversation
        created = as_datetime(at)
        if staff_id is None and not automatic and registrant_id is not None:
            attendee += 1
            questions += int(asks)
            minutes[max(int(float(media) // 60), 0)] += 1
            waiting[(int(session_id), int(registrant_id))].append(created)
        elif staff_id is not None:
            team += 1
            if conversation is not None:
                for asked in waiting.pop(conversation, []):
                    times.append((created - asked).total_seconds())
    length = max(minutes, default=-1) + 1
    if scope.webinar_id is not None:
        duration = (await video_durations([scope.webinar_id]))[scope.webinar_id]
        length = max(length, math.ceil(duration / 60))
    return ChatSummary(
        attendee_messages=attendee,
        questions=questions,
        team_replies=team,
        answered=len(times),
        median_response_seconds=statistics.median(times) if times else None,
        p90_response_seconds=percentile(times, 0.9),
        by_minute=[minutes.get(minute, 0) for minute in range(length)],
    )


async def webinar_overview(start: date | None, end: date | None) -> list[WebinarRow]:
    """One row per webinar (with sessions or visitors on the chosen days), newest first."""
    low, high = _bounds(start, end)
    dated = low is not None or high is not None

    def session_range(q: _Sql, alias: str) -> str:
        parts = ["1 = 1"]
        if low is not None:
            parts.append(f"{alias}.starts_at >= {q.instant(low)}")
        if high is not None:
            parts.append(f"{alias}.starts_at < {q.instant(high)}")
        return " AND ".join(parts)

    q = _sql()
    sessions = {
        int(row[0]): int(row[1])
        for row in await q.rows(
            "SELECT s.webinar_id, COUNT(*) FROM webinar_session s "  # noqa: S608
            f"WHERE {session_range(q, 's')} GROUP BY s.webinar_id"
        )
    }
    q = _sql()
    days = ["1 = 1"]
    if start is not None:
        days.append(f"day >= {q.day(start)}")
    if end is not None:
        days.append(f"day <= {q.day(end)}")
    visitors = {
        int(row[0]): int(row[1])
        for row in await q.rows(
            "SELECT webinar_id, COUNT(DISTINCT visitor) FROM daily_visitor "  # noqa: S608
            f"WHERE {' AND '.join(days)} GROUP BY webinar_id"
        )
    }
    q = _sql()
    joined = " JOIN webinar_session s ON s.id = r.session_id" if dated else ""
    registered = {
        int(row[0]): int(row[1])
        for row in await q.rows(
            f"SELECT r.webinar_id, COUNT(*) FROM registrant r{joined} "  # noqa: S608
            f"WHERE {session_range(q, 's') if dated else '1 = 1'} GROUP BY r.webinar_id"
        )
    }
    q = _sql()
    joined = " JOIN webinar_session s ON s.id = a.session_id" if dated else ""
    attended_rows = await q.rows(
        "SELECT a.webinar_id, a.watched_seconds, "  # noqa: S608
        f"CASE WHEN a.clicked_offer THEN 1 ELSE 0 END FROM attendance a{joined} "
        f"WHERE {session_range(q, 's') if dated else '1 = 1'} AND a.first_join_at IS NOT NULL"
    )
    durations = await video_durations({int(row[0]) for row in attended_rows})
    attended: dict[int, int] = defaultdict(int)
    shares: dict[int, float] = defaultdict(float)
    conversions: dict[int, int] = defaultdict(int)
    for webinar_id, watched, converted in attended_rows:
        attended[int(webinar_id)] += 1
        shares[int(webinar_id)] += watch_share(float(watched), durations[int(webinar_id)])
        conversions[int(webinar_id)] += int(converted)
    webinars = await Webinar.all().order_by("-id").values_list("id", "title", "status")
    answer = []
    for webinar_id, title, status in webinars:
        if dated and webinar_id not in sessions and webinar_id not in visitors:
            continue
        came = attended.get(webinar_id, 0)
        signed_up = registered.get(webinar_id, 0)
        answer.append(
            WebinarRow(
                webinar_id=webinar_id,
                title=title,
                status=str(status),
                sessions=sessions.get(webinar_id, 0),
                visitors=visitors.get(webinar_id, 0),
                registered=signed_up,
                attended=came,
                attendance_rate=share(came, signed_up),
                average_watch_share=share(shares.get(webinar_id, 0.0), came),
                conversions=conversions.get(webinar_id, 0),
                conversion_rate=share(conversions.get(webinar_id, 0), came),
            )
        )
    return answer
