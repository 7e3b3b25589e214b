"""The schedule tab over HTTP through the real app: look, preview, errors, save and confirm."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.models import (
    Contact,
    OutboxMessage,
    PlannedEmail,
    Registrant,
    Role,
    Schedule,
    Webinar,
    WebinarSession,
)
from app.schedule import upcoming_sessions
from app.services import crypto, delivery, mail, schedules
from app.services.schedules import ScheduleInput
from app.settings import Settings
from tests.conftest import csrf_token, login, make_user

BERLIN = ZoneInfo("Europe/Berlin")
WEEKLY: dict[str, str | list[str]] = {
    "kind": "recurring",
    "timezone": "Europe/Berlin",
    "repeat": "weekly",
    "weekdays": ["tue"],
    "times": ["10:00", ""],
    "upcoming_count": "3",
    "cutoff_minutes": "0",
    "orphan_policy": "move",
}


@pytest.fixture(autouse=True)
def configured_mailer() -> None:
    """The outbox mailer the settings choose."""
    mail.use_mailer(None)


async def sign_in(client: httpx.AsyncClient, role: Role = Role.EDITOR) -> str:
    """Sign in with a role; the CSRF token of the admin pages."""
    if role != Role.OWNER:
        await make_user(Role.OWNER)
    user = await make_user(role, email=f"{role.value}-user@example.com")
    assert (await login(client, user.email)).status_code == 303
    return await csrf_token(client, "/admin")


def url(webinar: Webinar) -> str:
    return f"/admin/webinars/{webinar.id}/schedule"


async def save_schedule(webinar: Webinar, **values: str | list[str]) -> ScheduleInput:
    data = {**WEEKLY, **values}
    result = schedules.form_to_rules(
        {key: [value] if isinstance(value, str) else value for key, value in data.items()}
    )
    assert isinstance(result, ScheduleInput)
    await Schedule.create(
        webinar=webinar,
        kind=result.kind,
        timezone=result.timezone,
        attendee_local=result.attendee_local,
        rules=result.rules,
        blackout_dates=result.blackout_dates,
        orphan_policy=result.orphan_policy,
    )
    return result


async def registrant_in_next_session(webinar: Webinar, stored: ScheduleInput) -> tuple[Any, str]:
    """A registrant of the second offered session (comfortably in the future), and their token."""
    start = upcoming_sessions(stored.parsed, datetime.now(UTC), count=2)[1].starts_at
    session = await WebinarSession.create(webinar=webinar, starts_at=start, kind="scheduled")
    token = crypto.new_token()
    registrant = await Registrant.create(
        contact=await Contact.create(email="ann@example.com", name="Ann Example"),
        webinar=webinar,
        session=session,
        join_token_hash=crypto.hash_token(token),
        join_token_sealed=crypto.seal(token),
        timezone="Europe/Berlin",
    )
    return registrant, token


def text_of(message: OutboxMessage) -> str:
    parsed = message_from_string(message.content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def test_the_editor_offers_every_setting_with_spare_rows(client: httpx.AsyncClient) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    await sign_in(client)
    response = await client.get(url(webinar))
    assert response.status_code == 200
    page = response.text
    for kind in ("recurring", "specific", "on_demand"):
        assert f'name="kind" value="{kind}"' in page
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
        assert f'name="weekdays" value="{day}"' in page
    # Without JavaScript a couple of empty rows are always there to type into.
    assert len(re.findall(r'type="time" name="times" value=""', page)) == 2
    assert len(re.findall(r'type="datetime-local" name="dates" value=""', page)) == 2
    assert len(re.findall(r'type="date" name="blackout_dates" value=""', page)) == 2
    assert '<option value="Europe/Berlin">' in page
    assert 'value="Asia/Kathmandu"' in page
    assert 'name="orphan_policy" value="move" checked' in page
    assert 'name="action" value="preview"' in page
    assert 'name="action" value="save"' in page
    assert "/static/js/schedule.js" in page
    assert (await client.get("/admin/webinars/9999/schedule")).status_code == 404


async def test_a_viewer_may_look_but_not_change(client: httpx.AsyncClient) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    await save_schedule(webinar)
    token = await sign_in(client, Role.ANALYST)
    response = await client.get(url(webinar))
    assert response.status_code == 200
    assert '<fieldset class="sched-all" disabled>' in response.text
    assert 'value="save"' not in response.text
    assert "Tue " in response.text  # the preview of the stored schedule

    refused = await client.post(
        url(webinar), data={**WEEKLY, "times": ["11:00"], "action": "save", "csrf_token": token}
    )
    assert refused.status_code == 403
    assert (await Schedule.get(webinar=webinar)).rules["times"] == ["10:00"]


async def test_a_post_without_the_csrf_token_changes_nothing(client: httpx.AsyncClient) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    await sign_in(client)
    response = await client.post(url(webinar), data={**WEEKLY, "action": "save"})
    assert response.status_code == 403
    assert not await Schedule.exists()


async def test_preview_shows_the_next_starts_without_saving(client: httpx.AsyncClient) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    token = await sign_in(client)
    response = await client.post(
        url(webinar),
        data={
            **WEEKLY,
            "weekdays": ["tue", "thu"],
            "jit": "1",
            "jit_every": "30",
            "jit_lead": "5",
            "replays": "1",
            "replay_hours": "24",
            "viewer_zone": "Asia/Tokyo",
            "action": "preview",
            "csrf_token": token,
        },
    )
    assert response.status_code == 200
    page = html.unescape(response.text)
    assert "Starts (Europe/Berlin)" in page
    assert "For a visitor in Asia/Tokyo" in page
    assert page.count(" JST</td>") >= 3
    assert "just-in-time" in page
    assert "Replay until" in page
    # The submitted values are kept on the page.
    assert 'name="weekdays" value="thu" checked' in response.text
    assert '<option value="Asia/Tokyo" selected>' in response.text
    assert not await Schedule.exists()


async def test_errors_are_shown_beside_their_inputs_and_nothing_is_stored(
    client: httpx.AsyncClient,
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    token = await sign_in(client)
    response = await client.post(
        url(webinar),
        data={
            **WEEKLY,
            "weekdays": [],
            "times": ["10:00", "7 pm"],
            "capacity": "many",
            "action": "save",
            "csrf_token": token,
        },
    )
    assert response.status_code == 400
    page = html.unescape(response.text)
    assert "nothing was saved" in page
    assert 'id="err-times">Enter times as HH:MM (24-hour); “7 pm” is not one.' in page
    assert 'id="err-capacity">Enter a whole number from 1 to 1000000.' in page
    assert 'aria-invalid="true" aria-describedby="err-capacity capacity-help"' in page
    assert 'value="7 pm"' in page
    assert 'value="many"' in page
    assert not await Schedule.exists()

    # Once those are right, the rules themselves are checked: at least one weekday.
    response = await client.post(
        url(webinar), data={**WEEKLY, "weekdays": [], "action": "save", "csrf_token": token}
    )
    assert response.status_code == 400
    assert 'id="err-weekdays">Choose at least one weekday.' in response.text
    assert not await Schedule.exists()


async def test_saving_without_anyone_affected_saves_at_once(client: httpx.AsyncClient) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    token = await sign_in(client)
    response = await client.post(
        url(webinar),
        data={**WEEKLY, "kind": "specific", "dates": ["2031-05-01T10:00"], "action": "save"}
        | {"csrf_token": token},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"{url(webinar)}?saved=1"
    stored = await Schedule.get(webinar=webinar)
    assert stored.kind == "specific"
    assert stored.rules["dates"] == ["2031-05-01T10:00"]

    page = await client.get(response.headers["location"])
    assert "Schedule saved." in page.text
    assert 'value="2031-05-01T10:00"' in page.text
    assert "Thu 1 May 2031, 10:00 CEST" in page.text


async def test_an_edit_that_orphans_a_registrant_asks_first_then_moves(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    stored = await save_schedule(webinar)
    registrant, join = await registrant_in_next_session(webinar, stored)
    old = (await WebinarSession.get(id=registrant.session_id)).starts_at
    await PlannedEmail.create(
        kind="reminder_1h",
        to_email="ann@example.com",
        registrant=registrant,
        due_at=old - timedelta(hours=1),
        message_id="<reminder@example.com>",
    )
    token = await sign_in(client)
    edit = {**WEEKLY, "times": ["11:00", ""]}

    asked = await client.post(url(webinar), data={**edit, "action": "save", "csrf_token": token})
    assert asked.status_code == 200
    page = html.unescape(asked.text)
    assert "This change removes sessions people registered for" in page
    assert "Ann Example" in page
    new_when = (old + timedelta(hours=1)).astimezone(BERLIN)
    assert f"Moved to {new_when:%a} {new_when.day} {new_when:%b %Y, %H:%M}" in page
    assert '<input type="hidden" name="times" value="11:00">' in asked.text
    assert '<input type="hidden" name="weekdays" value="tue">' in asked.text
    assert (await Schedule.get(webinar=webinar)).rules["times"] == ["10:00"], "not saved yet"

    back = await client.post(url(webinar), data={**edit, "action": "back", "csrf_token": token})
    assert back.status_code == 200
    assert 'type="time" name="times" value="11:00"' in back.text
    assert (await Schedule.get(webinar=webinar)).rules["times"] == ["10:00"]
    await registrant.refresh_from_db()
    assert registrant.session_id is not None

    done = await client.post(url(webinar), data={**edit, "action": "confirm", "csrf_token": token})
    assert done.status_code == 303
    assert done.headers["location"] == f"{url(webinar)}?saved=1&moved=1"
    assert (await Schedule.get(webinar=webinar)).rules["times"] == ["11:00"]
    await registrant.refresh_from_db()
    assert registrant.session_id is not None
    moved_to = await WebinarSession.get(id=registrant.session_id)
    assert moved_to.starts_at == old + timedelta(hours=1)
    reminder = await PlannedEmail.get(message_id="<reminder@example.com>")
    assert reminder.due_at == old  # one hour before the new start
    await delivery.deliver_due(datetime.now(UTC))  # the scheduler's tick
    (message,) = await OutboxMessage.all()
    assert f"http://testserver/j/{join}" in text_of(message)

    after = await client.get(done.headers["location"])
    assert "1 registrant(s) moved to the nearest session and emailed." in after.text


async def test_the_confirmation_tells_the_notify_policy(client: httpx.AsyncClient) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    stored = await save_schedule(webinar)
    registrant, _ = await registrant_in_next_session(webinar, stored)
    token = await sign_in(client)
    edit = {**WEEKLY, "weekdays": ["wed"], "orphan_policy": "notify"}
    asked = await client.post(url(webinar), data={**edit, "action": "save", "csrf_token": token})
    assert asked.status_code == 200
    assert "emailed a link to pick a new time" in asked.text
    assert "Asked to pick a new time" in asked.text

    done = await client.post(url(webinar), data={**edit, "action": "confirm", "csrf_token": token})
    assert done.headers["location"] == f"{url(webinar)}?saved=1&notified=1"
    await registrant.refresh_from_db()
    assert registrant.session_id is None
    await delivery.deliver_due(datetime.now(UTC))  # the scheduler's tick
    (message,) = await OutboxMessage.all()
    assert "http://testserver/w/growth" in text_of(message)


async def test_the_sessions_page_lists_stored_sessions_in_the_webinar_zone(
    client: httpx.AsyncClient,
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    stored = await save_schedule(webinar)
    registrant, _ = await registrant_in_next_session(webinar, stored)
    past = await WebinarSession.create(
        webinar=webinar, starts_at=datetime(2020, 1, 7, 9, tzinfo=UTC), kind="jit"
    )
    await sign_in(client, Role.ANALYST)
    response = await client.get("/admin/sessions")
    assert response.status_code == 200
    session = await WebinarSession.get(id=registrant.session_id)
    local = session.starts_at.astimezone(BERLIN)
    upcoming, recent = response.text.split("<h2>Recent</h2>")
    assert f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}" in upcoming
    assert '<td data-label="Registrants">1</td>' in upcoming
    assert f'data-session="{past.id}"' in recent
    assert "Tue 7 Jan 2020, 10:00 CET" in recent
    assert "just-in-time" in recent
