"""Dashboard queries over 1,000,000 engagement events on SQLite and PostgreSQL, next to DuckDB.

Usage (from the repository root):
    .venv/bin/python bench/analytics.py [--backends sqlite,postgres] [--events 1000000]
                                        [--sessions 200] [--contacts 50000] [--repeat 5]

It generates one data set (fixed seed) shaped like a season of webinars: 20 webinars of 10
sessions each, 50,000 contacts, landing-page views from visitors who mostly do not register,
registrations, and for about a third of the registrants a visit to the room: a join, a heartbeat
every 20 s while they watch (most leave early, some stay to the end), a leave, offer clicks and
downloads; chat messages with the team's replies and answers to polls, quizzes, NPS and ratings
go to their own tables, as in the room. For each database it migrates a fresh one, loads the
data (not timed), builds the Attendance rows and daily visitor counts from the events with
`attendance.rebuild()` (timed), then times every dashboard query of `app.services.engagement`
for one session, one whole webinar and all webinars (median of `--repeat` runs after one warm-up)
against the goals: under 50 ms per session, under 300 ms per webinar and for all webinars.

Then it times the pages a person opens, through the real web app (`create_app`, driven over
ASGI by httpx with a signed-in analyst, so routing, sessions, permissions, every query of the
page and the template are included, the network is not): the dashboard of that session, of the
whole webinar and the overview of all webinars, the profile of the contact with the most
registrations, and a segment's live count (the request the segment editor sends as rules
change) for that webinar and for all webinars. Pages are set against the same goals for
reference; the goals themselves are the queries'.

DuckDB answers the same questions from the raw events (and the chat and answer tables) in memory
as a columnar reference: the heartbeat rules (pairs of playing heartbeats, minutes between them)
are written as window functions. The benchmark checks that both give the same figures.

PostgreSQL runs need a server (default postgres://postgres@127.0.0.1:5432, database
encore_bench_analytics, created and emptied by the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from register import fresh_postgres  # noqa: E402  (the register benchmark, beside this file)

WEBINARS = 20
BASE = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # the first sessions' start
ATTEND_SHARE = 0.35
SESSION_GOAL_MS = 50.0
WIDE_GOAL_MS = 300.0
EVENT_COLUMNS = (
    "kind",
    "at",
    "webinar_id",
    "session_id",
    "registrant_id",
    "contact_id",
    "video_seconds",
    "data",
)


# --- the data set -------------------------------------------------------------------------------


@dataclass
class Plan:
    """Everything to load, as plain tuples (ids are given by the loader in order)."""

    durations: list[float]  # per webinar
    sessions: list[tuple[int, datetime]]  # (webinar index, starts_at)
    contacts: int
    registrants: list[tuple[int, int, int, datetime]]  # (contact, webinar, session, created)
    # (kind, at, webinar, session, registrant, video_seconds, playing, interaction, visitor)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    chat: list[tuple[int, int, bool, datetime, float, str]] = field(default_factory=list)
    answers: list[tuple[int, int, int, int]] = field(default_factory=list)  # (kind idx, ...)


# Interactions of every webinar: kind, opening second, config.
INTERACTIONS: list[tuple[str, float, dict[str, Any]]] = [
    ("poll", 300, {"options": ["Yes", "No", "Maybe"], "multiple": False}),
    ("quiz", 900, {"options": ["A", "B", "C"], "correct": [1], "multiple": False}),
    (
        "offer",
        1800,
        {"text": "", "button": "Buy", "url": "https://x.example", "countdown_seconds": 0},
    ),
    ("download", 600, {"file_key": "downloads/slides.pdf"}),
    ("nps", 2400, {}),
    ("rating", 2500, {"scale": 5}),
]


def make_plan(events: int, sessions: int, contacts: int, seed: int = 7) -> Plan:
    """A season of webinars with exactly `events` events."""
    rng = random.Random(seed)
    per_webinar = max(sessions // WEBINARS, 1)
    durations = [float(rng.choice((2400, 2700, 3000, 3300, 3600))) for _ in range(WEBINARS)]
    plan = Plan(durations=durations, sessions=[], contacts=contacts, registrants=[])
    for index in range(WEBINARS * per_webinar):
        webinar = index % WEBINARS
        week = index // WEBINARS
        plan.sessions.append((webinar, BASE + timedelta(days=week * 7 + webinar % 5)))
    registrations = int(events * 0.05)
    taken: set[tuple[int, int]] = set()
    while len(plan.registrants) < registrations:
        session = rng.randrange(len(plan.sessions))
        webinar, starts = plan.sessions[session]
        contact = rng.randrange(contacts)
        if (contact, webinar) in taken:
            continue
        taken.add((contact, webinar))
        created = starts - timedelta(days=rng.uniform(0.2, 14))
        plan.registrants.append((contact, webinar, session, created))
    ev = plan.events
    for registrant, (_, webinar, _session, created) in enumerate(plan.registrants):
        visitor = secrets.token_hex(8)
        for view in range(rng.choice((1, 1, 2, 3))):
            ev.append(
                (
                    "landing_view",
                    created - timedelta(hours=view * 20 + 1),
                    webinar,
                    None,
                    None,
                    None,
                    None,
                    None,
                    visitor,
                )
            )
        ev.append(("registration", created, webinar, _session, registrant, None, None, None, None))
    while len(ev) < int(events * 0.2):  # visitors who never register
        webinar = rng.randrange(WEBINARS)
        at = BASE + timedelta(days=rng.uniform(-14, 70))
        visitor = secrets.token_hex(8)
        for view in range(rng.choice((1, 1, 1, 2))):
            ev.append(
                (
                    "landing_view",
                    at + timedelta(hours=view * 30),
                    webinar,
                    None,
                    None,
                    None,
                    None,
                    None,
                    visitor,
                )
            )
    attendees = [r for r in range(len(plan.registrants)) if rng.random() < ATTEND_SHARE]
    # Heartbeats fill what the other events leave of the budget, shared out by how long each
    # attendee stays (many leave early, a fifth watch to the end).
    other = len(ev) + 2 * len(attendees) + int(len(attendees) * 0.3)
    budget = events - other
    stays = [1.0 if rng.random() < 0.2 else rng.betavariate(1.2, 2.5) for _ in attendees]
    caps = []
    for registrant in attendees:
        _, webinar, _, _ = plan.registrants[registrant]
        caps.append(int(durations[webinar] // 20) - 6)
    wanted = [max(1, int(stay * cap)) for stay, cap in zip(stays, caps, strict=True)]
    scale = budget / sum(wanted)
    beats = [max(1, min(cap, round(want * scale))) for want, cap in zip(wanted, caps, strict=True)]
    total = sum(beats)
    while total != budget:
        index = rng.randrange(len(beats))
        if total > budget and beats[index] > 1:
            beats[index] -= 1
            total -= 1
        elif total < budget and beats[index] < caps[index]:
            beats[index] += 1
            total += 1
    clicks_left = events - budget - len(ev) - 2 * len(attendees)
    for registrant, count in zip(attendees, beats, strict=True):
        _, webinar, session, _ = plan.registrants[registrant]
        starts = plan.sessions[session][1]
        late = rng.uniform(0, 90)
        join = starts + timedelta(seconds=late)
        ev.append(("join", join, webinar, session, registrant, late, None, None, None))
        last = late
        for beat in range(1, count + 1):
            second = late + beat * 20 + rng.uniform(-0.5, 0.5)
            playing = rng.random() > 0.03
            ev.append(
                (
                    "heartbeat",
                    starts + timedelta(seconds=second),
                    webinar,
                    session,
                    registrant,
                    round(second, 1),
                    playing,
                    None,
                    None,
                )
            )
            last = second
        ev.append(
            (
                "leave",
                starts + timedelta(seconds=last + 3),
                webinar,
                session,
                registrant,
                round(last + 3, 1),
                None,
                None,
                None,
            )
        )
        for kind_index, (kind, opens, _config) in enumerate(INTERACTIONS):
            if last < opens:
                continue
            if kind in ("offer", "download"):
                if clicks_left > 0 and rng.random() < 0.35:
                    at = starts + timedelta(seconds=opens + rng.uniform(5, 60))
                    click = "offer_click" if kind == "offer" else "download"
                    ev.append(
                        (
                            click,
                            at,
                            webinar,
                            session,
                            registrant,
                            opens + 30,
                            None,
                            kind_index,
                            None,
                        )
                    )
                    clicks_left -= 1
            elif rng.random() < 0.7:
                options = {"poll": 3, "quiz": 3, "nps": 11, "rating": 5}[kind]
                answer = rng.randrange(options) + (1 if kind == "rating" else 0)
                plan.answers.append((kind_index, session, registrant, answer))
        if rng.random() < 0.25:
            for _ in range(rng.choice((1, 1, 2, 3))):
                second = rng.uniform(late, last)
                body = rng.choice(
                    ("Is there a replay?", "Great point", "Where are the slides?", "Thanks")
                )
                plan.chat.append(
                    (session, registrant, False, starts + timedelta(seconds=second), second, body)
                )
                if rng.random() < 0.6:
                    wait = rng.uniform(10, 300)
                    plan.chat.append(
                        (
                            session,
                            registrant,
                            True,
                            starts + timedelta(seconds=second + wait),
                            second + wait,
                            "Thanks, answered",
                        )
                    )
    while len(ev) < events:  # whatever is left of the budget: more first views
        webinar = rng.randrange(WEBINARS)
        ev.append(
            (
                "landing_view",
                BASE + timedelta(days=rng.uniform(-14, 70)),
                webinar,
                None,
                None,
                None,
                None,
                None,
                secrets.token_hex(8),
            )
        )
    del ev[events:]
    return plan


# --- loading ------------------------------------------------------------------------------------


@dataclass
class Loaded:
    """The ids the loader gave."""

    webinars: list[int]
    sessions: list[int]
    registrants: list[int]
    contacts_of: list[int]  # per registrant
    interactions: list[list[int]]  # per webinar, in INTERACTIONS order


async def load(plan: Plan) -> Loaded:
    """Write the plan into the connected database (ORM for the few, raw rows for the many)."""
    from tortoise import connections
    from tortoise.transactions import in_transaction

    from app.models import (
        ChatMessage,
        Contact,
        Interaction,
        InteractionResponse,
        Registrant,
        Role,
        Video,
        VideoState,
        Webinar,
        WebinarSession,
    )
    from app.services import rows, team

    staff = await team.create_user(
        email="cs@example.com", name="CS", password=secrets.token_urlsafe(24), role=Role.EDITOR
    )
    webinars = []
    interactions = []
    for index, duration in enumerate(plan.durations):
        video = await Video.create(
            title=f"Talk {index}",
            source_key="uploads/x",
            state=VideoState.READY,
            duration_seconds=duration,
        )
        webinar = await Webinar.create(slug=f"bench-{index}", title=f"Webinar {index}", video=video)
        webinars.append(webinar.id)
        ids = []
        for kind, opens, config in INTERACTIONS:
            found = await Interaction.create(
                webinar=webinar,
                kind=kind,
                title=kind.title(),
                config=config,
                opens_at_seconds=opens,
            )
            ids.append(found.id)
        interactions.append(ids)
    sessions = []
    for webinar_index, starts in plan.sessions:
        sessions.append(
            (await WebinarSession.create(webinar_id=webinars[webinar_index], starts_at=starts)).id
        )
    connection = connections.get("default")
    contact_ids: list[int] = []
    for first in range(0, plan.contacts, 5000):
        batch = [
            Contact(
                email=f"p{n}@c{n % 3000}.example",
                name=f"Person {n}",
                company_domain=f"c{n % 3000}.example",
            )
            for n in range(first, min(plan.contacts, first + 5000))
        ]
        found = await rows.insert_many(connection, batch, returning=("id", "email"))
        by_email = {row["email"]: row["id"] for row in found}
        contact_ids.extend(by_email[contact.email] for contact in batch)
    registrant_ids: list[int] = []
    for first in range(0, len(plan.registrants), 5000):
        batch = [
            Registrant(
                contact_id=contact_ids[contact],
                webinar_id=webinars[webinar],
                session_id=sessions[session],
                join_token_hash=secrets.token_hex(32),
                created_at=created,
            )
            for contact, webinar, session, created in plan.registrants[first : first + 5000]
        ]
        found = await rows.insert_many(connection, batch, returning=("id", "join_token_hash"))
        by_hash = {row["join_token_hash"]: row["id"] for row in found}
        registrant_ids.extend(by_hash[r.join_token_hash] for r in batch)
    contacts_of = [contact_ids[contact] for contact, _, _, _ in plan.registrants]
    records = []
    for (
        kind,
        at,
        webinar,
        session,
        registrant,
        seconds,
        playing,
        interaction,
        visitor,
    ) in plan.events:
        data: dict[str, Any] = {}
        if playing is not None:
            data["playing"] = playing
        if interaction is not None:
            data["interaction_id"] = interactions[webinar][interaction]
        if visitor is not None:
            data["visitor"] = visitor
        records.append(
            (
                kind,
                at,
                webinars[webinar],
                None if session is None else sessions[session],
                None if registrant is None else registrant_ids[registrant],
                None if registrant is None else contacts_of[registrant],
                seconds,
                json.dumps(data, separators=(",", ":")),
            )
        )
    if connection.capabilities.dialect == "postgres":
        async with connection.acquire_connection() as raw:
            await raw.copy_records_to_table(
                "analytics_event", records=records, columns=EVENT_COLUMNS
            )
    else:
        names = ", ".join(EVENT_COLUMNS)
        async with in_transaction() as transaction:
            await transaction.execute_many(
                f"INSERT INTO analytics_event ({names}) "
                f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
                records,
            )
    chat = [
        ChatMessage(
            session_id=sessions[session],
            registrant_id=registrant_ids[registrant],
            staff_id=staff.id if from_team else None,
            body=body,
            created_at=at,
            media_seconds=seconds,
            visibility="private",
        )
        for session, registrant, from_team, at, seconds, body in plan.chat
    ]
    answers = [
        InteractionResponse(
            interaction_id=interactions[plan.sessions[session][0]][kind_index],
            session_id=sessions[session],
            registrant_id=registrant_ids[registrant],
            answer=answer,
        )
        for kind_index, session, registrant, answer in plan.answers
    ]
    async with in_transaction() as transaction:
        for objects in (chat, answers):
            for first in range(0, len(objects), 2000):
                await rows.insert_many(transaction, objects[first : first + 2000], returning=())
    if connection.capabilities.dialect == "postgres":
        await connection.execute_script("ANALYZE")
    return Loaded(webinars, sessions, registrant_ids, contacts_of, interactions)


# --- DuckDB, the columnar reference --------------------------------------------------------------


def duckdb_reference(plan: Plan, loaded: Loaded, folder: Path) -> Any:
    """An in-memory DuckDB holding the raw events, registrations, chat and answers."""
    import duckdb

    db = duckdb.connect()
    path = folder / "events.csv"
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        for number, (
            kind,
            ts,
            webinar,
            session,
            registrant,
            seconds,
            playing,
            interaction,
            visitor,
        ) in enumerate(plan.events):
            out.writerow(
                (
                    number,
                    kind,
                    ts.isoformat(),
                    loaded.webinars[webinar],
                    "" if session is None else loaded.sessions[session],
                    "" if registrant is None else loaded.registrants[registrant],
                    "" if seconds is None else seconds,
                    "" if playing is None else playing,
                    "" if interaction is None else loaded.interactions[webinar][interaction],
                    visitor or "",
                )
            )
    db.execute(
        "CREATE TABLE events AS SELECT * FROM read_csv(?, header=false, columns={"
        "'id': 'BIGINT', 'kind': 'VARCHAR', 'ts': 'TIMESTAMPTZ', 'webinar_id': 'INTEGER', "
        "'session_id': 'INTEGER', 'registrant_id': 'INTEGER', 'video_seconds': 'DOUBLE', "
        "'playing': 'BOOLEAN', 'interaction_id': 'INTEGER', 'visitor': 'VARCHAR'})",
        [str(path)],
    )
    db.execute("CREATE TABLE webinars (id INTEGER, duration DOUBLE)")
    db.executemany(
        "INSERT INTO webinars VALUES (?, ?)",
        list(zip(loaded.webinars, plan.durations, strict=True)),
    )
    db.execute("CREATE TABLE sessions (id INTEGER, webinar_id INTEGER)")
    db.executemany(
        "INSERT INTO sessions VALUES (?, ?)",
        [(loaded.sessions[i], loaded.webinars[w]) for i, (w, _) in enumerate(plan.sessions)],
    )
    db.execute(
        "CREATE TABLE chat (session_id INTEGER, registrant_id INTEGER, team BOOLEAN, "
        "ts TIMESTAMPTZ, media DOUBLE, body VARCHAR)"
    )
    db.executemany(
        "INSERT INTO chat VALUES (?, ?, ?, ?, ?, ?)",
        [(loaded.sessions[s], loaded.registrants[r], t, a, m, b) for s, r, t, a, m, b in plan.chat],
    )
    db.execute("CREATE TABLE answers (interaction_id INTEGER, session_id INTEGER, answer INTEGER)")
    db.executemany(
        "INSERT INTO answers VALUES (?, ?, ?)",
        [
            (loaded.interactions[plan.sessions[s][0]][k], loaded.sessions[s], a)
            for k, s, _, a in plan.answers
        ],
    )
    path.unlink()
    return db


def _visits(where: str) -> str:
    """Per attendee and session: joined, furthest, watched, converted (the room's rules)."""
    return f"""
    WITH ev AS (
        SELECT id, kind, ts, session_id, registrant_id, video_seconds, playing FROM events
        WHERE {where} AND kind IN ('join', 'heartbeat', 'leave')),
    seq AS (
        SELECT *, lag(kind) OVER w AS pkind, lag(ts) OVER w AS pts,
               lag(playing) OVER w AS pplaying, lag(video_seconds) OVER w AS pseconds
        FROM ev WINDOW w AS (PARTITION BY session_id, registrant_id ORDER BY ts, id)),
    pairs AS (
        SELECT *, epoch(ts - pts) AS gap FROM seq),
    per AS (
        SELECT session_id, registrant_id, bool_or(kind = 'join') AS joined,
               max(CASE WHEN kind <> 'join' THEN video_seconds END) AS furthest,
               sum(CASE WHEN kind = 'heartbeat' AND pkind = 'heartbeat' AND playing AND pplaying
                        AND gap > 0 AND gap <= 600 THEN least(gap, 40) ELSE 0 END) AS watched
        FROM pairs GROUP BY 1, 2),
    clicks AS (
        SELECT DISTINCT session_id, registrant_id FROM events
        WHERE {where} AND kind = 'offer_click')
    SELECT per.*, s.webinar_id, w.duration, c.registrant_id IS NOT NULL AS converted
    FROM per JOIN sessions s ON s.id = per.session_id JOIN webinars w ON w.id = s.webinar_id
    LEFT JOIN clicks c ON c.session_id = per.session_id AND c.registrant_id = per.registrant_id
    WHERE joined"""


def duck_funnel(db: Any, where: str, visitors_where: str | None) -> tuple[Any, ...]:
    visitors = None
    if visitors_where is not None:
        visitors = db.execute(
            "SELECT count(DISTINCT visitor) FROM events "
            f"WHERE kind = 'landing_view' AND {visitors_where}"
        ).fetchone()[0]
    registered = db.execute(
        f"SELECT count(*) FROM events WHERE kind = 'registration' AND {where}"
    ).fetchone()[0]
    row = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE furthest >= 0.95 * duration), "
        f"count(*) FILTER (WHERE converted) FROM ({_visits(where)})"
    ).fetchone()
    return (visitors, registered, *row)


def duck_summary(db: Any, where: str) -> tuple[Any, ...]:
    return tuple(
        db.execute(
            "SELECT count(*), avg(watched), median(watched), "
            f"avg(least(watched / duration, 1)) FROM ({_visits(where)})"
        ).fetchone()
    )


def duck_drop_off(db: Any, where: str, minutes: int) -> list[int]:
    rows = db.execute(
        f"""
        WITH ev AS (
            SELECT id, kind, ts, session_id, registrant_id, video_seconds, playing FROM events
            WHERE {where} AND kind IN ('join', 'heartbeat', 'leave')),
        seq AS (
            SELECT *, lag(kind) OVER w AS pkind, lag(ts) OVER w AS pts,
                   lag(playing) OVER w AS pplaying, lag(video_seconds) OVER w AS pseconds
            FROM ev WINDOW w AS (PARTITION BY session_id, registrant_id ORDER BY ts, id)),
        watched AS (
            SELECT session_id, registrant_id, floor(video_seconds / 60)::INTEGER AS m
            FROM seq WHERE kind = 'heartbeat' AND playing
            UNION
            SELECT session_id, registrant_id,
                   unnest(range(floor(pseconds / 60)::INTEGER,
                                floor(video_seconds / 60)::INTEGER + 1))
            FROM seq WHERE kind = 'heartbeat' AND pkind = 'heartbeat' AND playing AND pplaying
                 AND epoch(ts - pts) > 0 AND epoch(ts - pts) <= 40
                 AND video_seconds - pseconds BETWEEN 0 AND 2 * epoch(ts - pts) + 1)
        SELECT m, count(*) FROM watched WHERE m < {minutes} GROUP BY m"""
    ).fetchall()
    viewers = [0] * minutes
    for minute, count in rows:
        viewers[minute] = count
    return viewers


def duck_interactions(db: Any, where: str) -> tuple[Any, ...]:
    answers = db.execute(
        f"SELECT interaction_id, answer, count(*) FROM answers WHERE {where} GROUP BY 1, 2"
    ).fetchall()
    clicks = db.execute(
        "SELECT interaction_id, count(DISTINCT (session_id, registrant_id)) FROM events "
        f"WHERE {where} AND kind IN ('offer_click', 'link_click', 'download') GROUP BY 1"
    ).fetchall()
    return tuple(sorted(answers)), tuple(sorted(clicks))


def duck_chat(db: Any, where: str) -> tuple[Any, ...]:
    return tuple(
        db.execute(
            f"""
            WITH c AS (SELECT * FROM chat WHERE {where}),
            asked AS (SELECT row_number() OVER () AS n, * FROM c WHERE NOT team),
            waits AS (
                SELECT a.n, epoch(min(t.ts) - a.ts) AS wait FROM asked a JOIN c t
                ON t.team AND t.session_id = a.session_id AND t.registrant_id = a.registrant_id
                   AND t.ts >= a.ts GROUP BY a.n, a.ts)
            SELECT (SELECT count(*) FROM asked), (SELECT count(*) FROM asked WHERE body LIKE '%?%'),
                   (SELECT count(*) FROM c WHERE team), count(*), median(wait),
                   quantile_disc(wait, 0.9)
            FROM waits"""
        ).fetchone()
    )


def duck_overview(db: Any) -> list[tuple[Any, ...]]:
    return db.execute(
        f"""
        WITH v AS (SELECT webinar_id, count(DISTINCT visitor) AS visitors FROM events
                   WHERE kind = 'landing_view' GROUP BY 1),
        r AS (SELECT webinar_id, count(*) AS registered FROM events WHERE kind = 'registration'
              GROUP BY 1),
        a AS (SELECT webinar_id, count(*) AS attended, avg(least(watched / duration, 1)) AS share,
                     count(*) FILTER (WHERE converted) AS conversions
              FROM ({_visits("true")}) GROUP BY 1)
        SELECT r.webinar_id, visitors, registered, attended, share, conversions
        FROM r LEFT JOIN v USING (webinar_id) LEFT JOIN a USING (webinar_id) ORDER BY 1 DESC"""
    ).fetchall()


# --- timing -------------------------------------------------------------------------------------


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    """The median milliseconds of `repeat` runs after a warm-up, and the last answer."""
    answer = await call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = await call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), answer


def timed_duck(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The same for a DuckDB query."""
    answer = call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), answer


def _close(a: Any, b: Any) -> bool:
    """Equal, floats within a millionth (watch times are stored to the millisecond)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return False
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)
    return bool(a == b)


@dataclass
class Report:
    """The printed lines and whether every goal was met."""

    lines: list[str] = field(default_factory=list)
    misses: int = 0
    page_misses: int = 0
    differences: list[str] = field(default_factory=list)

    def row(self, scope: str, name: str, ms: float, goal: float, duck_ms: float | None) -> None:
        verdict = "PASS" if ms < goal else "MISS"
        self.misses += verdict == "MISS"
        duck = "" if duck_ms is None else f"   DuckDB {duck_ms:8.1f} ms"
        self.lines.append(
            f"  {scope:<9} {name:<28} {ms:8.1f} ms  (goal < {goal:.0f} ms: {verdict}){duck}"
        )

    def page(self, scope: str, name: str, ms: float, goal: float, size: int) -> None:
        verdict = "within" if ms < goal else "above"
        self.page_misses += verdict == "above"
        self.lines.append(
            f"  {scope:<9} {name:<28} {ms:8.1f} ms  (page, {size / 1024:.0f} KiB; "
            f"{verdict} the {goal:.0f} ms query goal)"
        )

    def same(self, what: str, ours: Any, theirs: Any) -> None:
        if not _close(ours, theirs):
            self.differences.append(f"{what}: Encore {ours!r} / DuckDB {theirs!r}")


async def flush_cost(
    plan: Plan, loaded: Loaded, attendees: int, repeat: int
) -> tuple[float, float]:
    """Milliseconds to flush one heartbeat each of `attendees` people: with the Attendance
    rows (as the room does) and the heartbeat INSERT alone (as before the rows existed)."""
    from tortoise import connections

    from app.services import attendance, rows
    from app.services.attendance import HeartbeatBuffer, Presence

    people = [
        Presence(
            webinar_id=loaded.webinars[webinar],
            session_id=loaded.sessions[session],
            registrant_id=loaded.registrants[index],
            contact_id=loaded.contacts_of[index],
        )
        for index, (_, webinar, session, _) in enumerate(plan.registrants[:attendees])
    ]
    now = BASE + timedelta(days=200)
    buffer = HeartbeatBuffer()
    for who in people:
        await attendance.record(attendance.JOIN, who, now, 0.0)
    await buffer.flush()
    full, bare = [], []
    for step in range(1, repeat + 2):
        at = now + timedelta(seconds=20 * step)
        for who in people:
            buffer.add(who, at, 20.0 * step, playing=True)
        started = time.perf_counter()
        await buffer.flush()
        full.append((time.perf_counter() - started) * 1000)
        events = [
            attendance._event("heartbeat", who, at, 20.0 * step, playing=True) for who in people
        ]
        started = time.perf_counter()
        await rows.insert_many(connections.get("default"), events, returning=())
        bare.append((time.perf_counter() - started) * 1000)
    return statistics.median(full[1:]), statistics.median(bare[1:])


async def time_pages(
    report: Report,
    settings: Any,
    plan: Plan,
    loaded: Loaded,
    webinar_id: int,
    session_id: int,
    repeat: int,
) -> None:
    """Time whole pages through the web app, signed in as an analyst."""
    import re

    import httpx
    from asgi_lifespan import LifespanManager

    from app.main import create_app
    from app.models import Role
    from app.services import team

    password = "violet staple orbit lantern"
    # Sign-in opens once the workspace has its owner.
    for role in (Role.OWNER, Role.ANALYST):
        await team.create_user(
            email=f"{role.value}@bench.example", name=role.value, password=password, role=role
        )
    registrations: dict[int, int] = {}
    for contact in loaded.contacts_of:
        registrations[contact] = registrations.get(contact, 0) + 1
    busiest = max(registrations, key=lambda contact: (registrations[contact], -contact))
    app = create_app(settings, manage_db=False)
    token = re.compile(r'name="csrf_token" value="([^"]+)"')
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=settings.public_base_url,
            headers={"accept": "text/html"},
        ) as client,
    ):

        async def csrf(page: str) -> str:
            found = token.search((await client.get(page)).text)
            assert found, f"no form token on {page}"
            return found.group(1)

        signed_in = await client.post(
            "/login",
            data={
                "email": f"{Role.ANALYST.value}@bench.example",
                "password": password,
                "csrf_token": await csrf("/login"),
            },
        )
        assert signed_in.status_code == 303, signed_in.text[:500]
        form_token = await csrf("/admin/segments/new")

        async def page(path: str, form: dict[str, str] | None = None) -> httpx.Response:
            if form is None:
                response = await client.get(path)
            else:
                response = await client.post(path, data={**form, "csrf_token": form_token})
            assert response.status_code == 200, (path, response.status_code)
            return response

        dashboard = f"/admin/analytics/webinars/{webinar_id}"
        live_count = {"attendance": "attended", "watch": "50", "partial": "1"}
        pages: list[tuple[str, str, str, dict[str, str] | None, float]] = [
            ("session", "dashboard page", f"{dashboard}?session={session_id}", None,
             SESSION_GOAL_MS),
            ("webinar", "dashboard page", dashboard, None, WIDE_GOAL_MS),
            ("all", "overview page", "/admin/analytics", None, WIDE_GOAL_MS),
            ("contact", f"profile ({registrations[busiest]} registrations)",
             f"/admin/contacts/{busiest}", None, SESSION_GOAL_MS),
            ("webinar", "segment count", "/admin/segments/check",
             {**live_count, "webinar": str(webinar_id)}, WIDE_GOAL_MS),
            ("all", "segment count", "/admin/segments/check", live_count, WIDE_GOAL_MS),
        ]  # fmt: skip
        for scope, name, path, form, goal in pages:
            ms, response = await timed(lambda p=path, f=form: page(p, f), repeat)
            if form is not None:
                counted = re.search(r"data-segment-count>([0-9]+)<", response.text)
                assert counted, f"no count for {form}"
                name = f"{name} ({int(counted.group(1)):,})"
            report.page(scope, name, ms, goal, len(response.content))


async def run_backend(name: str, database_url: str, plan: Plan, args: argparse.Namespace) -> None:
    """Load, rebuild and time every query on one database."""
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from app import db
    from app.services import attendance, engagement
    from app.services.engagement import Filters
    from app.settings import Settings, use_settings

    print(f"\n{name}")
    with tempfile.TemporaryDirectory(prefix="encore-bench-analytics-") as tmp:
        EXECUTOR_CACHE.clear()  # Tortoise caches SQL per connection name; dialects change here
        settings = Settings(
            var_dir=Path(tmp), database_url=database_url, public_base_url="https://e.x"
        )
        use_settings(settings)
        await db.migrate(settings)
        await db.init_db(settings)
        started = time.perf_counter()
        loaded = await load(plan)
        print(
            f"  loaded {len(plan.events):,} events, {len(plan.registrants):,} registrations, "
            f"{plan.contacts:,} contacts, {len(plan.chat):,} chat messages, "
            f"{len(plan.answers):,} answers in {time.perf_counter() - started:.1f} s"
        )
        started = time.perf_counter()
        rows = await attendance.rebuild()
        print(
            f"  attendance.rebuild(): {rows:,} Attendance rows (and the daily visitors) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        duck = duckdb_reference(plan, loaded, Path(tmp))
        # A session and a webinar of typical size: the median by registrations.
        sizes: dict[int, int] = {}
        for _, _, session, _ in plan.registrants:
            sizes[session] = sizes.get(session, 0) + 1
        session_index = sorted(sizes, key=lambda s: sizes[s])[len(sizes) // 2]
        webinar_index = plan.sessions[session_index][0]
        session_id, webinar_id = loaded.sessions[session_index], loaded.webinars[webinar_index]
        minutes = math.ceil(plan.durations[webinar_index] / 60)
        report = Report()
        scopes = [
            (
                "session",
                Filters(webinar_id=webinar_id, session_id=session_id),
                f"session_id = {session_id}",
                None,
                SESSION_GOAL_MS,
            ),
            (
                "webinar",
                Filters(webinar_id=webinar_id),
                f"webinar_id = {webinar_id}",
                f"webinar_id = {webinar_id}",
                WIDE_GOAL_MS,
            ),
            ("all", Filters(), "true", "true", WIDE_GOAL_MS),
        ]
        session_of_webinar = (
            f"session_id IN (SELECT id FROM sessions WHERE webinar_id = {webinar_id})"
        )
        for scope, filters, where, visitors_where, goal in scopes:
            chat_where = where if scope != "webinar" else session_of_webinar
            ms, ours = await timed(lambda f=filters: engagement.funnel(f), args.repeat)
            duck_ms, theirs = timed_duck(
                lambda w=where, v=visitors_where: duck_funnel(duck, w, v), args.repeat
            )
            report.row(scope, "funnel", ms, goal, duck_ms)
            report.same(
                f"{scope} funnel",
                (ours.visitors, ours.registered, ours.attended, ours.stayed_to_end, ours.converted),
                theirs,
            )
            ms, ours = await timed(lambda f=filters: engagement.attendance_summary(f), args.repeat)
            duck_ms, theirs = timed_duck(lambda w=where: duck_summary(duck, w), args.repeat)
            report.row(scope, "attendance_summary", ms, goal, duck_ms)
            report.same(
                f"{scope} attendance",
                (
                    ours.attended,
                    ours.average_watch_seconds,
                    ours.median_watch_seconds,
                    ours.average_watch_share,
                ),
                theirs,
            )
            if scope != "all":
                ms, ours = await timed(lambda f=filters: engagement.drop_off(f), args.repeat)
                duck_ms, theirs = timed_duck(
                    lambda w=where: duck_drop_off(duck, w, minutes), args.repeat
                )
                report.row(scope, "drop_off", ms, goal, duck_ms)
                report.same(f"{scope} drop-off", ours.viewers, theirs)
                ms, ours = await timed(
                    lambda f=filters: engagement.interaction_results(f), args.repeat
                )
                duck_ms, theirs = timed_duck(
                    lambda w=chat_where: duck_interactions(duck, w), args.repeat
                )
                report.row(scope, "interaction_results", ms, goal, duck_ms)
                clicked = tuple(sorted((i.interaction_id, i.clicked) for i in ours if i.clicked))
                report.same(f"{scope} clicks", clicked, theirs[1])
                report.same(
                    f"{scope} answers",
                    sum(i.responses for i in ours),
                    sum(n for _, _, n in theirs[0]),
                )
            ms, ours = await timed(lambda f=filters: engagement.chat_summary(f), args.repeat)
            duck_ms, theirs = timed_duck(lambda w=chat_where: duck_chat(duck, w), args.repeat)
            report.row(scope, "chat_summary", ms, goal, duck_ms)
            report.same(
                f"{scope} chat",
                (
                    ours.attendee_messages,
                    ours.questions,
                    ours.team_replies,
                    ours.answered,
                    ours.median_response_seconds,
                ),
                theirs[:5],
            )
        ms, ours = await timed(lambda: engagement.webinar_overview(None, None), args.repeat)
        duck_ms, theirs = timed_duck(lambda: duck_overview(duck), args.repeat)
        report.row("all", "webinar_overview", ms, WIDE_GOAL_MS, duck_ms)
        report.same(
            "overview",
            [
                (
                    r.webinar_id,
                    r.visitors,
                    r.registered,
                    r.attended,
                    r.average_watch_share,
                    r.conversions,
                )
                for r in ours
            ],
            [tuple(t) for t in theirs],
        )
        ms, _ = await timed(
            lambda: engagement.funnel(
                Filters(webinar_id=webinar_id, start=date(2026, 1, 1), end=date(2026, 1, 31))
            ),
            args.repeat,
        )
        report.row("webinar", "funnel, one month", ms, WIDE_GOAL_MS, None)
        await time_pages(report, settings, plan, loaded, webinar_id, session_id, args.repeat)
        for people in (150, 3000):
            full, bare = await flush_cost(plan, loaded, people, args.repeat)
            report.lines.append(
                f"  room flush of {people:,} heartbeats with their Attendance rows: {full:.1f} ms "
                f"(the heartbeat INSERT alone: {bare:.1f} ms)"
            )
        print("\n".join(report.lines))
        print(f"  goals: {'all met' if not report.misses else f'{report.misses} MISSED'}")
        print(
            "  pages: "
            + (
                "all within the query goals"
                if not report.page_misses
                else f"{report.page_misses} above the query goals"
            )
        )
        if report.differences:
            print("  figures that differ from DuckDB's:")
            for line in report.differences:
                print(f"    {line}")
        else:
            print("  every figure checked is the same as DuckDB's")
        duck.close()
        await db.close_db()


async def main() -> None:
    """Parse the arguments and run every backend asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--postgres-db", default="encore_bench_analytics")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
    started = time.perf_counter()
    plan = make_plan(args.events, args.sessions, args.contacts)
    kinds: dict[str, int] = {}
    for event in plan.events:
        kinds[event[0]] = kinds.get(event[0], 0) + 1
    print(
        f"generated in {time.perf_counter() - started:.1f} s: "
        + ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items()))
    )
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="encore-bench-db-") as tmp:
                await run_backend("SQLite", f"sqlite://{tmp}/encore.sqlite3", plan, args)
        elif backend == "postgres":
            url = await fresh_postgres(args.postgres, args.postgres_db)
            await run_backend("PostgreSQL", url, plan, args)
        else:
            raise SystemExit(f"unknown backend {backend!r}")


if __name__ == "__main__":
    asyncio.run(main())
