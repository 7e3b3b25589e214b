"""Joins, leaves and clicks recorded close together share one INSERT, and each waits for it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tortoise.exceptions import OperationalError

from app.models import AnalyticsEvent
from app.services import attendance, rows
from app.settings import Settings
from tests.services.test_attendance_rollup import at, make_attendee, make_session


async def test_a_crowd_joining_is_written_in_few_statements_each_join_stored_when_it_returns(
    database: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await make_session()
    crowd = [await make_attendee(session, f"Person {n}") for n in range(40)]
    statements: list[int] = []
    insert_rows = rows.insert_rows

    async def counted(connection: Any, model: Any, names: Any, values: Any, **options: Any) -> Any:
        statements.append(len(values))
        return await insert_rows(connection, model, names, values, **options)

    monkeypatch.setattr(attendance, "insert_rows", counted)

    async def join(number: int) -> None:
        who = crowd[number].presence
        await attendance.record(attendance.JOIN, who, at(number / 100), number / 100)
        # Back from record: its event is in the database.
        stored = await AnalyticsEvent.filter(
            kind=attendance.JOIN, registrant_id=who.registrant_id
        ).count()
        assert stored == 1

    await asyncio.gather(*(join(number) for number in range(40)))
    assert sum(statements) == 40
    assert len(statements) <= 3  # gathered within GROUP_WAIT, not one statement per join
    assert await AnalyticsEvent.filter(kind=attendance.JOIN).count() == 40
    # A leave after them is a group of its own, and still ordered after its join.
    await attendance.record(attendance.LEAVE, crowd[0].presence, at(60), 60.0)
    assert statements[-1] == 1


async def test_a_group_that_cannot_be_written_fails_every_caller_in_it(
    database: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await make_session()
    ann = await make_attendee(session)
    bob = await make_attendee(session, "Bob Example")
    insert_rows = rows.insert_rows
    calls = 0

    async def down_once(connection: Any, *arguments: Any, **options: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # the database is unreachable for this one statement
            raise OperationalError("connection lost")
        return await insert_rows(connection, *arguments, **options)

    monkeypatch.setattr(attendance, "insert_rows", down_once)
    results = await asyncio.gather(
        attendance.record(attendance.JOIN, ann.presence, at(0), 0.0),
        attendance.record(attendance.JOIN, bob.presence, at(0), 0.0),
        return_exceptions=True,
    )
    assert [type(result) for result in results] == [OperationalError, OperationalError]
    assert await AnalyticsEvent.filter(kind=attendance.JOIN).count() == 0
    # The next group is written as usual.
    await attendance.record(attendance.JOIN, ann.presence, at(1), 1.0)
    assert await AnalyticsEvent.filter(kind=attendance.JOIN).count() == 1


async def test_online_counts_take_each_attendees_latest_event_in_the_window(
    database: Settings,
) -> None:
    session, other, empty = await make_session(), await make_session(), await make_session()
    ann, bob, cat, dan = [
        await make_attendee(session, name) for name in ("Ann", "Bob", "Cat", "Dan")
    ]
    eve = await make_attendee(other, "Eve")
    now = at(600)
    buffer = attendance.HeartbeatBuffer()
    await attendance.record(attendance.JOIN, ann.presence, at(560), 560.0)  # in
    await attendance.record(attendance.JOIN, bob.presence, at(570), 570.0)
    await attendance.record(attendance.LEAVE, bob.presence, at(590), 590.0)  # left
    await attendance.record(attendance.JOIN, cat.presence, at(500), 500.0)  # silent too long
    # Dan's leave is written before a heartbeat it follows (a buffered heartbeat is flushed
    # later): the event with the later time counts, whatever order the rows were written in.
    await attendance.record(attendance.LEAVE, dan.presence, at(595), 595.0)
    buffer.add(dan.presence, at(585), 585.0, playing=True)
    buffer.add(eve.presence, at(599), 599.0, playing=True)  # in, in the other session
    await buffer.flush()
    # Events of the session that name no registrant (a landing-page view, say) are not people.
    await AnalyticsEvent.create(kind=attendance.JOIN, at=at(598), session_id=session.id)

    counts = await attendance.online_counts([session.id, other.id, empty.id, session.id], now)
    assert counts == {session.id: 1, other.id: 1, empty.id: 0}
    # The same as the registrants listed one session at a time.
    assert await attendance.online_registrants(session.id, now) == {ann.registrant_id}
    assert await attendance.online_registrants(other.id, now) == {eve.registrant_id}
    assert await attendance.online_counts([], now) == {}
    # Once Ann's join is older than the window, nobody is left.
    assert await attendance.online_counts([session.id], now + attendance.ONLINE_WINDOW) == {
        session.id: 0
    }
