"""The attendee's room page (`GET /j/{token}`) through the real app: page, headers and words."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.models import Registrant, Schedule, Webinar, WebinarSession, WebinarStatus
from app.realtime import protocol
from app.services import auth
from app.settings import ROOT
from app.web import join_pages

BERLIN = ZoneInfo("Europe/Berlin")
ROOM_JS = ROOT / "static" / "js" / "room.js"


async def _webinar(*, language: str = "en", watch_now: bool = False) -> Webinar:
    day = (auth.utcnow() + timedelta(days=30)).astimezone(BERLIN).date()
    webinar = await Webinar.create(
        slug="room-101",
        title="Room <101> & 'friends'",
        language=language,
        status=WebinarStatus.PUBLISHED,
        published_at=auth.utcnow(),
        theme={"template": "classic", "primary": "#0f766e", "logo_key": "images/logo.png"},
    )
    if watch_now:
        rules: dict[str, Any] = {"repeat": "daily", "times": ["10:00"], "watch_now": True}
        await Schedule.create(
            webinar=webinar, kind="recurring", timezone="Europe/Berlin", rules=rules
        )
    else:
        await Schedule.create(
            webinar=webinar,
            kind="specific",
            timezone="Europe/Berlin",
            rules={"dates": [f"{day.isoformat()}T10:00"]},
        )
    return webinar


def _first_start() -> datetime:
    day = (auth.utcnow() + timedelta(days=30)).astimezone(BERLIN).date()
    return datetime.combine(day, time(10, 0), BERLIN).astimezone(UTC)


async def _register(client: httpx.AsyncClient, *, session: str | None = None) -> str:
    response = await client.post(
        "/w/room-101/register",
        data={
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "session": session or _first_start().isoformat(),
            "timezone": "Europe/Berlin",
            "website": "",
        },
    )
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/j/([A-Za-z0-9_-]+)/registered", response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


def _assert_token_page(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-robots-tag"] == "noindex"


def _assert_strict_csp(response: httpx.Response) -> None:
    policy = response.headers["content-security-policy"]
    csp = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert "unsafe" not in policy
    # hls.js fetches playlists and segments and the socket connects to this same origin.
    assert csp["connect-src"].startswith("'self' ws: wss:")
    assert csp["media-src"].startswith("'self' blob:")
    assert csp["frame-ancestors"] == "'none'"


def _attribute_json(page: str, name: str) -> dict[str, Any]:
    match = re.search(rf"{name}='([^']*)'", page)
    assert match, f"no {name} on the page"
    value = json.loads(html.unescape(match.group(1)))
    assert isinstance(value, dict)
    return value


def _scripts(page: str) -> list[str]:
    return re.findall(r'<script src="([^"]+)" defer></script>', page)


@pytest.mark.parametrize(
    ("offset", "state", "text"),
    [
        (timedelta(days=2), "waiting", "The session has not started yet."),
        (timedelta(minutes=10), "soon", "The session starts soon. Keep this page open."),
        (timedelta(minutes=-5), "live", "The session is live now."),
        (timedelta(hours=-3), "ended", "This session has ended."),
    ],
)
async def test_a_registrant_with_a_session_gets_the_room(
    client: httpx.AsyncClient, offset: timedelta, state: str, text: str
) -> None:
    await _webinar()
    token = await _register(client)
    await WebinarSession.all().update(starts_at=auth.utcnow() + offset)

    response = await client.get(f"/j/{token}")

    assert response.status_code == 200
    _assert_token_page(response)
    _assert_strict_csp(response)
    page = response.text
    assert f'data-state="{state}"' in page
    assert text in page
    assert "<h1>Room &lt;101&gt; &amp; &#39;friends&#39;</h1>" in page
    assert "/w/theme.css?p=0f766e" in page
    assert '<img class="logo" src="/media/images/logo.png"' in page
    scripts = _scripts(page)
    assert [src.split("?")[0] for src in scripts] == [
        "/static/vendor/socket.io.min.js",
        "/static/vendor/hls.min.js",
        "/static/js/room.js",
    ]
    # No inline code: the page's data travel in attributes the CSP does not govern.
    assert page.count("<script") == len(scripts)
    assert " style=" not in page
    config = _attribute_json(page, "data-config")
    assert config == join_pages.room_config()
    labels = _attribute_json(page, "data-labels")
    assert labels["sound_on"] == "Click for sound"
    assert labels["starts_in"] == "Starts in {time}"
    waiting = state in ("waiting", "soon")
    assert ("data-countdown" in page) is waiting
    assert ("data-reload-at-start" in page) is waiting
    assert (f'href="/j/{token}/calendar.ics"' in page) is waiting
    assert 'aria-labelledby="chat-title"' in page
    assert 'maxlength="1000"' in page


async def test_an_on_demand_registrant_gets_the_room(client: httpx.AsyncClient) -> None:
    await _webinar(watch_now=True)
    token = await _register(client, session="now")

    response = await client.get(f"/j/{token}")

    assert response.status_code == 200
    _assert_token_page(response)
    assert 'data-state="on_demand"' in response.text
    assert "data-room" in response.text
    assert "You chose to watch on demand" in response.text
    assert "calendar.ics" not in response.text


async def test_without_a_session_the_join_page_says_the_time_will_follow(
    client: httpx.AsyncClient,
) -> None:
    await _webinar()
    token = await _register(client)
    await Registrant.all().update(session_id=None)

    response = await client.get(f"/j/{token}")

    assert response.status_code == 200
    _assert_token_page(response)
    page = response.text
    assert "Your session time will be sent to you by email." in page
    assert "data-room" not in page
    assert "room.js" not in page
    assert "socket.io" not in page


async def test_an_unknown_link_is_not_found(client: httpx.AsyncClient) -> None:
    await _webinar()
    await _register(client)
    for path in ("/j/unknown-token", "/j/" + "x" * 300):
        response = await client.get(path)
        assert response.status_code == 404, path
        _assert_token_page(response)
        assert "data-room" not in response.text


async def test_a_german_webinar_has_a_german_room(client: httpx.AsyncClient) -> None:
    await _webinar(language="de")
    token = await _register(client)
    await WebinarSession.all().update(starts_at=auth.utcnow() - timedelta(minutes=1))

    page = (await client.get(f"/j/{token}")).text

    assert '<html lang="de">' in page
    assert "Die Sitzung läuft jetzt live." in page
    assert "Verbindung zum Raum wird hergestellt" in page
    assert '<label for="chat-body">Ihre Nachricht</label>' in page
    assert ">Senden</button>" in page
    labels = _attribute_json(page, "data-labels")
    assert labels["sound_on"] == "Klicken für Ton"
    assert labels["back_to_live"] == "Zurück zum Live-Stand"
    assert labels["chat_private"] == "Nur unser Team sieht Ihre Nachrichten."
    assert labels["votes_other"] == "{count} Stimmen"
    english = _english_labels()
    # Every word room.js shows has its German text (the same word only where German uses it).
    same = {key for key, value in labels.items() if value == english[key]}
    assert same <= {"pause", "live", "team", "kind_quiz", "kind_link"}, same


def _english_labels() -> dict[str, str]:
    from starlette.requests import Request

    from app.web.public_templating import render_public

    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "state": {}})
    response = render_public(
        request,
        "public/room.html",
        {
            "webinar": Webinar(title="T", language="en"),
            "state": "live",
            "room_config": join_pages.room_config(),
        },
        language="en",
    )
    return _attribute_json(bytes(response.body).decode(), "data-labels")


def test_the_page_speaks_the_protocol_of_the_hub() -> None:
    # The web layer may not import the realtime package, so it keeps its own copies.
    assert join_pages.SOCKET_PATH == "/" + protocol.SOCKETIO_PATH
    assert join_pages.HEARTBEAT_SECONDS == protocol.HEARTBEAT_SECONDS
    assert join_pages.MAX_CHAT_CHARS == protocol.MAX_CHAT_CHARS
    source = ROOM_JS.read_text(encoding="utf-8")
    block = re.search(r"var EVENTS = \{(.*?)\};", source, re.S)
    assert block, "room.js names its events in one EVENTS block"
    events = dict(re.findall(r"(\w+): \"([^\"]+)\"", block.group(1)))
    assert len(events) == 14
    for name, value in events.items():
        assert getattr(protocol, name) == value, name
