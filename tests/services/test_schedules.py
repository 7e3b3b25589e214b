"""The schedule editor's service: form to rules, preview, and edits that move or release people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.models import (
    AuditEvent,
    Contact,
    EmailState,
    OutboxMessage,
    PlannedEmail,
    Registrant,
    Schedule,
    Webinar,
    WebinarSession,
)
from app.schedule import parse_schedule
from app.services import crypto, delivery, mail, schedules
from app.services.content import FormErrors
from app.services.schedules import ScheduleInput, form_to_rules
from app.settings import Settings

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday, 09:00 in Berlin


@pytest.fixture(autouse=True)
def configured_mailer() -> None:
    """The outbox mailer the settings choose, with no test override left behind."""
    mail.use_mailer(None)


def berlin(iso: str) -> datetime:
    """A Berlin wall time as a UTC instant."""
    return datetime.fromisoformat(iso).replace(tzinfo=BERLIN).astimezone(UTC)


def form(**values: str | list[str]) -> dict[str, list[str]]:
    """An editor form (every field a list of values, as a browser sends it)."""
    base: dict[str, str | list[str]] = {
        "kind": "recurring",
        "timezone": "Europe/Berlin",
        "repeat": "weekly",
        "weekdays": ["tue"],
        "times": ["10:00", ""],
        "upcoming_count": "3",
        "cutoff_minutes": "0",
        "orphan_policy": "move",
    }
    base.update(values)
    return {key: [value] if isinstance(value, str) else value for key, value in base.items()}


def valid(**values: str | list[str]) -> ScheduleInput:
    result = form_to_rules(form(**values))
    assert isinstance(result, ScheduleInput), getattr(result, "errors", result)
    return result


# --- form_to_rules ------------------------------------------------------------------------------

VALID_FORMS: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    (
        "weekly on two weekdays",
        {"weekdays": ["thu", "tue"], "times": ["18:30", "", "10:00", ""]},
        {
            "repeat": "weekly",
            "weekdays": ["tue", "thu"],
            "times": ["18:30", "10:00"],
            "upcoming_count": 3,
            "cutoff_minutes": 0,
        },
        [],
    ),
    (
        "every two weeks from an anchor date",
        {"repeat": "biweekly", "weekdays": ["mon"], "anchor_date": "2026-03-02"},
        {
            "repeat": "biweekly",
            "weekdays": ["mon"],
            "anchor_date": "2026-03-02",
            "times": ["10:00"],
            "upcoming_count": 3,
            "cutoff_minutes": 0,
        },
        [],
    ),
    (
        "monthly on the last friday",
        {"repeat": "monthly", "week": "-1", "weekday": "fri", "weekdays": []},
        {
            "repeat": "monthly",
            "week": "last",
            "weekday": "fri",
            "times": ["10:00"],
            "upcoming_count": 3,
            "cutoff_minutes": 0,
        },
        [],
    ),
    (
        "specific dates (seconds from a browser are dropped)",
        {"kind": "specific", "dates": ["2026-05-08T10:00:00", "", "2026-05-01T10:00"]},
        {
            "dates": ["2026-05-08T10:00", "2026-05-01T10:00"],
            "upcoming_count": 3,
            "cutoff_minutes": 0,
        },
        [],
    ),
    (
        "on demand within dates, never attendee-local",
        {
            "kind": "on_demand",
            "attendee_local": "1",
            "start_date": "2026-04-01",
            "end_date": "2026-06-30",
            "blackout_dates": ["2026-05-01", "", "2026-04-06", "2026-05-01"],
        },
        {"start_date": "2026-04-01", "end_date": "2026-06-30"},
        ["2026-04-06", "2026-05-01"],
    ),
    (
        "just-in-time in hours, watch now, replays, capacity, cut-off",
        {
            "repeat": "weekdays",
            "times": [""],
            "jit": "1",
            "jit_every": "30",
            "jit_lead": "10",
            "hours_opens": "09:00",
            "hours_closes": "17:00",
            "watch_now": "1",
            "replays": "1",
            "replay_hours": "48",
            "capacity": "100",
            "cutoff_minutes": "15",
            "upcoming_count": "5",
        },
        {
            "repeat": "weekdays",
            "times": [],
            "jit": {"every_minutes": 30, "lead_minutes": 10},
            "hours": {"opens": "09:00", "closes": "17:00"},
            "watch_now": True,
            "replay_hours": 48,
            "upcoming_count": 5,
            "cutoff_minutes": 15,
            "capacity": 100,
        },
        [],
    ),
]


@pytest.mark.parametrize(
    ("values", "rules", "blackout"),
    [case[1:] for case in VALID_FORMS],
    ids=[case[0] for case in VALID_FORMS],
)
def test_form_to_rules_accepts(
    values: dict[str, Any], rules: dict[str, Any], blackout: list[str]
) -> None:
    result = valid(**values)
    assert result.rules == rules
    assert result.blackout_dates == blackout
    assert result.kind == values.get("kind", "recurring")
    assert result.timezone == "Europe/Berlin"
    assert result.attendee_local is False
    # What is stored is exactly what the rules parser reads back.
    again = parse_schedule(
        result.rules, kind=result.kind, timezone=result.timezone, blackout_dates=blackout
    )
    assert again == result.parsed


def test_attendee_local_and_policy_are_kept() -> None:
    result = valid(attendee_local="1", orphan_policy="notify", timezone="Asia/Kathmandu")
    assert result.attendee_local is True
    assert result.parsed.attendee_local is True
    assert result.orphan_policy == "notify"
    assert result.parsed.zone == ZoneInfo("Asia/Kathmandu")


INVALID_FORMS: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("no event type", {"kind": ""}, {"kind": "Choose an event type."}),
    ("unknown zone", {"timezone": "Mars/Olympus"}, {"timezone": "Unknown time zone"}),
    ("no zone", {"timezone": ""}, {"timezone": "Choose a time zone."}),
    ("weekly without weekdays", {"weekdays": []}, {"weekdays": "Choose at least one weekday."}),
    ("a time that does not exist", {"times": ["25:00"]}, {"times": "“25:00” is not one"}),
    ("no time at all", {"times": ["", ""]}, {"times": "Add at least one time"}),
    ("specific without dates", {"kind": "specific", "dates": [""]}, {"dates": "Add at least"}),
    (
        "not a leap year",
        {"kind": "specific", "dates": ["2027-02-29T10:00"]},
        {"dates": "“2027-02-29T10:00” is not"},
    ),
    ("no sessions offered", {"upcoming_count": "0"}, {"upcoming_count": "from 1 to 50"}),
    (
        "two errors at once",
        {"capacity": "many", "cutoff_minutes": "-5"},
        {"capacity": "whole number", "cutoff_minutes": "whole number"},
    ),
    ("replays without hours", {"replays": "1", "replay_hours": ""}, {"replay_hours": "Enter a"}),
    ("odd grid", {"jit": "1", "jit_every": "20"}, {"jit_every": "15, 30 or 60"}),
    (
        "hours without an end",
        {"jit": "1", "jit_every": "15", "hours_opens": "09:00"},
        {"hours_closes": "Enter when the hours end"},
    ),
    (
        "empty hours",
        {"jit": "1", "jit_every": "15", "hours_opens": "09:00", "hours_closes": "09:00"},
        {"hours_closes": "Must differ from the opening time."},
    ),
    (
        "end before start",
        {"start_date": "2026-05-02", "end_date": "2026-05-01"},
        {"end_date": "Must not be before the start date."},
    ),
    ("a blackout that is no date", {"blackout_dates": ["soon"]}, {"blackout_dates": "“soon”"}),
    (
        "every two weeks without an anchor",
        {"repeat": "biweekly", "weekdays": ["mon"]},
        {"anchor_date": "first week"},
    ),
    (
        "monthly without a weekday",
        {"repeat": "monthly", "week": "2"},
        {"weekday": "Choose a weekday."},
    ),
    ("monthly fifth week", {"repeat": "monthly", "week": "5", "weekday": "mon"}, {"week": "week"}),
    ("no policy", {"orphan_policy": "delete"}, {"orphan_policy": "removed session"}),
]


@pytest.mark.parametrize(
    ("values", "expected"),
    [case[1:] for case in INVALID_FORMS],
    ids=[case[0] for case in INVALID_FORMS],
)
def test_form_to_rules_names_the_input_of_each_error(
    values: dict[str, Any], expected: dict[str, str]
) -> None:
    result = form_to_rules(form(**values))
    assert isinstance(result, FormErrors)
    assert set(result.errors) == set(expected), result.errors
    for name, fragment in expected.items():
        assert fragment in result.errors[name], result.errors


def test_form_from_schedule_round_trips() -> None:
    original = valid(
        repeat="monthly",
        week="-1",
        weekday="fri",
        times=["10:00", "18:00"],
        jit="1",
        jit_every="60",
        jit_lead="0",
        hours_opens="22:00",
        hours_closes="02:00",
        replays="1",
        replay_hours="24",
        capacity="5",
        attendee_local="1",
        orphan_policy="notify",
        blackout_dates=["2026-12-24"],
        start_date="2026-04-01",
    )
    row = Schedule(
        kind=original.kind,
        timezone=original.timezone,
        attendee_local=original.attendee_local,
        rules=original.rules,
        blackout_dates=original.blackout_dates,
        orphan_policy=original.orphan_policy,
    )
    again = form_to_rules(schedules.form_from_schedule(row))
    assert isinstance(again, ScheduleInput)
    assert again == original
    assert isinstance(form_to_rules(schedules.form_from_schedule(None)), FormErrors)


# --- preview ------------------------------------------------------------------------------------


def test_preview_tells_the_spring_forward_shift_in_plain_words() -> None:
    rules = valid(repeat="daily", times=["02:30"], replays="1", replay_hours="48").parsed
    rows = schedules.preview(
        rules,
        datetime(2026, 3, 27, 12, tzinfo=UTC),
        viewer_zone=NEW_YORK,
        count=3,
        duration=timedelta(hours=1),
    )
    assert [row.webinar_time for row in rows] == [
        "Sat 28 Mar 2026, 02:30 CET",
        "Sun 29 Mar 2026, 03:30 CEST",
        "Mon 30 Mar 2026, 02:30 CEST",
    ]
    assert [row.shifted for row in rows] == [False, True, False]
    assert rows[1].note == "02:30 does not exist on 29 March (clocks go forward): runs at 03:30"
    assert rows[0].note == rows[2].note == ""
    assert rows[0].viewer_time == "Fri 27 Mar 2026, 21:30 EDT"
    # The replay opens when the recording ends and lasts 48 hours.
    assert rows[0].replay_until == "Mon 30 Mar 2026, 04:30 CEST"
    assert not any(row.just_in_time for row in rows)


def test_preview_marks_just_in_time_and_leaves_replays_out_when_off() -> None:
    rules = valid(
        kind="specific", dates=["2026-03-10T18:00"], jit="1", jit_every="15", jit_lead="5"
    ).parsed
    rows = schedules.preview(rules, datetime(2026, 3, 2, 8, 1, tzinfo=UTC))
    assert [(row.webinar_time, row.just_in_time) for row in rows] == [
        ("Mon 2 Mar 2026, 09:15 CET", True),
        ("Tue 10 Mar 2026, 18:00 CET", False),
    ]
    assert all(row.viewer_time == "" and row.replay_until == "" for row in rows)


def test_preview_of_attendee_local_reads_the_times_in_the_viewers_zone() -> None:
    rules = valid(repeat="daily", times=["10:00"], attendee_local="1").parsed
    rows = schedules.preview(rules, NOW, viewer_zone=TOKYO, count=1)
    assert rows[0].viewer_time == "Tue 3 Mar 2026, 10:00 JST"
    assert rows[0].webinar_time == "Tue 3 Mar 2026, 02:00 CET"


# --- plan and apply -----------------------------------------------------------------------------


async def make_webinar(
    values: dict[str, Any] | None = None, *, language: str = "en", slug: str = "growth"
) -> Webinar:
    webinar = await Webinar.create(slug=slug, title="Growth Basics", language=language)
    stored = valid(**(values or {}))
    await Schedule.create(
        webinar=webinar,
        kind=stored.kind,
        timezone=stored.timezone,
        attendee_local=stored.attendee_local,
        rules=stored.rules,
        blackout_dates=stored.blackout_dates,
        orphan_policy=stored.orphan_policy,
    )
    return webinar


async def make_session(webinar: Webinar, starts_at: datetime, kind: str = "scheduled") -> Any:
    return await WebinarSession.create(webinar=webinar, starts_at=starts_at, kind=kind)


async def register(
    webinar: Webinar,
    session: WebinarSession,
    email: str,
    *,
    zone: str = "Europe/Berlin",
    name: str = "Ann Example",
) -> tuple[Registrant, str]:
    contact = await Contact.create(email=email, name=name)
    token = crypto.new_token()
    registrant = await Registrant.create(
        contact=contact,
        webinar=webinar,
        session=session,
        join_token_hash=crypto.hash_token(token),
        join_token_sealed=crypto.seal(token),
        timezone=zone,
    )
    return registrant, token


async def session_of(registrant: Registrant) -> datetime | None:
    await registrant.refresh_from_db()
    if registrant.session_id is None:
        return None
    session = await WebinarSession.get(id=registrant.session_id)
    return session.starts_at


async def outbox() -> list[OutboxMessage]:
    """The outbox once the scheduler has delivered what is due (the notices are planned rows)."""
    await delivery.deliver_due(NOW)
    return list(await OutboxMessage.all())


def outbox_text(message: OutboxMessage) -> str:
    parsed = message_from_string(message.content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def test_unchanged_sessions_plan_nothing(database: Settings) -> None:
    webinar = await make_webinar()
    session = await make_session(webinar, berlin("2026-03-10T10:00"))
    await register(webinar, session, "ann@example.com")
    same = valid(times=["10:00", "14:00"], weekdays=["tue", "wed"])
    plan = await schedules.plan_edit(webinar, same.parsed, NOW)
    assert not plan
    assert plan.moves == []


async def test_a_removed_session_moves_to_the_nearest_start(database: Settings) -> None:
    webinar = await make_webinar()
    session = await make_session(webinar, berlin("2026-03-10T10:00"))
    empty = await make_session(webinar, berlin("2026-03-17T10:00"))
    registrant, token = await register(webinar, session, "ann@example.com")
    # Monday the 9th is one day earlier, Thursday the 12th two days later.
    edit = valid(weekdays=["mon", "thu"])

    plan = await schedules.plan_edit(webinar, edit.parsed, NOW, policy="move")
    assert [s.session_id for s in plan.sessions] == [session.id]  # the empty one needs nothing
    (move,) = plan.moves
    assert move.registrant_id == registrant.id
    assert move.destination is not None
    assert move.destination.starts_at == berlin("2026-03-09T10:00")
    assert move.old_when == "Tue 10 Mar 2026, 10:00 CET"
    assert move.new_when == "Mon 9 Mar 2026, 10:00 CET"
    assert (await Schedule.get(webinar=webinar)).rules["weekdays"] == ["tue"], "plan saved"

    result = await schedules.apply_edit(webinar, edit, NOW, actor=None)
    assert [m.registrant_id for m in result.moved] == [registrant.id]
    assert result.notified == []
    assert await session_of(registrant) == berlin("2026-03-09T10:00")
    stored = await Schedule.get(webinar=webinar)
    assert stored.rules["weekdays"] == ["mon", "thu"]
    assert await Schedule.all().count() == 1
    assert await WebinarSession.filter(id=empty.id).exists()

    (message,) = await outbox()
    assert message.recipients == "ann@example.com"
    assert message.subject == "New time for “Growth Basics”"
    text = outbox_text(message)
    assert "Monday, March 9, 2026, 10:00\u202fAM (Europe/Berlin (UTC+01:00))" in text
    assert "Europe/Berlin (UTC+01:00)" in text
    # The personal link is the one sent at registration, unchanged.
    assert f"http://testserver/j/{token}" in text
    assert registrant.join_token_hash == crypto.hash_token(token)

    event = await AuditEvent.get(action="schedule.changed")
    assert event.details["moved"] == 1
    assert event.details["notified"] == 0


async def test_equal_distance_prefers_the_later_start(database: Settings) -> None:
    webinar = await make_webinar()
    session = await make_session(webinar, berlin("2026-03-10T10:00"))
    registrant, _ = await register(webinar, session, "ann@example.com")
    await schedules.apply_edit(webinar, valid(weekdays=["mon", "wed"]), NOW, actor=None)
    assert await session_of(registrant) == berlin("2026-03-11T10:00")


async def test_capacity_is_honoured_when_moving(database: Settings) -> None:
    webinar = await make_webinar({"capacity": "1"})
    removed = await make_session(webinar, berlin("2026-03-10T10:00"))
    monday = await make_session(webinar, berlin("2026-03-09T10:00"))
    first, _ = await register(webinar, removed, "first@example.com")
    second, _ = await register(webinar, removed, "second@example.com")
    await register(webinar, monday, "seated@example.com")  # Monday the 9th is full
    edit = valid(weekdays=["mon", "thu"], capacity="1")

    result = await schedules.apply_edit(webinar, edit, NOW, actor=None)

    assert len(result.moved) == 2
    # Earlier registrations get the nearer seats: Thursday the 12th (+2 days), then Thursday
    # the 5th (-5 days) rather than Monday the 16th (+6 days).
    assert await session_of(first) == berlin("2026-03-12T10:00")
    assert await session_of(second) == berlin("2026-03-05T10:00")
    assert await Registrant.filter(session_id=monday.id).count() == 1


async def test_planned_emails_move_with_the_registrant_or_are_cancelled(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    old = berlin("2026-03-10T10:00")
    session = await make_session(webinar, old)
    registrant, _ = await register(webinar, session, "ann@example.com")

    async def planned(kind: str, due: datetime, state: EmailState) -> PlannedEmail:
        return await PlannedEmail.create(
            kind=kind,
            to_email="ann@example.com",
            registrant=registrant,
            due_at=due,
            state=state,
            message_id=f"<{kind}@example.com>",
            context={"session_id": session.id, "starts_at": old.isoformat(), "note": "kept"},
        )

    day_before = await planned("reminder_24h", old - timedelta(hours=24), EmailState.SCHEDULED)
    hour_before = await planned("reminder_1h", old - timedelta(hours=1), EmailState.SCHEDULED)
    confirmation = await planned("confirmation", NOW - timedelta(days=3), EmailState.SENT)
    claimed = await planned("reminder_2h", old - timedelta(hours=2), EmailState.SENDING)
    now = datetime(2026, 3, 8, 10, tzinfo=UTC)  # Sunday: a day earlier is soon

    result = await schedules.apply_edit(webinar, valid(weekdays=["mon", "thu"]), now, actor=None)

    new = berlin("2026-03-09T10:00")
    assert result.moved[0].destination is not None
    assert result.moved[0].destination.starts_at == new
    target = await WebinarSession.get(webinar=webinar, starts_at=new)
    await day_before.refresh_from_db()
    await hour_before.refresh_from_db()
    await confirmation.refresh_from_db()
    await claimed.refresh_from_db()
    # 24 hours before the new start has already passed: cancelled rather than sent late.
    assert day_before.state == EmailState.CANCELLED
    assert day_before.due_at == old - timedelta(hours=24)
    assert hour_before.state == EmailState.SCHEDULED
    assert hour_before.due_at == new - timedelta(hours=1)
    assert hour_before.context == {
        "session_id": target.id,
        "starts_at": new.isoformat(),
        "note": "kept",
    }
    assert confirmation.state == EmailState.SENT
    assert confirmation.due_at == NOW - timedelta(days=3)
    assert claimed.state == EmailState.SENDING
    assert claimed.due_at == old - timedelta(hours=2)


async def test_notify_policy_releases_registrants_and_asks_them_to_pick(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    session = await make_session(webinar, berlin("2026-03-10T10:00"))
    registrant, token = await register(webinar, session, "ann@example.com")
    reminder = await PlannedEmail.create(
        kind="reminder_1h",
        to_email="ann@example.com",
        registrant=registrant,
        due_at=berlin("2026-03-10T09:00"),
        message_id="<r@example.com>",
    )
    edit = valid(weekdays=["mon", "thu"], orphan_policy="notify")

    plan = await schedules.plan_edit(webinar, edit.parsed, NOW, policy="notify")
    assert [move.destination for move in plan.moves] == [None]
    result = await schedules.apply_edit(webinar, edit, NOW, actor=None)

    assert [m.registrant_id for m in result.notified] == [registrant.id]
    assert result.moved == []
    assert await session_of(registrant) is None
    await reminder.refresh_from_db()
    assert reminder.state == EmailState.CANCELLED
    assert (await Schedule.get(webinar=webinar)).orphan_policy == "notify"
    (message,) = await outbox()
    assert message.subject == "Please pick a new time for “Growth Basics”"
    text = outbox_text(message)
    assert "http://testserver/w/growth" in text
    assert token not in text


async def test_move_without_any_start_left_asks_to_pick(database: Settings) -> None:
    webinar = await make_webinar()
    session = await make_session(webinar, berlin("2026-03-10T10:00"))
    registrant, _ = await register(webinar, session, "ann@example.com")
    result = await schedules.apply_edit(
        webinar, valid(kind="on_demand", watch_now="1"), NOW, actor=None
    )
    assert [m.registrant_id for m in result.notified] == [registrant.id]
    assert await session_of(registrant) is None
    (message,) = await outbox()
    assert "/w/growth" in outbox_text(message)


async def test_past_sessions_are_never_touched(database: Settings) -> None:
    webinar = await make_webinar()
    past = await make_session(webinar, berlin("2026-02-24T10:00"))
    registrant, _ = await register(webinar, past, "ann@example.com")
    edit = valid(weekdays=["mon"], times=["15:00"])
    assert not await schedules.plan_edit(webinar, edit.parsed, NOW)
    result = await schedules.apply_edit(webinar, edit, NOW, actor=None)
    assert result.moved == result.notified == []
    assert await session_of(registrant) == berlin("2026-02-24T10:00")
    assert await outbox() == []


async def test_attendee_local_is_judged_and_moved_in_each_registrants_zone(
    database: Settings,
) -> None:
    webinar = await make_webinar({"attendee_local": "1", "repeat": "daily"})
    tokyo_start = datetime(2026, 3, 10, 10, tzinfo=TOKYO).astimezone(UTC)
    tokyo_session = await make_session(webinar, tokyo_start)
    berlin_session = await make_session(webinar, berlin("2026-03-10T10:00"))
    in_tokyo, tokyo_token = await register(
        webinar, tokyo_session, "ken@example.com", zone="Asia/Tokyo"
    )
    in_berlin, _ = await register(webinar, berlin_session, "ann@example.com")

    # 10:00 Tokyo time is no 10:00 in Berlin, but it is the Tokyo registrant's 10:00.
    same = valid(attendee_local="1", repeat="daily", times=["10:00"])
    assert not await schedules.plan_edit(webinar, same.parsed, NOW)
    fixed = valid(repeat="daily", times=["10:00"])
    assert [
        m.registrant_id for m in (await schedules.plan_edit(webinar, fixed.parsed, NOW)).moves
    ] == [in_tokyo.id]

    later = valid(attendee_local="1", repeat="daily", times=["11:00"])
    result = await schedules.apply_edit(webinar, later, NOW, actor=None)

    assert len(result.moved) == 2
    assert await session_of(in_tokyo) == datetime(2026, 3, 10, 11, tzinfo=TOKYO).astimezone(UTC)
    assert await session_of(in_berlin) == berlin("2026-03-10T11:00")
    (message,) = [m for m in await outbox() if m.recipients == "ken@example.com"]
    text = outbox_text(message)
    assert "Asia/Tokyo (UTC+09:00)" in text
    assert "11:00" in text
    assert f"/j/{tokyo_token}" in text


async def test_emails_speak_the_webinars_language(database: Settings) -> None:
    webinar = await make_webinar(language="de")
    session = await make_session(webinar, berlin("2026-03-10T10:00"))
    await register(webinar, session, "anna@example.com", name="Anna")
    await schedules.apply_edit(webinar, valid(times=["11:00"]), NOW, actor=None)
    (message,) = await outbox()
    assert message.subject == "Neuer Termin für „Growth Basics“"
    text = outbox_text(message)
    assert text.startswith("Hallo Anna,")
    assert "Dienstag, 10. März 2026" in text
    assert "Ihr persönlicher Teilnahmelink bleibt gleich:" in text


class BrokenMailer:
    """A mail server that refuses everything."""

    async def send(self, message: EmailMessage) -> None:
        raise ConnectionRefusedError("mail server down")


async def test_the_notice_is_planned_with_the_edit_and_retried_until_it_goes_out(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    session = await make_session(webinar, berlin("2026-03-10T10:00"))
    registrant, _ = await register(webinar, session, "ann@example.com")
    result = await schedules.apply_edit(webinar, valid(times=["11:00"]), NOW, actor=None)
    assert await session_of(registrant) == berlin("2026-03-10T11:00")
    (notice,) = await PlannedEmail.filter(kind=schedules.CHANGE_EMAIL)
    assert (notice.registrant_id, notice.due_at, notice.state) == (
        registrant.id,
        NOW,
        EmailState.SCHEDULED,
    )
    assert [m.registrant_id for m in result.moved] == [registrant.id]
    # The mail server is down: the edit stands, the notice waits and is tried again.
    mail.use_mailer(BrokenMailer())
    assert await delivery.deliver_due(NOW) == {EmailState.SCHEDULED: 1}
    await notice.refresh_from_db()
    assert notice.state == EmailState.SCHEDULED
    assert "mail server down" in (notice.error or "")
    mail.use_mailer(None)
    assert await delivery.deliver_due(notice.due_at) == {EmailState.SENT: 1}
    (message,) = await OutboxMessage.all()
    assert message.subject == "New time for “Growth Basics”"


async def test_a_notice_that_would_arrive_after_the_new_start_is_not_sent(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    session = await make_session(webinar, berlin("2026-03-10T10:00"))
    await register(webinar, session, "ann@example.com")
    await schedules.apply_edit(webinar, valid(times=["11:00"]), NOW, actor=None)
    # The scheduler was down until after the new start.
    assert await delivery.deliver_due(berlin("2026-03-10T11:05")) == {EmailState.CANCELLED: 1}
    assert await OutboxMessage.all().count() == 0


async def test_apply_creates_the_schedule_when_missing(database: Settings) -> None:
    webinar = await Webinar.create(slug="fresh", title="Fresh")
    result = await schedules.apply_edit(webinar, valid(kind="on_demand"), NOW, actor=None)
    assert result.schedule.kind == "on_demand"
    assert await Schedule.filter(webinar=webinar).count() == 1


async def test_session_overview_lists_upcoming_then_past_in_the_webinar_zone(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    other = await Webinar.create(slug="other", title="No schedule")
    soon = await make_session(webinar, berlin("2026-03-03T10:00"))
    later = await make_session(other, datetime(2026, 3, 4, 12, tzinfo=UTC), kind="jit")
    past = await make_session(webinar, berlin("2026-02-24T10:00"))
    older = await make_session(webinar, berlin("2026-02-17T10:00"))
    await register(webinar, soon, "a@example.com")
    await register(webinar, past, "b@example.com")
    upcoming, recent = await schedules.session_overview(NOW)
    assert [row.session_id for row in upcoming] == [soon.id, later.id]
    assert [row.session_id for row in recent] == [past.id, older.id]
    assert upcoming[0].when == "Tue 3 Mar 2026, 10:00 CET"
    assert upcoming[1].when == "Wed 4 Mar 2026, 12:00 UTC"
    assert [row.registrants for row in upcoming + recent] == [1, 0, 1, 0]
    assert upcoming[1].kind == "jit"
    assert upcoming[1].webinar_title == "No schedule"
