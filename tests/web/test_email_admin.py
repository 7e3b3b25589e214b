"""The emails tab: the sequence listed, steps edited, previewed, tested and removed, by role."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.models import (
    AuditEvent,
    Contact,
    EmailStep,
    OutboxMessage,
    Registrant,
    Role,
    StepKind,
    Webinar,
    WebinarSession,
)
from app.services import crypto, mail, sequences
from app.settings import Settings
from tests.web.staff import sign_in


@pytest.fixture(autouse=True)
def configured_mailer() -> None:
    """The outbox mailer the settings choose."""
    mail.use_mailer(None)


def url(webinar: Webinar, tail: str = "") -> str:
    return f"/admin/webinars/{webinar.id}/emails{tail}"


async def hour_reminder(webinar: Webinar) -> EmailStep:
    await sequences.ensure_steps(webinar)
    return await EmailStep.get(webinar_id=webinar.id, kind=StepKind.REMINDER, minutes=60)


def reminder_form(**changes: str) -> dict[str, str]:
    form = {
        "subject": "Two hours to go: {webinar}",
        "body": "Hello {first_name},\n\nsee you soon.\n\n{join_link}",
        "amount": "2",
        "unit": "hours",
        "enabled": "on",
    }
    form.update(changes)
    return form


async def test_the_tab_lists_the_sequence_in_order(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    await sign_in(client)
    page = await client.get(url(webinar))
    assert page.status_code == 200
    text = html.unescape(page.text)
    order = [
        "At registration",
        "1 day before the start",
        "1 hour before the start",
        "10 minutes before the start",
        "At the start",
        "1 hour after the end, to people who watched to the end",
        "1 hour after the end, to people who left early",
        "1 hour after the end, to people who missed it",
    ]
    positions = [text.index(label) for label in order]
    assert positions == sorted(positions)
    assert 'aria-current="page">Emails</a>' in page.text


async def test_an_editor_changes_a_reminder_and_everyone_is_planned_again(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    step = await hour_reminder(webinar)
    session = await WebinarSession.create(
        webinar=webinar, starts_at=datetime.now(UTC) + timedelta(days=3)
    )
    token = crypto.new_token()
    registrant = await Registrant.create(
        contact=await Contact.create(email="ann@example.com"),
        webinar=webinar,
        session=session,
        join_token_hash=crypto.hash_token(token),
        join_token_sealed=crypto.seal(token),
        plan_state=sequences.PLANNED,
    )
    csrf = await sign_in(client)
    done = await client.post(
        url(webinar, f"/{step.id}"), data={**reminder_form(), "csrf_token": csrf}
    )
    assert done.status_code == 303
    assert done.headers["location"] == url(webinar, "?done=saved")
    await step.refresh_from_db()
    assert (step.minutes, step.subject) == (120, "Two hours to go: {webinar}")
    assert (await Registrant.get(id=registrant.id)).plan_state == sequences.PLAN_AGAIN
    assert await AuditEvent.filter(action="emails.step_saved").count() == 1
    listed = await client.get(done.headers["location"])
    assert "2 hours before the start" in listed.text
    assert "Email saved." in listed.text


async def test_bad_input_is_refused_and_what_was_typed_is_kept(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    step = await hour_reminder(webinar)
    csrf = await sign_in(client)
    typed = reminder_form(subject="See you {tomorow}", amount="-3")
    answer = await client.post(url(webinar, f"/{step.id}"), data={**typed, "csrf_token": csrf})
    assert answer.status_code == 400
    text = html.unescape(answer.text)
    assert "Unknown variable {tomorow}." in text
    assert "Enter between 1 minute(s) and 30 days." in text
    assert 'value="See you {tomorow}"' in text
    await step.refresh_from_db()
    assert step.minutes == 60  # nothing stored


async def test_the_preview_fills_in_the_variables_and_escapes_markup(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth <Basics>")
    step = await hour_reminder(webinar)
    csrf = await sign_in(client)
    form = reminder_form(body="Hi {first_name} <script>alert(1)</script>\n\n{join_link}")
    answer = await client.post(
        url(webinar, f"/{step.id}"), data={**form, "action": "preview", "csrf_token": csrf}
    )
    assert answer.status_code == 200
    assert "Two hours to go: Growth &lt;Basics&gt;" in answer.text
    assert "Hi Grace &lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert "<script>alert(1)" not in answer.text
    assert '<a href="http://testserver/j/your-personal-link">' in answer.text
    await step.refresh_from_db()
    assert step.minutes == 60  # a preview stores nothing


async def test_send_me_a_test_goes_to_the_signed_in_person(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    step = await hour_reminder(webinar)
    csrf = await sign_in(client)
    answer = await client.post(
        url(webinar, f"/{step.id}"), data={**reminder_form(), "action": "test", "csrf_token": csrf}
    )
    assert answer.status_code == 200
    assert "Test sent to editor-user@example.com." in answer.text
    (message,) = await OutboxMessage.all()
    assert message.recipients == "editor-user@example.com"
    assert message.subject == "[Test] Two hours to go: Growth Basics"


async def test_a_follow_up_is_added_and_a_step_removed(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    step = await hour_reminder(webinar)
    csrf = await sign_in(client)
    blank = await client.get(url(webinar, "/new?kind=follow_up"))
    assert blank.status_code == 200
    assert "Sent this long after the end" in blank.text
    form = {
        "kind": "follow_up",
        "subject": "Your offer from {webinar}",
        "body": "Here it is: {replay_link}",
        "amount": "3",
        "unit": "hours",
        "audience": "clicked_offer",
        "enabled": "on",
        "csrf_token": csrf,
    }
    assert (await client.post(url(webinar, "/new"), data=form)).status_code == 303
    added = await EmailStep.get(subject="Your offer from {webinar}")
    assert (added.kind, added.minutes, added.audience.value) == (
        StepKind.FOLLOW_UP,
        180,
        "clicked_offer",
    )
    gone = await client.post(
        url(webinar, f"/{step.id}"),
        data={**reminder_form(), "action": "delete", "csrf_token": csrf},
    )
    assert gone.headers["location"] == url(webinar, "?done=deleted")
    assert not await EmailStep.filter(id=step.id).exists()


async def test_the_late_rule_is_saved_and_checked(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    csrf = await sign_in(client)
    saved = await client.post(
        url(webinar, "/late"), data={"late_reminders": "latest", "csrf_token": csrf}
    )
    assert saved.status_code == 303
    assert (await Webinar.get(id=webinar.id)).late_reminders == "latest"
    bad = await client.post(
        url(webinar, "/late"), data={"late_reminders": "all", "csrf_token": csrf}
    )
    assert bad.status_code == 400
    assert (await Webinar.get(id=webinar.id)).late_reminders == "latest"


async def test_an_analyst_may_look_but_not_change(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    step = await hour_reminder(webinar)
    csrf = await sign_in(client, Role.ANALYST)
    page = await client.get(url(webinar, f"/{step.id}"))
    assert page.status_code == 200
    assert "your role does not allow changing it" in page.text
    refused = await client.post(
        url(webinar, f"/{step.id}"), data={**reminder_form(), "csrf_token": csrf}
    )
    assert refused.status_code == 403
    await step.refresh_from_db()
    assert step.minutes == 60


async def test_a_step_of_another_webinar_is_not_found(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    other = await Webinar.create(slug="other", title="Other")
    step = await hour_reminder(other)
    csrf = await sign_in(client)
    assert (await client.get(url(webinar, f"/{step.id}"))).status_code == 404
    posted = await client.post(
        url(webinar, f"/{step.id}"), data={**reminder_form(), "csrf_token": csrf}
    )
    assert posted.status_code == 404


async def test_an_editor_writes_the_webinars_own_confirmation_and_can_go_back(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics", language="de")
    csrf = await sign_in(client)
    listed = await client.get(url(webinar))
    assert "Write your own" in listed.text
    blank = await client.get(url(webinar, "/new?kind=confirmation"))
    assert blank.status_code == 200
    # A starting text in the webinar's language, with the variables in place.
    assert "Sie sind angemeldet: {webinar}" in html.unescape(blank.text)
    assert "Sent this long" not in blank.text  # no moment to choose: it goes at registration
    form = {
        "kind": "confirmation",
        "subject": "Willkommen: {webinar}",
        "body": "Hallo {first_name},\n\nbis {when}.\n\n{join_link}",
        "csrf_token": csrf,
    }
    assert (await client.post(url(webinar, "/new"), data=form)).status_code == 303
    own = await EmailStep.get(webinar_id=webinar.id, kind=StepKind.CONFIRMATION)
    assert (own.subject, own.enabled) == ("Willkommen: {webinar}", True)
    listed = await client.get(url(webinar))
    assert "Willkommen: {webinar}" in html.unescape(listed.text)
    assert "Write your own" not in listed.text
    twice = await client.post(url(webinar, "/new"), data=form)
    assert twice.status_code == 400
    assert "already has its own confirmation" in twice.text
    back = await client.post(
        url(webinar, f"/{own.id}"), data={**form, "action": "delete", "csrf_token": csrf}
    )
    assert back.status_code == 303
    assert not await EmailStep.filter(kind=StepKind.CONFIRMATION).exists()
