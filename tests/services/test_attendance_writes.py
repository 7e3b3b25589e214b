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
    insert_many = rows.insert_many

    async def counted(connection: Any, objects: list[AnalyticsEvent], **options: Any) -> Any:
        statements.append(len(objects))
        return await insert_many(connection, objects, **options)

    monkeypatch.setattr(attendance, "insert_many", counted)

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
    insert_many = rows.insert_many
    calls = 0

    async def down_once(connection: Any, objects: Any, **options: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # the database is unreachable for this one statement
            raise OperationalError("connection lost")
        return await insert_many(connection, objects, **options)

    monkeypatch.setattr(attendance, "insert_many", down_once)
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
