"""Registration on SQLite and PostgreSQL: validation, limits, dedupe, sessions and the email."""

from __future__ import annotations

import ast
import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from app.i18n import format_when, translations, zone_label
from app.models import (
    Audience,
    Contact,
    EmailState,
    EmailStep,
    OutboxMessage,
    PlannedEmail,
    Registrant,
    RegistrationAttempt,
    Schedule,
    StepKind,
    Webinar,
    WebinarSession,
    WebinarStatus,
)
from app.services import (
    contacts,
    crypto,
    delivery,
    intake,
    mail,
    registration,
    rows,
    sequences,
    sessions,
)
from app.services.registration import Registered, RegistrationError
from app.settings import Settings, use_settings
from emails import SendError

NOW = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)  # a Monday, 11:00 in Berlin
FIRST = datetime(2030, 1, 7, 14, 0, tzinfo=UTC)  # 15:00 in Berlin
SECOND = FIRST + timedelta(days=1)
BERLIN = ZoneInfo("Europe/Berlin")
CLIENT = "203.0.113.7"
DAILY = {"repeat": "daily", "times": ["15:00"]}
FIELDS: list[dict[str, Any]] = [
    {"key": "company", "label": "Company", "type": "text", "required": True},
    {"key": "work_email", "label": "Work email", "type": "email"},
    {"key": "mobile", "label": "Mobile", "type": "phone", "default_region": "DE"},
    {"key": "role", "label": "Role", "type": "select", "options": ["Founder", "Marketing"]},
    {"key": "newsletter", "label": "Newsletter", "type": "checkbox"},
    {"key": "privacy", "label": "Privacy", "type": "consent"},
]


@pytest.fixture(autouse=True)
def outbox_mailer() -> None:
    """The configured mailer: without SMTP, messages land in the outbox table."""
    mail.use_mailer(None)


async def make_webinar(
    *,
    title: str = "Growth",
    language: str = "en",
    status: WebinarStatus = WebinarStatus.PUBLISHED,
    fields: list[dict[str, Any]] | None = None,
    rules: dict[str, Any] | None = None,
    schedule: dict[str, Any] | None = None,
    kind: str = "recurring",
    timezone: str = "Europe/Berlin",
    attendee_local: bool = False,
    scheduled: bool = True,
) -> Webinar:
    webinar = await Webinar.create(
        slug=f"w{await Webinar.all().count()}",
        title=title,
        description="How to grow.",
        language=language,
        status=status,
        registration_fields=fields or [],
        registration_rules=rules or {},
    )
    if scheduled:
        await Schedule.create(
            webinar=webinar,
            kind=kind,
            timezone=timezone,
            attendee_local=attendee_local,
            rules=DAILY if schedule is None else schedule,
        )
    return webinar


def form(**changes: str | None) -> dict[str, str]:
    data: dict[str, str | None] = {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "session": FIRST.isoformat(),
        "timezone": "Europe/Berlin",
        "website": "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def full_form(**changes: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {"company": "Analytical Engines", "privacy": "on"}
    values.update(changes)
    return form(**values)


async def register(
    webinar: Webinar,
    data: dict[str, str] | None = None,
    *,
    now: datetime = NOW,
    client: str = CLIENT,
    **extra: Any,
) -> Registered:
    return await registration.register(
        webinar=webinar, form=form() if data is None else data, client=client, now=now, **extra
    )


async def refused(webinar: Webinar, data: dict[str, str], **extra: Any) -> RegistrationError:
    with pytest.raises(RegistrationError) as caught:
        await register(webinar, data, **extra)
    return caught.value


async def assert_nothing_stored() -> None:
    assert await Contact.all().count() == 0
    assert await Registrant.all().count() == 0
    assert await WebinarSession.all().count() == 0
    assert await PlannedEmail.all().count() == 0
    assert await OutboxMessage.all().count() == 0


@dataclass
class Sent:
    """A message from the outbox, parsed."""

    message: EmailMessage
    text: str
    html: str
    attachments: list[EmailMessage]


async def outbox() -> list[Sent]:
    """What the scheduler has sent once every planned email is due."""
    await delivery.deliver_due(NOW + timedelta(days=30))
    found = []
    for row in await OutboxMessage.all().order_by("id"):
        message = message_from_string(row.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        text = message.get_body(("plain",))
        rich = message.get_body(("html",))
        assert text is not None
        assert rich is not None
        attachments = [
            part for part in message.iter_attachments() if isinstance(part, EmailMessage)
        ]
        found.append(Sent(message, text.get_content(), rich.get_content(), attachments))
    return found


# --- a new registration ------------------------------------------------------------------------


async def test_a_new_registration_stores_contact_registrant_and_emails_the_link(
    database: Settings,
) -> None:
    webinar = await make_webinar(fields=FIELDS)
    data = full_form(
        name="  Ada Lovelace ",
        email="Ada@Example.COM",
        mobile="030 1234567",
        work_email="Ada@Work.Example.org",
        role="Founder",
        newsletter="on",
        unknown_key="ignored",
    )
    result = await register(
        webinar,
        data,
        utm={
            "utm_source": "newsletter",
            "utm_medium": "m" * 300,
            "utm_campaign": "",
            "utm_evil": "x",
            "gclid": "y",
        },
        referrer="https://blog.example.net/post?" + "p" * 600,
    )
    assert result.created
    assert result.link_emailed
    assert result.token is not None
    registrant = result.registrant
    assert result.session is not None
    assert result.session.starts_at == FIRST
    assert result.session.kind == "scheduled"
    assert registrant.session_id == result.session.id

    # Relations are fetched for the pages.
    assert isinstance(registrant.contact, Contact)
    assert isinstance(registrant.webinar, Webinar)
    assert isinstance(registrant.session, WebinarSession)

    contact = await Contact.get()
    assert contact.email == "ada@example.com"
    assert contact.name == "Ada Lovelace"
    assert contact.phone == "+49301234567"
    assert contact.company_domain == "example.com"

    stored = await Registrant.get()
    assert stored.join_token_hash == crypto.hash_token(result.token)
    assert result.token not in stored.join_token_sealed
    assert registration.token_of(stored) == result.token
    assert stored.timezone == "Europe/Berlin"
    assert stored.language == "en"
    assert stored.answers == {
        "company": "Analytical Engines",
        "work_email": "ada@work.example.org",
        "mobile": "+49301234567",
        "role": "Founder",
        "newsletter": True,
        "privacy": True,
    }
    assert stored.utm == {"utm_source": "newsletter", "utm_medium": "m" * 200}
    assert len(stored.referrer) == 500
    assert stored.referrer.startswith("https://blog.example.net/post?")
    assert stored.link_sent_at == NOW
    assert stored.link_sends == 1
    assert await WebinarSession.all().count() == 1

    url = registration.join_url(result.token)
    assert url == f"http://testserver/j/{result.token}"
    found = await registration.find_by_token(result.token)
    assert found is not None
    assert found.id == stored.id
    assert isinstance(found.contact, Contact)
    assert found.contact.email == "ada@example.com"
    assert isinstance(found.session, WebinarSession)


async def test_the_confirmation_email_has_the_time_links_and_invitation(
    database: Settings,
) -> None:
    webinar = await make_webinar(title="Growth & <b>Co</b>")
    result = await register(webinar, form(timezone="America/New_York"))
    assert result.token is not None
    url = registration.join_url(result.token)
    new_york = ZoneInfo("America/New_York")

    [sent] = await outbox()
    assert sent.message["To"] == "Ada Lovelace <ada@example.com>"
    assert sent.message["Subject"] == "You're registered: Growth & <b>Co</b>"
    when = format_when(FIRST, new_york, "en")
    assert when.startswith("Monday, January 7, 2030, 9:00")
    assert f"When: {when}" in sent.text
    assert f"Time zone: {zone_label(new_york, FIRST)}" in sent.text
    assert "America/New_York (UTC-05:00)" in sent.text
    assert url in sent.text
    assert "Hello Ada Lovelace," in sent.text
    google = re.search(r"Google Calendar: (\S+)", sent.text)
    outlook = re.search(r"Outlook: (\S+)", sent.text)
    assert google is not None
    assert outlook is not None
    assert "dates=20300107T140000Z%2F20300107T150000Z" in google.group(1)
    assert "startdt=2030-01-07T14%3A00%3A00Z" in outlook.group(1)

    # Every value in the HTML part is escaped.
    assert "<b>Co</b>" not in sent.html
    assert "Growth &amp; &lt;b&gt;Co&lt;/b&gt;" in sent.html
    assert f'<a href="{url}">' in sent.html

    [invite] = sent.attachments
    assert invite.get_content_type() == "text/calendar"
    assert invite.get_param("method") == "PUBLISH"
    assert invite.get_filename() == "invite.ics"
    content = invite.get_content()
    raw = content if isinstance(content, bytes) else content.encode()
    event = Calendar.from_ical(raw).walk("VEVENT")[0]
    assert event["DTSTART"].params["TZID"] == "America/New_York"
    assert event.decoded("dtstart").astimezone(UTC) == FIRST
    assert event.decoded("dtend").astimezone(UTC) == FIRST + timedelta(hours=1)
    assert str(event["URL"]) == url
    assert url in str(event["DESCRIPTION"])


async def test_a_german_webinar_writes_german(database: Settings) -> None:
    webinar = await make_webinar(title="Wachstum", language="de")
    errors = (await refused(webinar, form(name="", email="kaputt", session=""))).errors
    assert errors == {
        "name": "Bitte geben Sie Ihren Namen ein.",
        "email": "Bitte geben Sie eine gültige E-Mail-Adresse ein, zum Beispiel ada@example.com.",
        "session": "Bitte wählen Sie einen Termin.",
    }
    result = await register(webinar)
    assert result.registrant.language == "de"
    [sent] = await outbox()
    assert sent.message["Subject"] == "Sie sind angemeldet: Wachstum"
    assert "Hallo Ada Lovelace," in sent.text
    assert "Sie sind für „Wachstum“ angemeldet." in sent.text
    assert "Wann: Montag, 7. Januar 2030, 15:00" in sent.text
    assert "Zeitzone: Europe/Berlin (UTC+01:00)" in sent.text
    assert 'lang="de"' in sent.html


async def test_a_webinar_with_its_own_confirmation_sends_that_text_with_the_calendar(
    database: Settings,
) -> None:
    webinar = await make_webinar(title="Growth")
    own = sequences.StepInput(
        StepKind.CONFIRMATION,
        0,
        Audience.EVERYONE,
        True,
        "Welcome aboard, {first_name}: {webinar}",
        "Hi {first_name},\n\nsee you {when}.\n\nYour seat: {join_link}",
    )
    assert isinstance(await sequences.save_step(webinar, own, None), EmailStep)
    assert await sequences.save_step(webinar, own, None) == (
        "This webinar already has its own confirmation: edit that one."
    )
    result = await register(webinar, form(timezone="America/New_York"))
    assert result.token is not None
    [sent] = await outbox()
    assert sent.message["Subject"] == "Welcome aboard, Ada: Growth"
    assert sent.text.startswith("Hi Ada,\n\nsee you Monday, January 7, 2030, 9:00")
    assert f"Your seat: {registration.join_url(result.token)}" in sent.text
    assert "Google Calendar: " in sent.text
    [invite] = sent.attachments
    assert invite.get_filename() == "invite.ics"
    assert "Please do not share this link" not in sent.text  # the editor's words only
    # Asking for the link again later gets the built-in message.
    later = NOW + timedelta(minutes=11)
    await register(webinar, form(timezone="America/New_York"), now=later)
    sent_again = (await outbox())[-1]
    assert sent_again.message["Subject"] == "Your join link for Growth"


async def test_watch_now_registers_an_on_demand_session_without_a_time(
    database: Settings,
) -> None:
    webinar = await make_webinar(schedule={**DAILY, "watch_now": True})
    result = await register(webinar, form(session="now"))
    assert result.session is not None
    assert result.session.kind == "on_demand"
    assert result.session.starts_at == NOW
    [sent] = await outbox()
    assert sent.attachments == []
    assert "When:" not in sent.text
    assert "Google Calendar" not in sent.text
    assert result.token is not None
    assert registration.join_url(result.token) in sent.text


async def test_an_on_demand_webinar_offers_watching_now(database: Settings) -> None:
    webinar = await make_webinar(kind="on_demand", schedule={})
    result = await register(webinar, form(session="now"))
    assert result.session is not None
    assert result.session.kind == "on_demand"
    error = await refused(webinar, form(email="grace@example.com"))
    assert error.errors == {"session": "That time is no longer available. Please pick another."}


# --- validation --------------------------------------------------------------------------------


async def test_every_field_error_is_reported_at_once_and_nothing_is_stored(
    database: Settings,
) -> None:
    webinar = await make_webinar(fields=FIELDS)
    data = form(
        name="",
        email="not-an-address",
        session=None,
        mobile="12",
        work_email="nope@",
        role="Hacker",
        company="   ",
    )
    error = await refused(webinar, data)
    assert error.status == 422
    assert error.errors == {
        "name": "Please enter your name.",
        "email": "Please enter a valid email address, such as ada@example.com.",
        "session": "Please choose a session.",
        "company": "This field is required.",
        "work_email": "Please enter a valid email address.",
        "mobile": "Please enter a valid phone number.",
        "role": "Please choose one of the options.",
        "privacy": "Please tick this box to register.",
    }
    await assert_nothing_stored()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Please enter your name."),
        ("   \t ", "Please enter your name."),
        ("<script>alert(1)</script>", "Please leave out the characters < and >."),
        ("Ada <ada@example.com>", "Please leave out the characters < and >."),
        ("A" * 201, "Please use at most 200 characters."),
        ("x" * 10240, "Please use at most 200 characters."),
        ("Ada\x00Lovelace", "This contains characters that are not allowed."),
        ("Ada\nBcc: eve@example.com", "This contains characters that are not allowed."),
        ("Ada\u202eecalevoL", "This contains characters that are not allowed."),
        ("Ada\u2028Lovelace", "This contains characters that are not allowed."),
    ],
)
async def test_bad_names_are_refused(database: Settings, name: str, message: str) -> None:
    webinar = await make_webinar()
    error = await refused(webinar, form(name=name))
    assert error.errors == {"name": message}
    await assert_nothing_stored()


async def test_names_in_any_script_are_welcome(database: Settings) -> None:
    webinar = await make_webinar()
    result = await register(webinar, form(name="Zoë O'Brien-Łukasiewicz 李"))
    assert isinstance(result.registrant.contact, Contact)
    assert result.registrant.contact.name == "Zoë O'Brien-Łukasiewicz 李"
    long_name = await register(webinar, form(name="A" * 200, email="long@example.com"))
    assert isinstance(long_name.registrant.contact, Contact)
    assert long_name.registrant.contact.name == "A" * 200


@pytest.mark.parametrize(
    "email",
    [
        "",
        "ada",
        "ada@",
        "ada@localhost",
        "ada@example..com",
        "ada@example.com\r\nBcc: eve@example.com",
        "a" * 250 + "@example.com",
    ],
)
async def test_bad_emails_are_refused(database: Settings, email: str) -> None:
    webinar = await make_webinar()
    error = await refused(webinar, form(email=email))
    assert set(error.errors) == {"email"}
    assert "email address" in error.errors["email"]
    await assert_nothing_stored()


async def test_custom_text_fields_are_checked(database: Settings) -> None:
    webinar = await make_webinar(fields=FIELDS)
    for value, message in [
        ("c" * 501, "Please use at most 500 characters."),
        ("<img src=x>", "Please leave out the characters < and >."),
        ("Acme\x07", "This contains characters that are not allowed."),
    ]:
        error = await refused(webinar, full_form(company=value))
        assert error.errors == {"company": message}
    result = await register(webinar, full_form(company="c" * 500))
    assert result.registrant.answers["company"] == "c" * 500


async def test_phone_fields_without_a_default_region_need_the_country_code(
    database: Settings,
) -> None:
    fields = [{"key": "phone", "label": "Phone", "type": "phone", "required": True}]
    webinar = await make_webinar(fields=fields)
    error = await refused(webinar, form(phone="030 1234567"))
    assert error.errors == {
        "phone": "Please enter a valid phone number with its country code, such as +44."
    }
    result = await register(webinar, form(phone="+44 20 7946 0958"))
    assert result.registrant.answers == {"phone": "+442079460958"}
    assert isinstance(result.registrant.contact, Contact)
    assert result.registrant.contact.phone == "+442079460958"


async def test_optional_fields_may_stay_empty(database: Settings) -> None:
    webinar = await make_webinar(fields=FIELDS)
    result = await register(webinar, full_form())
    assert result.registrant.answers == {
        "company": "Analytical Engines",
        "work_email": "",
        "mobile": "",
        "role": "",
        "newsletter": False,
        "privacy": True,
    }
    assert isinstance(result.registrant.contact, Contact)
    assert result.registrant.contact.phone == ""


async def test_a_checkbox_is_ticked_only_by_on(database: Settings) -> None:
    fields = [{"key": "terms", "label": "Terms", "type": "checkbox", "required": True}]
    webinar = await make_webinar(fields=fields)
    for value in ("", "off", "true", "1"):
        error = await refused(webinar, form(terms=value))
        assert error.errors == {"terms": "Please tick this box to register."}
    await assert_nothing_stored()
    result = await register(webinar, form(terms="on"))
    assert result.registrant.answers == {"terms": True}


# --- who may register --------------------------------------------------------------------------


async def test_allowed_domains_include_their_subdomains(database: Settings) -> None:
    webinar = await make_webinar(rules={"allowed_domains": ["example.com", "Bücher.de"]})
    error = await refused(webinar, form(email="ada@example.org"))
    assert error.errors == {"email": "Please use an email address at example.com, bücher.de."}
    error = await refused(webinar, form(email="ada@notexample.com"))
    assert set(error.errors) == {"email"}
    await assert_nothing_stored()
    assert (await register(webinar, form(email="ada@sales.example.com"))).created
    assert (await register(webinar, form(email="ada@example.com"))).created
    assert (await register(webinar, form(email="ada@bücher.de"))).created


async def test_blocked_domains_are_refused(database: Settings) -> None:
    webinar = await make_webinar(rules={"blocked_domains": ["competitor.com"]})
    for email in ("spy@competitor.com", "spy@eu.competitor.com"):
        error = await refused(webinar, form(email=email))
        assert "cannot register for this webinar" in error.errors["email"]
    await assert_nothing_stored()
    assert (await register(webinar, form(email="ada@mycompetitor.com"))).created


async def test_disposable_addresses_are_refused_when_blocked(database: Settings) -> None:
    strict = await make_webinar(rules={"block_disposable": True})
    for email in ("ada@mailinator.com", "ada@eu.mailinator.com"):
        error = await refused(strict, form(email=email))
        assert error.errors == {
            "email": "Please use a permanent email address, not a disposable one."
        }
    await assert_nothing_stored()
    relaxed = await make_webinar()
    assert (await register(relaxed, form(email="ada@mailinator.com"))).created


async def test_the_honeypot_refuses_without_storing(database: Settings) -> None:
    webinar = await make_webinar()
    error = await refused(webinar, form(website="https://spam.example"))
    assert error.status == 422
    assert error.errors == {"form": "We could not accept this registration. Please try again."}
    await assert_nothing_stored()


@pytest.mark.parametrize("status", [WebinarStatus.DRAFT, WebinarStatus.ARCHIVED])
async def test_only_published_webinars_take_registrations(
    database: Settings, status: WebinarStatus
) -> None:
    webinar = await make_webinar(status=status)
    error = await refused(webinar, form())
    assert error.status == 404
    assert error.errors == {"form": "This webinar is not open for registration."}
    await assert_nothing_stored()


async def test_a_webinar_without_a_valid_schedule_takes_no_registrations(
    database: Settings,
) -> None:
    webinar = await make_webinar(scheduled=False)
    assert (await refused(webinar, form())).status == 404
    broken = await make_webinar(schedule={"repeat": "sometimes"})
    assert (await refused(broken, form())).status == 404
    await assert_nothing_stored()


# --- the per-client limit ----------------------------------------------------------------------


async def test_too_many_attempts_from_one_client_are_refused(database: Settings) -> None:
    use_settings(database.model_copy(update={"registrations_per_client_hour": 3}))
    webinar = await make_webinar()
    # Invalid forms count too, so a flood of them is limited.
    for _ in range(3):
        assert (await refused(webinar, form(name=""))).status == 422
    error = await refused(webinar, form(), now=NOW + timedelta(minutes=30))
    assert error.status == 429
    assert error.errors == {
        "form": "Too many registrations from your network. Please try again later."
    }
    await assert_nothing_stored()
    # Refused requests are not recorded; attempts are stored under a keyed hash only.
    attempts = await RegistrationAttempt.all()
    assert len(attempts) == 3
    assert {a.client_hash for a in attempts} == {crypto.sign(CLIENT, "registration client")}
    assert CLIENT not in attempts[0].client_hash

    # Another client is not affected; this one may try again once its attempts are an hour old.
    assert (await register(webinar, form(), client="198.51.100.9")).created
    later = await register(
        webinar, form(email="grace@example.com"), now=NOW + timedelta(hours=1, minutes=1)
    )
    assert later.created


async def test_concurrent_attempts_cannot_pass_the_limit(database: Settings) -> None:
    use_settings(database.model_copy(update={"registrations_per_client_hour": 2}))
    webinar = await make_webinar()
    outcomes = await asyncio.gather(
        *(register(webinar, form(email=f"p{i}@example.com")) for i in range(5)),
        return_exceptions=True,
    )
    passed = [o for o in outcomes if isinstance(o, Registered)]
    limited = [o for o in outcomes if isinstance(o, RegistrationError) and o.status == 429]
    assert len(passed) <= 2
    assert len(passed) + len(limited) == 5
    assert await Registrant.all().count() == len(passed)


async def test_old_attempts_are_pruned(database: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    old = await RegistrationAttempt.create(client_hash="a" * 64, at=NOW - timedelta(days=2))
    recent = await RegistrationAttempt.create(client_hash="b" * 64, at=NOW - timedelta(hours=2))
    assert await registration.prune_attempts(NOW - timedelta(days=3)) == 0
    # Every request prunes here, instead of about one in PRUNE_ONE_IN (or once a minute).
    monkeypatch.setattr(registration, "PRUNE_ONE_IN", 1)
    monkeypatch.setattr(registration, "PRUNE_EVERY_SECONDS", 0.0)
    await register(await make_webinar())
    remaining = {a.id for a in await RegistrationAttempt.all()}
    assert old.id not in remaining
    assert recent.id in remaining
    assert len(remaining) == 2


# --- sessions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ((FIRST - timedelta(days=1)).isoformat(), "That time is no longer available."),
        ((FIRST + timedelta(minutes=30)).isoformat(), "That time is no longer available."),
        ((FIRST + timedelta(days=365)).isoformat(), "That time is no longer available."),
        ("2030-01-07T15:00:00", "Please choose one of the offered times."),
        ("tomorrow", "Please choose one of the offered times."),
        ("9" * 100, "Please choose one of the offered times."),
        ("now", "Watching now is not available."),
    ],
)
async def test_a_start_that_is_not_offered_is_refused(
    database: Settings, session: str, message: str
) -> None:
    webinar = await make_webinar()
    error = await refused(webinar, form(session=session))
    assert set(error.errors) == {"session"}
    assert error.errors["session"].startswith(message)
    await assert_nothing_stored()


async def test_a_start_that_passed_since_the_page_loaded_is_refused(database: Settings) -> None:
    webinar = await make_webinar()
    error = await refused(webinar, form(), now=FIRST + timedelta(seconds=1))
    assert error.errors == {"session": "That time is no longer available. Please pick another."}


async def test_every_offered_start_and_offset_spelling_is_accepted(database: Settings) -> None:
    webinar = await make_webinar()
    in_berlin = FIRST.astimezone(BERLIN).isoformat()  # 2030-01-07T15:00:00+01:00
    result = await register(webinar, form(session=in_berlin))
    assert result.session is not None
    assert result.session.starts_at == FIRST
    third = await register(
        webinar, form(email="g@example.com", session=(SECOND + timedelta(days=1)).isoformat())
    )
    assert third.session is not None
    assert third.session.starts_at == SECOND + timedelta(days=1)


async def test_a_full_session_overflows_to_the_next(database: Settings) -> None:
    webinar = await make_webinar(schedule={**DAILY, "capacity": 1})
    first = await register(webinar)
    assert first.session is not None
    assert first.session.starts_at == FIRST
    assert first.session.capacity == 1
    second = await register(webinar, form(email="grace@example.com"))
    assert second.session is not None
    assert second.session.starts_at == SECOND


async def test_all_sessions_full_is_a_clear_error(database: Settings) -> None:
    webinar = await make_webinar(
        kind="specific", schedule={"dates": ["2030-01-08T15:00"], "capacity": 1}
    )
    await register(webinar, form(session=SECOND.isoformat()))
    error = await refused(webinar, form(email="grace@example.com", session=SECOND.isoformat()))
    assert error.errors == {"session": "All sessions are fully booked. Please check back later."}
    assert await Registrant.all().count() == 1


async def test_seats_are_never_overbooked_by_registrations_arriving_together(
    database: Settings,
) -> None:
    later = SECOND + timedelta(days=1)
    webinar = await make_webinar(
        kind="specific",
        schedule={"dates": ["2030-01-08T15:00", "2030-01-09T15:00"], "capacity": 3},
    )

    async def attempt(number: int) -> Registered | RegistrationError:
        data = form(email=f"p{number}@example.com", session=SECOND.isoformat())
        try:
            return await register(webinar, data, client=f"198.51.100.{number}")
        except RegistrationError as error:
            return error

    outcomes = await asyncio.gather(*(attempt(number) for number in range(10)))
    seated = [outcome for outcome in outcomes if isinstance(outcome, Registered)]
    refusals = [outcome for outcome in outcomes if isinstance(outcome, RegistrationError)]
    # Three seats in each of the two sessions: the chosen one first, then the overflow.
    starts = sorted(outcome.session.starts_at for outcome in seated if outcome.session)
    assert starts == [SECOND] * 3 + [later] * 3
    assert {str(refusal.errors) for refusal in refusals} == {
        str({"session": "All sessions are fully booked. Please check back later."})
    }
    counts = await sessions.registered_counts(webinar, [SECOND, later])
    assert counts == {SECOND: 3, later: 3}
    assert await Registrant.all().count() == 6
    assert await PlannedEmail.all().count() == 6


async def test_the_visitor_zone_decides_in_attendee_local_mode(database: Settings) -> None:
    webinar = await make_webinar(attendee_local=True)
    in_new_york = datetime(2030, 1, 7, 20, 0, tzinfo=UTC)  # 15:00 in New York
    # Berlin's 15:00 is not a start for a visitor in New York, and the reverse.
    error = await refused(webinar, form(timezone="America/New_York"))
    assert set(error.errors) == {"session"}
    error = await refused(webinar, form(session=in_new_york.isoformat()))
    assert set(error.errors) == {"session"}
    result = await register(
        webinar, form(session=in_new_york.isoformat(), timezone="America/New_York")
    )
    assert result.session is not None
    assert result.session.starts_at == in_new_york
    assert result.registrant.timezone == "America/New_York"


@pytest.mark.parametrize("zone", ["", "Not/AZone", "localtime", "x" * 200, "../../etc/passwd"])
async def test_an_unusable_visitor_zone_falls_back_to_the_schedule_zone(
    database: Settings, zone: str
) -> None:
    webinar = await make_webinar(timezone="Asia/Kathmandu", schedule={**DAILY})
    # 15:00 in Kathmandu (+05:45) is 09:15 UTC, on the 8th: the 7th's has passed at NOW.
    start = datetime(2030, 1, 8, 9, 15, tzinfo=UTC)
    result = await register(webinar, form(session=start.isoformat(), timezone=zone))
    assert result.registrant.timezone == "Asia/Kathmandu"


# --- registering again -------------------------------------------------------------------------


async def test_registering_again_returns_the_same_registrant_and_resends_within_limits(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    first = await register(webinar)
    assert first.token is not None
    sends = [True]
    for minutes in (1, 10, 15, 20, 30, 40, 50, 60):
        again = await register(
            webinar,
            form(email="ADA@example.com", name="Someone Else", session=SECOND.isoformat()),
            now=NOW + timedelta(minutes=minutes),
        )
        assert not again.created
        assert again.token is None
        assert again.registrant.id == first.registrant.id
        # An upcoming session is kept whatever was chosen this time.
        assert again.session is not None
        assert again.session.starts_at == FIRST
        sends.append(again.link_emailed)
    # At most once in 10 minutes, and 5 times a (UTC) day.
    assert sends == [True, False, True, False, True, True, True, False, False]
    assert await Contact.all().count() == 1
    assert await Registrant.all().count() == 1
    assert (await Contact.get()).name == "Ada Lovelace"
    messages = await outbox()
    assert len(messages) == 5
    assert messages[0].message["Subject"] == "You're registered: Growth"
    assert messages[1].message["Subject"] == "Your join link for Growth"
    # The resent email holds the same personal link and the session they keep.
    assert registration.join_url(first.token) in messages[1].text
    assert format_when(FIRST, BERLIN, "en") in messages[1].text
    assert len(messages[1].attachments) == 1
    stored = await Registrant.get()
    assert stored.link_sends == 5

    # A new UTC day allows sending again.
    next_day = datetime(2030, 1, 8, 0, 5, tzinfo=UTC)
    again = await register(webinar, form(session=SECOND.isoformat()), now=next_day)
    assert again.link_emailed
    assert (await Registrant.get()).link_sends == 1


async def test_a_registrant_whose_session_is_over_gets_the_new_one(database: Settings) -> None:
    webinar = await make_webinar()
    first = await register(webinar)
    later = NOW + timedelta(days=2)  # 9 January, 10:00 UTC
    new_start = datetime(2030, 1, 9, 14, 0, tzinfo=UTC)
    again = await register(
        webinar, form(session=new_start.isoformat(), timezone="Europe/Lisbon"), now=later
    )
    assert again.token is None
    assert again.registrant.id == first.registrant.id
    assert again.session is not None
    assert again.session.starts_at == new_start
    assert again.registrant.timezone == "Europe/Lisbon"
    assert again.link_emailed
    messages = await outbox()
    assert format_when(new_start, ZoneInfo("Europe/Lisbon"), "en") in messages[-1].text
    # Their reminders and follow-ups are planned again, for the new session.
    await Registrant.filter(id=first.registrant.id).update(plan_state=sequences.PLANNED)
    newer = datetime(2030, 1, 13, 14, 0, tzinfo=UTC)
    await register(webinar, form(session=newer.isoformat()), now=NOW + timedelta(days=5))
    stored = await Registrant.get(id=first.registrant.id)
    assert stored.plan_state == sequences.PLAN_AGAIN


async def test_a_registrant_still_in_a_running_session_keeps_it(database: Settings) -> None:
    webinar = await make_webinar()
    await register(webinar)
    # Half an hour into the 60-minute session, a later start is chosen: the running one stays.
    again = await register(
        webinar, form(session=SECOND.isoformat()), now=FIRST + timedelta(minutes=30)
    )
    assert again.session is not None
    assert again.session.starts_at == FIRST


async def test_a_registrant_whose_session_is_gone_or_closed_gets_the_new_one(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    first = await register(webinar)
    assert first.session is not None
    await WebinarSession.filter(id=first.session.id).delete()
    assert (await Registrant.get()).session_id is None
    again = await register(webinar, form(session=SECOND.isoformat()))
    assert again.session is not None
    assert again.session.starts_at == SECOND

    await WebinarSession.filter(id=again.session.id).update(closed_at=NOW)
    third = SECOND + timedelta(days=1)
    last = await register(webinar, form(session=third.isoformat()))
    assert last.session is not None
    assert last.session.starts_at == third


@pytest.mark.parametrize("choice", ["first", "now"])
async def test_concurrent_registrations_of_one_address_give_one_registrant(
    database: Settings, choice: str
) -> None:
    webinar = await make_webinar(schedule={**DAILY, "watch_now": True})
    session = "now" if choice == "now" else FIRST.isoformat()
    emails = ["ada@example.com", "ADA@example.com", " Ada@Example.com", "ada@EXAMPLE.COM"] * 2
    results = await asyncio.gather(
        *(register(webinar, form(email=email, session=session)) for email in emails)
    )
    assert sum(result.created for result in results) == 1
    assert sum(result.token is not None for result in results) == 1
    assert len({result.registrant.id for result in results}) == 1
    assert await Contact.all().count() == 1
    assert await Registrant.all().count() == 1
    # Sessions created by requests that lost the race are not left behind.
    assert await WebinarSession.all().count() == 1
    assert len(await outbox()) == 1


class FailingMailer:
    """A mail server that is down."""

    async def send(self, message: EmailMessage) -> None:
        """Refuse every message."""
        raise SendError("421 try again later", permanent=False)


async def test_a_failed_email_does_not_lose_the_registration(database: Settings) -> None:
    webinar = await make_webinar()
    mail.use_mailer(FailingMailer())
    try:
        result = await register(webinar)
        assert result.link_emailed  # planned: the scheduler sends it
        await delivery.deliver_due(NOW)
    finally:
        mail.use_mailer(None)
    assert result.created
    assert result.token is not None
    assert await Registrant.all().count() == 1
    found = await registration.find_by_token(result.token)
    assert found is not None
    # The email waits for a retry; once the server answers, it goes out.
    row = await PlannedEmail.get()
    assert row.state == EmailState.SCHEDULED
    assert row.attempts == 1
    assert row.due_at > NOW
    assert "421" in (row.error or "")
    [sent] = await outbox()
    assert registration.join_url(result.token) in sent.text
    assert sent.message["Message-ID"] == row.message_id


async def test_suppressed_addresses_get_no_email(database: Settings) -> None:
    webinar = await make_webinar()
    await Contact.create(email="ada@example.com", name="Ada", suppressed_at=NOW)
    result = await register(webinar)
    assert result.created
    assert not result.link_emailed
    assert await outbox() == []


async def test_a_link_that_cannot_be_unsealed_is_replaced_when_resent(
    database: Settings,
) -> None:
    webinar = await make_webinar()
    first = await register(webinar)
    assert first.token is not None
    # As after a change of SECRET_KEY: the sealed copy no longer opens.
    await Registrant.filter(id=first.registrant.id).update(join_token_sealed="garbage")
    again = await register(webinar, now=NOW + timedelta(minutes=11))
    assert again.link_emailed
    sent = await outbox()
    stored = await Registrant.get()
    token = registration.token_of(stored)
    assert token is not None
    assert token != first.token
    assert registration.join_url(token) in sent[-1].text
    assert await registration.find_by_token(first.token) is None


@pytest.mark.parametrize("token", ["", "nope", "x" * 1000])
async def test_unknown_tokens_find_nobody(database: Settings, token: str) -> None:
    webinar = await make_webinar()
    await register(webinar)
    assert await registration.find_by_token(token) is None


# --- translations ------------------------------------------------------------------------------

SOURCES = [
    Path(registration.__file__),
    Path(registration.__file__).with_name("calendar.py"),
]


def translatable_messages(path: Path) -> set[str]:
    """The literal messages a module passes to gettext and its helpers."""
    found: set[str] = set()

    def literals(node: ast.expr) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            return literals(node.body) + literals(node.orelse)
        return []  # a variable: its value is found at its assignment below

    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            position = {"_t": 1, "gettext": 1, "t": 0}.get(node.func.id)
            if position is not None and len(node.args) > position:
                found.update(literals(node.args[position]))
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.IfExp):
            found.update(literals(node.value))
    return found


def test_every_message_has_a_german_translation() -> None:
    german = translations("de")
    messages = set().union(*(translatable_messages(path) for path in SOURCES))
    assert len(messages) > 30
    missing = sorted(m for m in messages if german.gettext(m) == m)
    assert missing == []
    for message in messages:
        placeholders = set(re.findall(r"\{(\w+)\}", message))
        assert set(re.findall(r"\{(\w+)\}", german.gettext(message))) == placeholders, message


# --- group commit --------------------------------------------------------------------------------


async def test_a_crowd_is_written_in_a_few_batches(
    database: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings(database.model_copy(update={"registrations_per_client_hour": 1000}))
    webinar = await make_webinar()
    sizes: list[int] = []
    outcomes: list[intake.Outcome] = []
    store = intake.store

    async def counting(batch: list[intake.NewRegistration]) -> list[intake.Outcome]:
        sizes.append(len(batch))
        outcomes.extend(await store(batch))
        return outcomes[-len(batch) :]

    monkeypatch.setattr(intake, "store", counting)
    emails = [f"crowd{i}@example.com" for i in range(40)]
    # The same address twice in the crowd: one registrant, the second told it is registered.
    results = await asyncio.gather(
        *(register(webinar, form(email=email)) for email in [*emails, emails[0]])
    )
    assert sum(sizes) == 41
    assert len(sizes) < 10
    # Every new address was stored by a batch; only the repeated one went one by one.
    assert outcomes.count(intake.Outcome.STORED) == 40
    assert outcomes.count(intake.Outcome.FALLBACK) == 1
    assert sum(result.created for result in results) == 40
    assert len({result.registrant.id for result in results}) == 40
    assert await Registrant.all().count() == 40
    assert await Contact.all().count() == 40
    assert await WebinarSession.all().count() == 1
    assert await RegistrationAttempt.all().count() == 41
    assert await PlannedEmail.filter(kind=registration.LINK_EMAIL).count() == 40
    for result in results:
        assert result.session is not None
        assert result.registrant.session_id == result.session.id
        if result.token is not None:
            found = await registration.find_by_token(result.token)
            assert found is not None
            assert found.id == result.registrant.id
            assert found.contact.email == result.registrant.contact.email
    assert len(await outbox()) == 40


async def test_a_failed_batch_loses_nobody(
    database: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    webinar = await make_webinar()
    real = rows.insert_statements
    failures = []

    def broken(dialect: str, model: Any, *args: Any, **kwargs: Any) -> Any:
        if model is PlannedEmail:
            failures.append(1)
            raise RuntimeError("the database went away for a moment")
        return real(dialect, model, *args, **kwargs)

    monkeypatch.setattr(rows, "insert_statements", broken)
    results = await asyncio.gather(
        *(register(webinar, form(email=f"late{i}@example.com")) for i in range(5))
    )
    monkeypatch.setattr(rows, "insert_statements", real)
    assert failures
    # The batch rolled back as a whole; each form was then stored one by one.
    assert all(result.created for result in results)
    assert await Registrant.all().count() == 5
    assert await PlannedEmail.all().count() == 5
    assert await WebinarSession.all().count() == 1


async def test_rules_read_a_moment_ago_are_checked_again_when_stored(database: Settings) -> None:
    webinar = await make_webinar()
    stale = await sessions.load_rules(webinar)
    assert stale is not None
    # The editor moved the daily session to 16:00 since those rules were read.
    await Schedule.filter(webinar_id=webinar.id).update(
        rules={"repeat": "daily", "times": ["16:00"]}
    )
    error = await refused(webinar, form(), rules=stale)
    assert error.errors == {"session": "That time is no longer available. Please pick another."}
    await assert_nothing_stored()
    # Unpublished since: the webinar is closed, whatever the snapshot says.
    await Schedule.filter(webinar_id=webinar.id).update(rules=DAILY)
    await Webinar.filter(id=webinar.id).update(status=WebinarStatus.DRAFT)
    assert (await refused(webinar, form(), rules=stale)).status == 404
    await assert_nothing_stored()


# --- the short way for plain addresses -------------------------------------------------------

ADDRESSES = [
    "ada@example.com",
    "  Ada.Lovelace+webinars@Example.CO.UK ",
    "a_b-c@sub-domain.example.org",
    "x@a.io",
    "first..last@example.com",
    ".ada@example.com",
    "ada.@example.com",
    "ada@example",
    "ada@localhost",
    "ada@printer.local",
    "ada@site.test",
    "ada@example.123",
    "ada@-example.com",
    "ada@example-.com",
    "ada@ab--cd.com",
    "ada@xn--bcher-kva.example",
    "ada@exa_mple.com",
    "a" * 64 + "@example.com",
    "a" * 65 + "@example.com",
    "ada@" + "b" * 63 + ".com",
    "ada@" + "b" * 64 + ".com",
    "ada@" + ".".join(["c" * 60] * 4) + ".com",
    "\u212aelvin@example.com",
    "ada@bücher.example",
    "jörg@example.com",
    '"ada lovelace"@example.com',
    "ada@[192.0.2.1]",
    "Ada <ada@example.com>",
    "ada@@example.com",
    "",
    "   ",
]


@pytest.mark.parametrize("raw", ADDRESSES)
def test_plain_addresses_are_normalised_as_the_full_validator_does(raw: str) -> None:
    try:
        expected: str | None = contacts.normalise_email(raw)
    except ValueError:
        expected = None
    try:
        found: str | None = registration.normalise_email(raw)
    except ValueError:
        found = None
    assert found == expected
