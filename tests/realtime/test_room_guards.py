"""The room's guards over real sockets: sign-ins that end, shared limits, what stays private."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import uuid
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
import socketio
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from app.models import AnalyticsEvent, ChatMessage, Interaction, Role, StaffUser, WebinarSession
from app.realtime import hub as hub_module
from app.realtime import protocol
from app.services import attendance, auth
from app.settings import Settings
from tests.conftest import make_user, require
from tests.realtime.live import STEP_TIMEOUT, LiveServer, Peer, live_server, new_peer, until
from tests.realtime.test_room import (
    join,
    make_attendee,
    make_session,
    nothing_more,
    presenter,
    staff_token,
)

HUGE = 2**40  # a whole number past any INTEGER id
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


async def timed(
    session: WebinarSession, kind: str, title: str, opens_at: int, config: dict[str, Any]
) -> Interaction:
    """An interaction of the session's webinar, opening `opens_at` seconds into the video."""
    return await Interaction.create(
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        kind=kind,
        title=title,
        config=config,
        opens_at_seconds=opens_at,
    )


async def signed_in_staff(role: Role = Role.OWNER) -> tuple[StaffUser, str]:
    user = await make_user(role, email=f"{role.value}-{uuid.uuid4().hex[:6]}@example.com")
    return user, await staff_token(user)


async def console(server: LiveServer, peers: list[Peer], token: str, **headers: str) -> Peer:
    peer = new_peer(peers)
    await peer.connect(server.url, token=token, **headers)
    await peer.next_event(protocol.HELLO)
    return peer


async def test_a_console_closes_when_its_sign_in_ends(
    server: LiveServer, peers: list[Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "STAFF_CHECK", 0.2)
    user, token = await signed_in_staff()
    acting = await console(server, peers, token)
    _other_user, other_token = await signed_in_staff()
    idle = await console(server, peers, other_token)
    assert (await acting.call(protocol.CONSOLE, {}))["ok"]

    await auth.end_all_sessions(user=user)
    # The next event is refused at once, and the socket is closed.
    answer = await acting.call(protocol.CONSOLE, {})
    assert answer["error"]["code"] == "unauthenticated"
    await until(lambda: not acting.client.connected, "the console to be disconnected")

    # A console that sends nothing is closed by the periodic check.
    await auth.end_session(other_token)
    await until(lambda: not idle.client.connected, "the idle console to be disconnected")
    assert server.sio.hub.local_staff == 0


async def test_a_disabled_member_stops_receiving_at_once(
    server: LiveServer, peers: list[Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "STAFF_CHECK", 0.2)
    user, token = await signed_in_staff(Role.MODERATOR)
    peer = await console(server, peers, token)
    await StaffUser.filter(id=user.id).update(is_active=False)
    await until(lambda: not peer.client.connected, "the disabled member to be disconnected")


async def test_only_people_who_may_answer_count_as_the_team_online(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session(auto_response="We will get back to you by email.")
    _ann, token = await make_attendee(session)
    ann, room = await join(server, peers, token)
    assert room["team_online"] is False
    _analyst, analyst_token = await signed_in_staff(Role.ANALYST)
    analyst = await console(server, peers, analyst_token)
    assert (await analyst.call(protocol.CONSOLE, {}))["ok"], "analysts may look"
    await nothing_more(ann, protocol.TEAM)
    sent = await ann.call(protocol.CHAT_SEND, {"body": "Anyone there?"})
    assert sent["ok"]
    # Nobody who may answer is there: the attendee still gets the automatic answer.
    async with asyncio.timeout(STEP_TIMEOUT):
        while True:
            batch = await ann.next_event(protocol.CHAT)
            if any(m["body"] == "We will get back to you by email." for m in batch["messages"]):
                break
    await presenter(server, peers)
    assert await ann.next_event(protocol.TEAM) == {"online": True}


async def test_a_connect_that_fails_midway_is_refused_and_leaves_nothing(
    server: LiveServer, peers: list[Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await make_session()
    _ann, token = await make_attendee(session)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(attendance, "record", broken)
    peer = new_peer(peers)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await peer.connect(server.url, join=token)
    assert peer.connect_errors[-1]["data"]["code"] == "server_error"
    hub = server.sio.hub
    assert hub.connections == {}
    assert hub.limits == {}


async def test_events_with_more_than_one_argument_are_refused(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session()
    _ann, token = await make_attendee(session)
    ann, _ = await join(server, peers, token)
    for event in (protocol.SYNC, "no-such-event"):
        answer = await ann.client.call(event, ({}, 1), timeout=STEP_TIMEOUT)
        assert answer["ok"] is False, event
    assert (await ann.call(protocol.SYNC, {}))["ok"]


async def test_other_sites_cookies_break_neither_the_console_nor_the_pages(
    server: LiveServer,
) -> None:
    await signed_in_staff()  # an owner exists: the sign-in form is shown
    odd = "user[x]=1; a@b=2; encore_session=abc"
    assert hub_module._cookie({"HTTP_COOKIE": odd}, "encore_session") == "abc"
    async with httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get("/login", headers={"Cookie": "a@b=1; user[x]=2"})
        assert page.status_code == 200
        csrf = page.cookies.get("encore_csrf")
        assert csrf
        # The CSRF cookie after an odd one is still found: the form posts normally.
        client.cookies.clear()
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found, page.text[:500]
        token = found.group(1)
        posted = await client.post(
            "/login",
            data={"csrf_token": token, "email": "nobody@example.com", "password": "x"},
            headers={"Cookie": f"user[x]=1; encore_csrf={csrf}"},
        )
        assert posted.status_code != 403, posted.text[:200]


async def test_an_attendees_tabs_share_one_rate_and_slow_mode_holds(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session(chat_mode="open", slow_mode_seconds=60)
    ann, token = await make_attendee(session)
    tabs = [(await join(server, peers, token))[0] for _ in range(hub_module.MAX_TABS)]
    extra = new_peer(peers)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await extra.connect(server.url, join=token)
    assert extra.connect_errors[-1]["data"]["code"] == "too_many_tabs"

    sent = await asyncio.gather(
        *(tab.call(protocol.CHAT_SEND, {"body": f"hello {n}"}) for n, tab in enumerate(tabs))
    )
    assert sum(1 for answer in sent if answer["ok"]) == 1, [
        a.get("error") or a["message"]["body"] for a in sent
    ]
    assert {a["error"]["code"] for a in sent if not a["ok"]} <= {"slow_mode", "rate_limited"}
    assert await ChatMessage.filter(registrant_id=ann.id, automatic=False).count() == 1


async def test_quiz_answers_reach_only_those_who_answered(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session()
    quiz = await timed(
        session,
        "quiz",
        "Which port?",
        600,
        {"options": ["80", "443", "8080"], "correct": [1], "explanation": "TLS"},
    )
    _ann, ann_token = await make_attendee(session)
    _bob, bob_token = await make_attendee(session, "Bob Other")
    ann, _ = await join(server, peers, ann_token)
    bob, _ = await join(server, peers, bob_token)
    team = await presenter(server, peers)

    mine = await ann.call(protocol.ANSWER, {"interaction_id": quiz.id, "answer": 1})
    assert mine["results"]["results"]["correct"] == [1], "the one who answered sees it"
    pushed = await bob.next_event(protocol.RESULTS)
    assert pushed["results"]["counts"] == [0, 1, 0]
    assert not {"correct", "correct_share", "explanation"} & set(pushed["results"])
    staff = await team.next_event(protocol.RESULTS)
    assert staff["results"]["correct"] == [1]


async def test_clicks_count_people_once_and_not_before_the_moment(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session(started=timedelta(minutes=12))
    offer = await timed(
        session,
        "offer",
        "20% off",
        60,
        {"text": "Today", "button": "Get it", "url": "https://example.com/buy"},
    )
    later = await timed(
        session,
        "offer",
        "Later",
        1500,
        {"text": "Soon", "button": "Go", "url": "https://example.com/later"},
    )
    ann, token = await make_attendee(session)
    peer, _ = await join(server, peers, token)
    early = await peer.call(protocol.CLICK, {"interaction_id": later.id})
    assert early["error"]["code"] == "closed"
    for _ in range(5):
        assert (await peer.call(protocol.CLICK, {"interaction_id": offer.id}))["ok"]
    assert await AnalyticsEvent.filter(registrant_id=ann.id, kind="offer_click").count() == 1


async def test_heartbeats_closer_than_the_players_rhythm_are_not_stored(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session()
    ann, token = await make_attendee(session)
    peer, _ = await join(server, peers, token)
    for _ in range(8):
        assert (await peer.call(protocol.HEARTBEAT, {"position": 720, "playing": True}))["ok"]

    async def written() -> bool:
        return await AnalyticsEvent.filter(registrant_id=ann.id, kind="heartbeat").exists()

    await until(written, "the heartbeat to be written")
    await asyncio.sleep(hub_module.SLOW_TICK * 1.5)
    assert await AnalyticsEvent.filter(registrant_id=ann.id, kind="heartbeat").count() == 1


async def test_ids_too_large_for_a_row_are_unknown_not_errors(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session()
    _ann, token = await make_attendee(session)
    ann, _ = await join(server, peers, token)
    answer = await ann.call(protocol.ANSWER, {"interaction_id": HUGE, "answer": 0})
    assert answer["error"]["code"] == "unknown_interaction"
    assert (await ann.call(protocol.CLICK, {"interaction_id": HUGE}))["error"][
        "code"
    ] == "unknown_interaction"
    team = await presenter(server, peers)
    for event, payload, code in (
        (protocol.WATCH, {"session_id": HUGE}, "unknown_session"),
        (protocol.MODERATE, {"message_id": 2**70, "action": "pin"}, "unknown_message"),
        (protocol.MODERATE, {"message_id": HUGE, "action": "pin"}, "unknown_message"),
        (
            protocol.RESTRICT,
            {"session_id": session.id, "registrant_id": HUGE, "action": "mute"},
            "unknown_attendee",
        ),
        (
            protocol.REPLY,
            {"session_id": session.id, "body": "Hi", "reply_to": HUGE, "public": False},
            "unknown_message",
        ),
    ):
        refused = await team.call(event, payload)
        assert refused["error"]["code"] == code, (event, refused)
    _owner, owner_token = await signed_in_staff()
    async with httpx.AsyncClient(base_url=server.url) as client:
        for path in (f"/j/{token}/files/{HUGE}", f"/j/{token}/files/{2**70}"):
            assert (await client.get(path)).status_code == 404, path
        client.cookies.set("encore_session", owner_token)
        for path in (
            f"/admin/webinars/{HUGE}",
            f"/admin/webinars/{session.webinar_id}/interactions/{HUGE}",  # type: ignore[attr-defined]
            f"/admin/outbox/{2**70}",
        ):
            assert (await client.get(path)).status_code == 404, path


async def test_a_muted_attendee_cannot_ask_the_team_either(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session()
    question = await timed(session, "question", "Your question", 600, {})
    ann, token = await make_attendee(session)
    peer, _ = await join(server, peers, token)
    team = await presenter(server, peers)
    muted = await team.call(
        protocol.RESTRICT,
        {"session_id": session.id, "registrant_id": ann.id, "action": "mute"},
    )
    assert muted["ok"]
    asked = await peer.call(protocol.ANSWER, {"interaction_id": question.id, "answer": "Hi?"})
    assert asked["error"]["code"] == "muted"
    assert not await ChatMessage.filter(registrant_id=ann.id).exists()


async def test_closing_one_of_two_tabs_is_not_a_leave(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session()
    ann, token = await make_attendee(session)
    first, _ = await join(server, peers, token)
    second, _ = await join(server, peers, token)
    await first.close()
    await asyncio.sleep(0.3)
    assert not await AnalyticsEvent.filter(registrant_id=ann.id, kind="leave").exists()
    await second.close()

    async def left() -> bool:
        return await AnalyticsEvent.filter(registrant_id=ann.id, kind="leave").count() == 1

    await until(left, "the leave when the last tab closed")


async def test_a_ban_on_another_web_process_closes_the_attendee_here(
    database: Settings, peers: list[Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    require(bool(TEST_REDIS_URL), "TEST_REDIS_URL is not set")
    monkeypatch.setattr(hub_module, "STAFF_CHECK", 0.2)
    settings = database.model_copy(
        update={"redis_url": TEST_REDIS_URL, "redis_channel": f"encore-{uuid.uuid4().hex[:8]}"}
    )
    session = await make_session()
    ann, token = await make_attendee(session)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(live_server(settings))
        second = await stack.enter_async_context(live_server(settings))
        attendee, _ = await join(first, peers, token)
        team = await presenter(second, peers)
        banned = await team.call(
            protocol.RESTRICT,
            {"session_id": session.id, "registrant_id": ann.id, "action": "ban"},
        )
        assert banned["ok"]
        await until(lambda: not attendee.client.connected, "the banned attendee to be closed")
        for peer in peers:
            await peer.close()


async def test_a_flooding_client_that_ignores_the_disconnect_is_cut_off(
    server: LiveServer,
) -> None:
    session = await make_session()
    _ann, token = await make_attendee(session)
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    # A raw client: it reads everything (so the server's close reaches it) and never closes.
    async with ws_connect(url, compression=None, max_queue=None) as ws:
        assert str(await ws.recv()).startswith("0{")
        await ws.send("40" + json.dumps({"token": token}))
        while not str(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)).startswith("40{"):
            pass  # the room comes first, then the connect's answer
        for number in range(hub_module.MAX_REFUSED * 3):
            try:
                await ws.send(f'42{number}["{protocol.SYNC}",{{}}]')
            except ConnectionClosed:
                break
        await asyncio.wait_for(ws.wait_closed(), STEP_TIMEOUT)
        assert ws.protocol.close_rcvd is not None, "the server closed the connection"
        received = []
        with contextlib.suppress(ConnectionClosed):
            while True:
                received.append(str(await ws.recv()))
    assert "41" in received  # told first, as a page is
    assert any('"rate_limited"' in packet for packet in received)
    assert server.sio.hub.connections == {}
    assert server.sio.eio.sockets == {}


async def test_the_clock_answers_attendees_at_once_and_the_team_too(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session()
    _ann, token = await make_attendee(session)
    ann, _ = await join(server, peers, token)
    team = await presenter(server, peers)
    for peer in (ann, team):
        before = int(auth.utcnow().timestamp() * 1000)
        answer = await peer.call(protocol.SYNC, {})
        assert answer["ok"] is True
        assert before <= answer["server_ms"] <= int(auth.utcnow().timestamp() * 1000)
    bad: Any
    for bad in ([], "x"):  # left to the library's way, which says why
        refusal = await ann.call(protocol.SYNC, bad)
        assert refusal["error"]["code"] == "bad_request"
