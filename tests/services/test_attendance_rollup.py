"""Attendance rows kept up to date from the room's calls, and rebuilt from the events, alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.models import (
    AnalyticsEvent,
    Attendance,
    ChatMessage,
    Contact,
    Interaction,
    InteractionResponse,
    Registrant,
    Video,
    VideoState,
    Webinar,
    WebinarSession,
)
from app.realtime import protocol
from app.services import attendance, attendance_rows, chat, crypto, downloads, room, rows
from app.services.attendance import HeartbeatBuffer, Presence
from app.services.attendance_rows import Change
from app.settings import Settings

T0 = datetime(2030, 5, 6, 15, 0, tzinfo=UTC)
VIDEO_SECONDS = 600.0
COLUMNS = (
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


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def make_session(duration: float | None = VIDEO_SECONDS) -> WebinarSession:
    video = None
    if duration is not None:
        video = await Video.create(
            title="Talk", source_key="uploads/x", state=VideoState.READY, duration_seconds=duration
        )
    webinar = await Webinar.create(
        slug=f"w-{uuid.uuid4().hex[:8]}", title="Onboarding", video=video
    )
    return await WebinarSession.create(webinar=webinar, starts_at=T0)


async def make_attendee(session: WebinarSession, name: str = "Ann Example") -> room.Attendee:
    contact = await Contact.create(email=f"{uuid.uuid4().hex[:8]}@example.com", name=name)
    token = crypto.new_token()
    registrant = await Registrant.create(
        contact=contact,
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        session=session,
        join_token_hash=crypto.hash_token(token),
        join_token_sealed=crypto.seal(token),
    )
    return room.Attendee(
        registrant_id=registrant.id,
        contact_id=contact.id,
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        session_id=session.id,
        session_kind="scheduled",
        starts_at=T0,
        duration=VIDEO_SECONDS,
        name=name,
        language="en",
        token=token,
    )


async def row_of(who: Presence) -> dict[str, Any]:
    found = await Attendance.filter(
        session_id=who.session_id, registrant_id=who.registrant_id
    ).values(*COLUMNS)
    assert len(found) == 1
    return found[0]


async def all_rows() -> list[dict[str, Any]]:
    return list(await Attendance.all().order_by("session_id", "registrant_id").values(*COLUMNS))


def test_the_rules_use_the_players_heartbeat_interval() -> None:
    assert protocol.HEARTBEAT_SECONDS == attendance_rows.HEARTBEAT_SECONDS


async def test_a_visit_is_counted_as_it_happens_and_rebuilt_the_same(database: Settings) -> None:
    session = await make_session()
    ann = await make_attendee(session)
    who = ann.presence
    poll = await Interaction.create(
        webinar_id=who.webinar_id,
        kind="poll",
        title="Which plan?",
        config={"options": ["Basic", "Pro"], "multiple": False},
        opens_at_seconds=0,
    )
    offer = await Interaction.create(
        webinar_id=who.webinar_id,
        kind="offer",
        title="20% off",
        config={"text": "", "button": "Buy", "url": "https://example.com", "countdown_seconds": 0},
        opens_at_seconds=0,
    )
    buffer = HeartbeatBuffer()
    await attendance.record(attendance.JOIN, who, at(0), 0.0)
    beats = [
        (20, 20, True),
        (40, 40, True),  # +20 s watched; minute 0
        (60, 60, True),  # +20 s; minutes 0 and 1
        (80, 80, False),  # paused: nothing watched
        (100, 80, True),  # after a pause: only its own minute (1)
        (160, 140, True),  # 60 s later: +40 s (the cap), only its own minute (2)
    ]
    for second, position, playing in beats:
        buffer.add(who, at(second), position, playing=playing)
    assert await buffer.flush() == 6
    buffer.add(who, at(180), 160, playing=True)  # across the flush: +20 s; minute 2
    await chat.post(ann, "Is there a replay?", at(185), team_online=True)
    await room.answer(ann, poll.id, 1, at(186))
    await room.click(ann, offer.id, at(188))
    await attendance.record(attendance.LEAVE, who, at(190), 165.0)
    # A second visit: its first heartbeat pairs with nothing before it.
    await attendance.record(attendance.JOIN, who, at(300), 300.0)
    buffer.add(who, at(320), 320, playing=True)  # minute 5
    buffer.add(who, at(340), 570, playing=True)  # +20 s; a jump, so only minute 9
    await attendance.record(attendance.LEAVE, who, at(345), 572.0)
    await buffer.flush()

    counted = await row_of(who)
    assert counted == {
        "webinar_id": who.webinar_id,
        "session_id": who.session_id,
        "registrant_id": who.registrant_id,
        "contact_id": who.contact_id,
        "first_join_at": at(0),
        "last_seen_at": at(345),
        "watched_seconds": 20 + 20 + 40 + 20 + 20,
        "furthest_seconds": 572.0,
        "minutes": [0, 1, 2, 5, 9],
        "stayed_to_end": True,  # 572 >= 95% of 600 = 570
        "clicked_offer": True,
        "chat_messages": 1,
        "responses": 1,
        "downloads": 0,
        "clicked": [offer.id],
    }
    assert await ChatMessage.filter(registrant_id=who.registrant_id).count() == 1
    assert await InteractionResponse.filter(registrant_id=who.registrant_id).count() == 1

    assert await attendance.rebuild(session.id) == 1
    assert await row_of(who) == counted
    assert await attendance.rebuild() == 1
    assert await row_of(who) == counted


async def test_many_attendees_in_one_flush_match_a_rebuild(database: Settings) -> None:
    first, second = await make_session(), await make_session(duration=None)
    people = [await make_attendee(first, f"P{n} Example") for n in range(4)]
    people.append(await make_attendee(second, "Zoe Example"))
    buffer = HeartbeatBuffer()
    for index, person in enumerate(people):
        await attendance.record(attendance.JOIN, person.presence, at(index), float(index))
    for step in range(1, 30):
        for index, person in enumerate(people):
            # Each plays at its own pace; the third pauses half the time.
            playing = index != 2 or step % 2 == 0
            position = step * 20.0 * (1 + index / 10)
            buffer.add(person.presence, at(step * 20 + index), position, playing=playing)
        if step % 7 == 0:
            await buffer.flush()
    await attendance.record(attendance.LEAVE, people[0].presence, at(700), 580.0)
    await buffer.flush()
    counted = await all_rows()
    assert len(counted) == 5
    # Without a video the session lasts an hour: Zoe's 29 heartbeats do not reach 95% of it.
    zoe = counted[-1]
    assert zoe["registrant_id"] == people[-1].registrant_id
    assert zoe["stayed_to_end"] is False
    assert zoe["furthest_seconds"] == pytest.approx(29 * 20 * 1.4)
    assert counted[0]["stayed_to_end"] is True  # left at 580 s of a 600 s video
    assert await attendance.rebuild() == 5
    assert await all_rows() == counted


async def test_flushes_of_any_size_run_the_same_statements_on_postgresql(
    database: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await make_session()
    people = [await make_attendee(session, f"P{n} Example") for n in range(4)]
    statements: list[str] = []

    def spy(build: Any) -> Any:
        def built(*arguments: Any, **options: Any) -> list[rows.Statement]:
            made: list[rows.Statement] = build(*arguments, **options)
            statements.extend(sql for sql, _values in made)
            return made

        return built

    built = spy(rows.insert_statements)
    monkeypatch.setattr(rows, "insert_statements", built)
    monkeypatch.setattr(attendance_rows, "insert_statements", built)
    buffer = HeartbeatBuffer()
    for size in (1, 3):  # one attendee's heartbeat and change, then three
        for person in people[:size]:
            buffer.add(person.presence, at(size * 20), size * 20.0, playing=True)
        await buffer.flush()
    assert await Attendance.all().count() == 3
    assert await AnalyticsEvent.filter(kind="heartbeat").count() == 4
    assert len(statements) == 4  # the events, then the rows, at each flush
    if database.resolved_database_url.startswith("postgres"):
        # Prepared once per connection: the rows go as arrays, whatever their number.
        assert statements[0] == statements[2]
        assert statements[1] == statements[3]
    else:
        assert statements[0] != statements[2]  # SQLite lists each row's parameters


async def test_changes_from_two_processes_add_up(database: Settings) -> None:
    session = await make_session()
    who = (await make_attendee(session)).presence

    def change(**values: Any) -> Change:
        return Change(who.webinar_id, who.session_id, who.registrant_id, who.contact_id, **values)

    await attendance_rows.apply_changes(
        [change(first_join_at=at(50), last_seen_at=at(60), watched_seconds=10.0, minutes={1, 2})]
    )
    await attendance_rows.apply_changes(
        [
            change(
                first_join_at=at(5),
                last_seen_at=at(55),
                watched_seconds=5.5,
                furthest_seconds=200.0,
                minutes={2, 3},
                chat_messages=1,
                clicked={7},
            )
        ]
    )
    await attendance_rows.apply_changes(
        [change(furthest_seconds=100.0, downloads=2, clicked={3, 7})]
    )
    row = await row_of(who)
    assert row["first_join_at"] == at(5)
    assert row["last_seen_at"] == at(60)
    assert row["watched_seconds"] == 15.5
    assert row["furthest_seconds"] == 200.0
    assert row["minutes"] == [1, 2, 3]
    assert row["chat_messages"] == 1
    assert row["downloads"] == 2
    assert row["clicked"] == [3, 7]
    assert row["stayed_to_end"] is False


async def test_a_failed_flush_keeps_everything_for_the_next(
    database: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await make_session()
    who = (await make_attendee(session)).presence
    buffer = HeartbeatBuffer()
    await attendance.record(attendance.JOIN, who, at(0), 0.0)
    buffer.add(who, at(20), 20, playing=True)
    buffer.add(who, at(40), 40, playing=True)

    async def broken(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise RuntimeError("database away")

    monkeypatch.setattr(attendance, "insert_rows", broken)
    with pytest.raises(RuntimeError):
        await buffer.flush()
    assert await Attendance.all().count() == 0
    assert len(buffer) == 2
    monkeypatch.undo()
    buffer.add(who, at(60), 60, playing=True)
    assert await buffer.flush() == 3
    row = await row_of(who)
    assert row["watched_seconds"] == 40.0
    assert row["minutes"] == [0, 1]
    assert row["first_join_at"] == at(0)
    assert await AnalyticsEvent.filter(kind="heartbeat").count() == 3


async def test_a_download_counts_at_once(database: Settings) -> None:
    session = await make_session()
    ann = await make_attendee(session)
    handout = await Interaction.create(
        webinar_id=ann.webinar_id,
        kind="download",
        title="Slides",
        config={"file_key": "downloads/x.pdf"},
        opens_at_seconds=0,
    )
    registrant = await Registrant.get(id=ann.registrant_id)
    for _ in range(2):
        await downloads.record_download(registrant=registrant, interaction=handout, now=at(30))
    row = await row_of(ann.presence)
    assert row["downloads"] == 2
    assert row["clicked"] == [handout.id]
    assert row["first_join_at"] is None  # fetched without joining the room
    assert await attendance.rebuild(session.id) == 1
    assert await row_of(ann.presence) == row


async def test_rebuild_keeps_sessions_whose_events_are_gone(database: Settings) -> None:
    kept, emptied = await make_session(), await make_session()
    buffer = HeartbeatBuffer()
    for session in (kept, emptied):
        who = (await make_attendee(session)).presence
        await attendance.record(attendance.JOIN, who, at(0), 0.0)
        buffer.add(who, at(20), 20, playing=True)
    await buffer.flush()
    before = await all_rows()
    await AnalyticsEvent.filter(session_id=emptied.id).delete()
    assert await attendance.rebuild() == 1
    assert await all_rows() == before


async def test_a_question_to_the_presenter_is_an_answer_and_a_message(
    database: Settings,
) -> None:
    session = await make_session()
    who = (await make_attendee(session)).presence
    attendance.note_response(who, question=True)
    attendance.note_response(who)
    attendance.note_chat(who)
    await HeartbeatBuffer().flush()
    row = await row_of(who)
    assert (row["responses"], row["chat_messages"], row["first_join_at"]) == (2, 2, None)
