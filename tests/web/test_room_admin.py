"""The room tab: settings shown, previewed, saved, refused with errors, reset, and who may do it."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from app.models import AuditEvent, Role, Webinar
from app.services import room_settings
from app.settings import Settings
from tests.web.staff import sign_in


def url(webinar: Webinar, tail: str = "") -> str:
    return f"/admin/webinars/{webinar.id}/room{tail}"


def form(**changes: str) -> dict[str, str]:
    typed = {
        "chat_mode": "moderated",
        "chat_enabled": "on",
        "notice": "Recorded in May. We are online to answer you.",
        "show_notice": "on",
        "welcome": "Hello and welcome!",
        "auto_response": "Thanks, we will reply soon.",
        "slow_mode_seconds": "20",
        "banned_words": "spam\ncasino",
        "end_title": "That's all for today",
        "end_text": "Your seat for the workshop is waiting.",
        "end_button": "Reserve my seat",
        "end_url": "https://example.com/workshop",
    }
    typed.update(changes)
    return typed


def field_value(page: str, name: str) -> str:
    """What an input or textarea of the page holds."""
    textarea = re.search(rf'<textarea id="{name}" name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    if textarea:
        return html.unescape(textarea.group(1))
    found = re.search(rf'<input id="{name}" name="{name}"[^>]* value="([^"]*)"', page)
    assert found, f"no field {name}"
    return html.unescape(found.group(1))


def checked(page: str, name: str, value: str = "on") -> bool:
    found = re.search(
        rf'<input type="(?:checkbox|radio)" name="{name}" value="{value}"([^>]*)>', page
    )
    assert found, f"no {name}={value}"
    return " checked" in found.group(1)


def preview(page: str) -> str:
    """The preview beside the form."""
    start = page.index('<aside class="room-preview"')
    return html.unescape(page[start : page.index("</aside>", start)])


async def test_the_tab_shows_the_defaults_and_their_preview(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    await sign_in(client)
    page = await client.get(url(webinar))
    assert page.status_code == 200
    assert 'aria-current="page">Room</a>' in page.text
    text = page.text
    assert field_value(text, "notice") == (
        "This presentation is recorded. Our team is here live to answer your questions in the chat."
    )
    assert field_value(text, "end_title") == "Thanks for watching"
    assert field_value(text, "slow_mode_seconds") == "0"
    assert checked(text, "chat_mode", "private")
    assert not checked(text, "chat_mode", "open")
    assert checked(text, "show_notice")
    assert checked(text, "chat_enabled")
    shown = preview(text)
    assert "This presentation is recorded." in shown
    assert "Thanks for watching" in shown
    assert "Only your team sees this attendee's messages." in shown
    assert 'class="btn btn-primary" href=' not in shown  # no button by default
    for description in room_settings.CHAT_MODE_DESCRIPTIONS.values():
        assert description in html.unescape(text)


async def test_a_german_webinar_starts_with_german_texts(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="wachstum", title="Wachstum", language="de")
    await sign_in(client)
    page = await client.get(url(webinar))
    assert field_value(page.text, "notice").startswith("Diese Präsentation ist eine Aufzeichnung.")
    assert field_value(page.text, "end_title") == "Danke fürs Zuschauen"
    assert "write them in Deutsch" in page.text


async def test_saving_round_trip(client: httpx.AsyncClient, database: Settings) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    token = await sign_in(client)
    done = await client.post(url(webinar), data={**form(), "action": "save", "csrf_token": token})
    assert done.status_code == 303
    assert done.headers["location"] == url(webinar, "?done=saved")

    stored = await Webinar.get(id=webinar.id)
    assert stored.chat_mode == "moderated"
    settings = room_settings.room_settings(stored)
    assert settings.banned_words == ("spam", "casino")
    assert settings.slow_mode_seconds == 20
    assert settings.end_url == "https://example.com/workshop"
    assert settings.auto_response == "Thanks, we will reply soon."
    event = await AuditEvent.get(action="room.settings_saved")
    assert event.actor_email == "editor-user@example.com"
    assert "banned_words" in event.details["changed"]

    page = await client.get(done.headers["location"])
    assert "Room settings saved." in page.text
    assert field_value(page.text, "banned_words") == "spam\ncasino"
    assert field_value(page.text, "end_button") == "Reserve my seat"
    assert checked(page.text, "chat_mode", "moderated")
    shown = preview(page.text)
    assert "Recorded in May. We are online to answer you." in shown
    assert "Hello and welcome!" in shown
    assert "That's all for today" in shown
    assert '<a class="btn btn-primary" href="https://example.com/workshop"' in shown
    assert "Slow mode: one message every 20 seconds." in shown
    assert "spam" not in shown

    # Unticking both boxes turns the notice and the chat off.
    changed = form(show_notice="", chat_enabled="")
    del changed["show_notice"], changed["chat_enabled"]
    again = await client.post(url(webinar), data={**changed, "csrf_token": token})
    assert again.status_code == 303
    settings = room_settings.room_settings(await Webinar.get(id=webinar.id))
    assert (settings.show_notice, settings.chat_enabled) == (False, False)
    page = await client.get(url(webinar))
    assert not checked(page.text, "show_notice")
    assert "Recorded in May" not in preview(page.text)
    assert "The chat is off" in preview(page.text)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"end_url": "javascript:alert(1)"}, "end_url", "Enter a full web address"),
        ({"notice": "x" * 501}, "notice", "Keep this under 500 characters"),
        ({"slow_mode_seconds": "301"}, "slow_mode_seconds", "between 0 (off) and 300 seconds"),
        (
            {"banned_words": ", ".join(f"w{number}" for number in range(250))},
            "banned_words",
            "List at most 200 words; this list has 250.",
        ),
    ],
)
async def test_bad_input_is_refused_next_to_its_field_and_kept(
    client: httpx.AsyncClient,
    database: Settings,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    token = await sign_in(client)
    typed = form(**changes)
    refused = await client.post(url(webinar), data={**typed, "csrf_token": token})
    assert refused.status_code == 400
    page = refused.text
    assert "Nothing was saved." in page
    error = re.search(rf'<p class="field-error" id="err-{field}">(.*?)</p>', page)
    assert error
    assert message in html.unescape(error.group(1))
    assert f'aria-describedby="err-{field}' in page
    assert page.count('class="field-error"') == 1
    # Everything typed is still there, the wrong value too.
    for name in ("notice", "welcome", "end_title", "end_url", "banned_words", "slow_mode_seconds"):
        assert field_value(page, name) == typed[name]
    assert checked(page, "chat_mode", "moderated")
    # Stored nowhere.
    stored = await Webinar.get(id=webinar.id)
    assert (stored.room, stored.chat_mode) == ({}, "private")
    assert await AuditEvent.filter(action__startswith="room.").count() == 0


async def test_preview_shows_unsaved_changes(client: httpx.AsyncClient, database: Settings) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    token = await sign_in(client)
    shown = await client.post(
        url(webinar),
        data={**form(end_title="Only a preview"), "action": "preview", "csrf_token": token},
    )
    assert shown.status_code == 200
    assert "nothing is saved yet" in shown.text
    assert "Only a preview" in preview(shown.text)
    assert field_value(shown.text, "end_title") == "Only a preview"
    assert (await Webinar.get(id=webinar.id)).room == {}


async def test_reset_to_defaults(client: httpx.AsyncClient, database: Settings) -> None:
    webinar = await Webinar.create(
        slug="growth",
        title="Growth Basics",
        chat_mode="open",
        room={"welcome": "", "banned_words": ["spam"], "slow_mode_seconds": 30},
    )
    token = await sign_in(client)
    done = await client.post(
        url(webinar), data={**form(end_url="not checked"), "action": "reset", "csrf_token": token}
    )
    assert done.status_code == 303
    assert done.headers["location"] == url(webinar, "?done=reset")
    stored = await Webinar.get(id=webinar.id)
    assert (stored.room, stored.chat_mode) == ({}, "private")
    page = await client.get(done.headers["location"])
    assert "back to their defaults" in page.text
    assert field_value(page.text, "banned_words") == ""
    assert field_value(page.text, "welcome").startswith("Welcome")
    assert await AuditEvent.filter(action="room.settings_reset").count() == 1


@pytest.mark.parametrize("role", [Role.MODERATOR, Role.ANALYST])
async def test_roles_without_edit_rights_may_look_but_not_change(
    client: httpx.AsyncClient, database: Settings, role: Role
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics", room={"welcome": "Hi"})
    token = await sign_in(client, role)
    page = await client.get(url(webinar))
    assert page.status_code == 200
    assert "your role does not allow changing them" in page.text
    assert '<fieldset class="room-all" disabled>' in page.text
    assert 'value="save"' not in page.text
    assert 'value="reset"' not in page.text
    for action in ("save", "reset"):
        refused = await client.post(
            url(webinar), data={**form(), "action": action, "csrf_token": token}
        )
        assert refused.status_code == 403
    stored = await Webinar.get(id=webinar.id)
    assert (stored.room, stored.chat_mode) == ({"welcome": "Hi"}, "private")


async def test_anonymous_visitors_and_missing_webinars(
    client: httpx.AsyncClient, database: Settings
) -> None:
    webinar = await Webinar.create(slug="growth", title="Growth Basics")
    page = await client.get(url(webinar))
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=")
    token = await sign_in(client)
    assert (await client.get(f"/admin/webinars/{webinar.id + 1}/room")).status_code == 404
    missing = await client.post(
        f"/admin/webinars/{webinar.id + 1}/room", data={**form(), "csrf_token": token}
    )
    assert missing.status_code == 404
