"""Email sequences: defaults, planning (late registrants, DST, re-plans, two planners), sending."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest

from app.models import (
    AnalyticsEvent,
    Audience,
    Contact,
    EmailState,
    EmailStep,
    OutboxMessage,
    PlannedEmail,
    Registrant,
    StepKind,
    Webinar,
    WebinarSession,
)
from app.services import crypto, delivery, mail, sequences
from app.services.content import FormErrors
from app.settings import Settings
from emails import SmtpMailer
from tests.emails.test_bulk import Moody
from tests.emails.test_smtp import HOST, start_controller

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2030, 1, 8, 14, 0, tzinfo=UTC)  # Tuesday 15:00 in Berlin
END = START + timedelta(minutes=60)  # no video: sessions last an hour


@pytest.fixture(autouse=True)
def outbox_mailer() -> Iterator[None]:
    """The configured mailer: without SMTP, messages land in the outbox table."""
    mail.use_mailer(None)
    yield
    mail.use_mailer(None)  # a test that chose an SMTP server leaves nothing behind


async def make_webinar(*, late: str = "skip", language: str = "en") -> Webinar:
    return await Webinar.create(
        slug=f"w{await Webinar.all().count()}",
        title="Growth",
        language=language,
        late_reminders=late,
    )


async def make_registrant(
    webinar: Webinar,
    session: WebinarSession,
    email: str = "ann@example.com",
    *,
    name: str = "Ann Example",
    zone: str = "Europe/Berlin",
) -> Registrant:
    contact = await Contact.create(email=email, name=name)
    token = crypto.new_token()
    return await Registrant.create(
        contact=contact,
        webinar=webinar,
        session=session,
        join_token_hash=crypto.hash_token(token),
        join_token_sealed=crypto.seal(token),
        timezone=zone,
    )


async def step(
    webinar: Webinar, kind: StepKind, audience: Audience = Audience.EVERYONE
) -> EmailStep:
    return await EmailStep.get(webinar_id=webinar.id, kind=kind, audience=audience)


async def planned_for(registrant: Registrant) -> list[tuple[datetime, int]]:
    emails = await PlannedEmail.filter(
        registrant_id=registrant.id, kind=sequences.STEP_EMAIL, state=EmailState.SCHEDULED
    ).order_by("due_at", "id")
    return [(email.due_at, int(email.context["step_id"])) for email in emails]


def parsed(message: OutboxMessage) -> EmailMessage:
    result = message_from_string(message.content, policy=policy.default)
    assert isinstance(result, EmailMessage)
    return result


def text_of(message: OutboxMessage) -> str:
    body = parsed(message).get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(message: OutboxMessage) -> str:
    body = parsed(message).get_body(("html",))
    assert body is not None
    return str(body.get_content())


# --- Defaults and the editor's checks ---------------------------------------------------------


async def test_a_webinar_gets_its_default_sequence_once(database: Settings) -> None:
    webinar = await make_webinar()
    copies = [await Webinar.get(id=webinar.id) for _ in range(3)]
    await asyncio.gather(*(sequences.ensure_steps(copy) for copy in copies))
    steps = await sequences.steps_of(webinar)
    assert [sequences.describe(s) for s in steps] == [
        "1 day before the start",
        "1 hour before the start",
        "10 minutes before the start",
        "At the start",
        "1 hour after the end, to people who watched to the end",
        "1 hour after the end, to people who left early",
        "1 hour after the end, to people who missed it",
    ]
    assert (await Webinar.get(id=webinar.id)).emails_configured


async def test_the_default_sequence_speaks_the_webinars_language(database: Settings) -> None:
    webinar = await make_webinar(language="de")
    steps = await sequences.steps_of(webinar)
    assert steps[0].subject == "Morgen: {webinar}"
    assert steps[0].body.startswith("Hallo {first_name},")


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        ({"kind": "reminder", "subject": "", "body": "x", "amount": "1", "unit": "hours"},
         {"subject"}),
        ({"kind": "reminder", "subject": "Hi {nme}", "body": "x", "amount": "1", "unit": "hours"},
         {"subject"}),
        ({"kind": "reminder", "subject": "Hi", "body": "{join_link} {foo}", "amount": "1",
          "unit": "hours"}, {"body"}),
        ({"kind": "reminder", "subject": "Hi", "body": "x", "amount": "0", "unit": "minutes"},
         {"amount"}),
        ({"kind": "reminder", "subject": "Hi", "body": "x", "amount": "31", "unit": "days"},
         {"amount"}),
        ({"kind": "reminder", "subject": "Hi", "body": "x", "amount": "soon", "unit": "days"},
         {"amount"}),
        ({"kind": "follow_up", "subject": "Hi", "body": "x", "amount": "1", "unit": "days",
          "audience": "nobody"}, {"audience"}),
        ({"kind": "yesterday", "subject": "Hi", "body": "x"}, {"kind"}),
        ({"kind": "reminder", "subject": "Hi", "body": "x" * 20_001, "amount": "1",
          "unit": "hours"}, {"body"}),
    ],
)  # fmt: skip
def test_bad_steps_are_refused_field_by_field(form: dict[str, str], errors: set[str]) -> None:
    result = sequences.check_step(form)
    assert isinstance(result, FormErrors)
    assert set(result.errors) == errors


def test_a_subject_is_one_line_whatever_is_typed() -> None:
    result = sequences.check_step(
        {
            "kind": "follow_up",
            "subject": "Thanks\r\nBcc: eve@example.com",
            "body": "Hello {name}",
            "amount": "2",
            "unit": "hours",
            "audience": "missed",
            "enabled": "on",
        }
    )
    assert isinstance(result, sequences.StepInput)
    assert result.subject == "Thanks Bcc: eve@example.com"
    assert (result.minutes, result.audience, result.enabled) == (120, Audience.MISSED, True)


@pytest.mark.parametrize(
    "values",
    [
        {"first_name": "Ann", "name": "Ann Example", "join_link": "https://e.x/j/a?b=1&c=2"},
        {"first_name": "{webinar}", "name": "A <b>&amp;</b> {x}", "join_link": "{join_link}"},
        {"first_name": "", "name": "", "join_link": ""},
    ],
)
def test_a_step_cut_once_fills_as_the_compiled_step_does(values: dict[str, str]) -> None:
    step = sequences.StepInput(
        StepKind.REMINDER,
        60,
        Audience.EVERYONE,
        True,
        "In {minutes}: {webinar}  for\t{first_name}",
        "Hello {first_name}, {unknown} stays.\n\n{join_link}\n{name} {email} {when}",
    )
    webinar = Webinar(title="Growth {webinar} {x}", theme={})
    compiled = sequences.compile_step(step, webinar, language="de", with_unsubscribe=True)
    values = {
        **values,
        "email": "ann@example.com",
        "webinar": webinar.title,
        "when": "morgen <10:00>",
        "replay_link": values["join_link"],
        "register_link": "https://e.x/w/growth",
        "unsubscribe_link": "https://e.x/u/1.ab&c",
    }
    assert sequences._Prepared(compiled).fill(values) == compiled.fill(values)


async def test_at_most_ten_reminders(database: Settings) -> None:
    webinar = await make_webinar()
    await sequences.ensure_steps(webinar)
    reminder = sequences.StepInput(StepKind.REMINDER, 5, Audience.EVERYONE, True, "Hi", "Soon")
    for _ in range(7):
        assert isinstance(await sequences.save_step(webinar, reminder, None), EmailStep)
    assert await sequences.save_step(webinar, reminder, None) == (
        "A webinar has at most 10 reminders."
    )


# --- Planning ---------------------------------------------------------------------------------


async def test_each_step_is_planned_at_its_moment(database: Settings) -> None:
    webinar = await make_webinar()
    session = await WebinarSession.create(webinar=webinar, starts_at=START)
    registrant = await make_registrant(webinar, session)
    now = START - timedelta(days=3)
    assert await sequences.plan_pending(now) == 1
    assert await sequences.plan_pending(now) == 0
    steps = {s.id: s for s in await sequences.steps_of(webinar)}
    plan = await planned_for(registrant)
    assert [when for when, _ in plan] == [
        START - timedelta(days=1),
        START - timedelta(hours=1),
        START - timedelta(minutes=10),
        START,
        END + timedelta(hours=1),
        END + timedelta(hours=1),
        END + timedelta(hours=1),
    ]
    assert [sequences.describe(steps[step_id]) for _, step_id in plan][:4] == [
        "1 day before the start",
        "1 hour before the start",
        "10 minutes before the start",
        "At the start",
    ]
    assert (await Registrant.get(id=registrant.id)).plan_state == sequences.PLANNED
    (first,) = await PlannedEmail.filter(due_at=START - timedelta(days=1))
    assert first.to_email == "ann@example.com"


async def test_a_late_registrant_gets_no_stale_reminders(database: Settings) -> None:
    webinar = await make_webinar()
    session = await WebinarSession.create(webinar=webinar, starts_at=START)
    registrant = await make_registrant(webinar, session)
    await sequences.plan_pending(START - timedelta(minutes=30))
    assert [when for when, _ in await planned_for(registrant)][:2] == [
        START - timedelta(minutes=10),
        START,
    ]


async def test_the_latest_rule_sends_the_most_recent_missed_reminder_at_once(
    database: Settings,
) -> None:
    webinar = await make_webinar(late="latest")
    session = await WebinarSession.create(webinar=webinar, starts_at=START)
    registrant = await make_registrant(webinar, session)
    now = START - timedelta(minutes=30)
    await sequences.plan_pending(now)
    hour = next(
        s
        for s in await sequences.steps_of(webinar)
        if s.kind == StepKind.REMINDER and s.minutes == 60
    )
    assert (await planned_for(registrant))[:3] == [
        (now, hour.id),
        (START - timedelta(minutes=10), (await planned_for(registrant))[1][1]),
        (START, (await step(webinar, StepKind.STARTING)).id),
    ]
    # Planned again later (an edit), nobody gets that catch-up twice.
    await sequences.replan_webinar(webinar.id)
    await PlannedEmail.filter(due_at=now).update(state=EmailState.SENT)
    await sequences.plan_pending(now + timedelta(minutes=1))
    assert [when for when, _ in await planned_for(registrant)][:2] == [
        START - timedelta(minutes=10),
        START,
    ]


async def test_whole_days_keep_the_wall_time_across_a_dst_change_in_each_zone(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    # Sunday 29 March 2026, 10:00 in Berlin: the clocks went forward at 02:00 that night.
    start = datetime(2026, 3, 29, 10, 0, tzinfo=BERLIN).astimezone(UTC)
    session = await WebinarSession.create(webinar=webinar, starts_at=start)
    in_berlin = await make_registrant(webinar, session, "ann@example.com")
    in_new_york = await make_registrant(
        webinar, session, "bob@example.com", zone="America/New_York"
    )
    await sequences.plan_pending(start - timedelta(days=5))
    berlin_day = (await planned_for(in_berlin))[0][0]
    new_york_day = (await planned_for(in_new_york))[0][0]
    # Saturday 10:00 in Berlin (still winter time): 23 hours before.
    assert berlin_day == datetime(2026, 3, 28, 10, 0, tzinfo=BERLIN)
    assert start - berlin_day == timedelta(hours=23)
    # New York changed its clocks on 8 March: there a day before is 24 hours before.
    assert start - new_york_day == timedelta(hours=24)
    assert (await planned_for(in_berlin))[1][0] == start - timedelta(hours=1)


def test_a_day_before_a_time_that_the_clocks_skip_still_exists() -> None:
    # 02:30 on 29 March 2026 does not exist in Berlin; a day after 28 March 02:30 is read as
    # the zone's rules do: 03:30 summer time.
    moment = datetime(2026, 3, 28, 2, 30, tzinfo=BERLIN).astimezone(UTC)
    moved = sequences.shifted(moment, 24 * 60, BERLIN)
    assert moved.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 30)


async def test_editing_the_sequence_plans_everyone_again(database: Settings) -> None:
    webinar = await make_webinar()
    session = await WebinarSession.create(webinar=webinar, starts_at=START)
    registrant = await make_registrant(webinar, session)
    now = START - timedelta(days=3)
    await sequences.plan_pending(now)
    hour = next(
        s
        for s in await sequences.steps_of(webinar)
        if s.kind == StepKind.REMINDER and s.minutes == 60
    )
    # The day-before reminder already went out.
    await PlannedEmail.filter(due_at=START - timedelta(days=1)).update(state=EmailState.SENT)
    changed = sequences.StepInput(StepKind.REMINDER, 120, Audience.EVERYONE, True, "Soon", "Hi")
    assert isinstance(await sequences.save_step(webinar, changed, hour), EmailStep)
    assert (await Registrant.get(id=registrant.id)).plan_state == sequences.PLAN_AGAIN
    await sequences.plan_pending(now + timedelta(minutes=1))
    plan = [when for when, _ in await planned_for(registrant)]
    assert plan[:3] == [START - timedelta(hours=2), START - timedelta(minutes=10), START]
    assert await PlannedEmail.filter(state=EmailState.SENT).count() == 1  # not planned again
    cancelled = await PlannedEmail.filter(state=EmailState.CANCELLED).count()
    assert cancelled == 6  # the old plan, but for the email already sent


async def test_a_registrant_moved_to_another_session_is_planned_for_it(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    first = await WebinarSession.create(webinar=webinar, starts_at=START)
    later = await WebinarSession.create(webinar=webinar, starts_at=START + timedelta(days=7))
    registrant = await make_registrant(webinar, first)
    now = START - timedelta(days=3)
    await sequences.plan_pending(now)
    await Registrant.filter(id=registrant.id).update(session_id=later.id)
    await sequences.replan_registrant(registrant.id)
    await sequences.plan_pending(now)
    assert (await planned_for(registrant))[0][0] == later.starts_at - timedelta(days=1)


async def test_two_planners_at_once_plan_each_registrant_once(database: Settings) -> None:
    webinar = await make_webinar()
    session = await WebinarSession.create(webinar=webinar, starts_at=START)
    for number in range(20):
        await make_registrant(webinar, session, f"p{number}@example.com")
    now = START - timedelta(days=3)
    done = await asyncio.gather(*(sequences.plan_pending(now, limit=50) for _ in range(3)))
    assert sum(done) == 20
    assert await PlannedEmail.filter(state=EmailState.SCHEDULED).count() == 20 * 7


# --- Sending ----------------------------------------------------------------------------------


async def test_a_reminder_goes_out_with_its_variables_and_an_unsubscribe_link(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    session = await WebinarSession.create(webinar=webinar, starts_at=START)
    registrant = await make_registrant(webinar, session, name="Ann <b>Example</b>")
    await sequences.plan_pending(START - timedelta(days=3))
    assert await delivery.deliver_due(START - timedelta(days=1)) == {EmailState.SENT: 1}
    (message,) = await OutboxMessage.all()
    email = parsed(message)
    assert email["Subject"] == "Tomorrow: Growth"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email["List-Unsubscribe"].startswith("<http://testserver/u/")
    text = text_of(message)
    assert text.startswith("Hello Ann,")
    when = "Tuesday, January 8, 2030, 3:00\u202fPM (Europe/Berlin (UTC+01:00))"
    assert f"“Growth” starts {when}." in text
    token = crypto.unseal(registrant.join_token_sealed)
    assert f"http://testserver/j/{token}" in text
    body = html_of(message)
    assert "<b>Example" not in body
    assert f'<a href="http://testserver/j/{token}">' in body
    row = await PlannedEmail.get(state=EmailState.SENT)
    assert message.message_id == row.message_id
    # The database wrote its event from the row marked sent, keyed like every other event.
    (event,) = await AnalyticsEvent.filter(kind="email_sent")
    assert (event.webinar_id, event.session_id, event.registrant_id, event.contact_id) == (
        webinar.id,
        session.id,
        registrant.id,
        registrant.contact_id,
    )
    assert event.at == row.sent_at
    assert event.data == {"email_id": row.id, "email_kind": sequences.STEP_EMAIL}


async def test_stale_reminders_are_marked_not_sent(database: Settings) -> None:
    webinar = await make_webinar()
    session = await WebinarSession.create(webinar=webinar, starts_at=START)
    await make_registrant(webinar, session)
    await sequences.plan_pending(START - timedelta(days=3))
    # The scheduler was down from the day before until five minutes after the start.
    outcome = await delivery.deliver_due(START + timedelta(minutes=5))
    assert outcome == {EmailState.CANCELLED: 3, EmailState.SENT: 1}
    (message,) = await OutboxMessage.all()
    assert parsed(message)["Subject"] == "We're live: Growth"


async def test_each_person_gets_the_follow_up_for_what_they_did(database: Settings) -> None:
    webinar = await make_webinar()
    session = await WebinarSession.create(webinar=webinar, starts_at=START)
    await make_registrant(webinar, session, "missed@example.com")
    left = await make_registrant(webinar, session, "left@example.com")
    stayed = await make_registrant(webinar, session, "stayed@example.com")
    for registrant, seconds in ((left, 1200.0), (stayed, 3500.0)):
        await AnalyticsEvent.create(
            kind="join", at=START, session_id=session.id, registrant_id=registrant.id
        )
        await AnalyticsEvent.create(
            kind="heartbeat",
            at=START + timedelta(seconds=seconds),
            session_id=session.id,
            registrant_id=registrant.id,
            video_seconds=seconds,
        )
    await sequences.plan_pending(END + timedelta(minutes=1))
    outcome = await delivery.deliver_due(END + timedelta(hours=1))
    assert outcome == {EmailState.SENT: 3, EmailState.CANCELLED: 6}
    subjects = {m.recipients: parsed(m)["Subject"] for m in await OutboxMessage.all()}
    assert subjects == {
        "missed@example.com": "Sorry we missed you: Growth",
        "left@example.com": "The rest of Growth",
        "stayed@example.com": "Thank you for joining Growth",
    }


async def test_an_unsubscribed_contact_gets_no_more_sequence_emails(database: Settings) -> None:
    webinar = await make_webinar()
    session = await WebinarSession.create(webinar=webinar, starts_at=START)
    registrant = await make_registrant(webinar, session)
    await sequences.plan_pending(START - timedelta(days=3))
    await Contact.filter(id=registrant.contact_id).update(unsubscribed_at=START - timedelta(days=2))
    assert await delivery.deliver_due(START - timedelta(days=1)) == {EmailState.CANCELLED: 1}
    assert await OutboxMessage.all().count() == 0


async def test_sequence_emails_go_out_over_real_smtp_and_refusals_suppress(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    session = await WebinarSession.create(webinar=webinar, starts_at=START)
    await make_registrant(webinar, session, "ann@example.com", name="Änne Müller")
    await make_registrant(webinar, session, "gone@example.com")
    await sequences.plan_pending(START - timedelta(days=3))
    handler = Moody(replies={"gone@example.com": "550 5.1.1 No such user"})
    controller = start_controller(handler)
    try:
        mail.use_mailer(SmtpMailer(hostname=HOST, port=controller.port, timeout=10))
        outcome = await delivery.deliver_due(START - timedelta(days=1))
    finally:
        controller.stop()
    assert outcome == {EmailState.SENT: 1, EmailState.FAILED: 1}
    (received,) = handler.received
    email = message_from_bytes(received.content, policy=policy.default)
    assert email["Subject"] == "Tomorrow: Growth"
    assert email["To"].addresses[0].display_name == "Änne Müller"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    failed = await PlannedEmail.get(to_email="gone@example.com", state=EmailState.FAILED)
    assert "550" in (failed.error or "")
    assert (await Contact.get(email="gone@example.com")).suppressed_at is not None
    # A suppressed address gets nothing more.
    outcome = await delivery.deliver_due(START - timedelta(hours=1))
    assert outcome.get(EmailState.CANCELLED) == 1
