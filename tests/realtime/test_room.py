"""The live room over real sockets: attendees and staff on a real uvicorn server."""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import pytest
import socketio

from app.models import (
    AnalyticsEvent,
    ChatMessage,
    Contact,
    Interaction,
    InteractionResponse,
    PlannedEmail,
    Registrant,
    Role,
    Schedule,
    SessionStage,
    StaffUser,
    Video,
    VideoState,
    Webinar,
    WebinarSession,
)
from app.realtime import protocol
from app.services import auth, crypto, engagement, interactions, profiles
from app.services import room as room_service
from app.settings import Settings
from tests.conftest import make_user, require
from tests.realtime.live import STEP_TIMEOUT, LiveServer, Peer, live_server, new_peer, until

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
VIDEO_SECONDS = 1800.0


async def make_session(
    *, started: timedelta = timedelta(minutes=12), chat_mode: str = "private", **room: Any
) -> WebinarSession:
    """A webinar with a 30-minute video whose session started `started` ago."""
    video = await Video.create(
        title="Talk",
        source_key="uploads/x",
        state=VideoState.READY,
        duration_seconds=VIDEO_SECONDS,
        playable=True,
        hls_key="videos/1/master.m3u8",
    )
    webinar = await Webinar.create(
        slug=f"w-{uuid.uuid4().hex[:8]}",
        title="Onboarding",
        video=video,
        chat_mode=chat_mode,
        room=room,
    )
    return await WebinarSession.create(webinar=webinar, starts_at=auth.utcnow() - started)


async def make_attendee(
    session: WebinarSession, name: str = "Ann Example"
) -> tuple[Registrant, str]:
    """A registrant of the session and their join token."""
    contact = await Contact.create(email=f"{uuid.uuid4().hex[:8]}@example.com", name=name)
    token = crypto.new_token()
    registrant = await Registrant.create(
        contact=contact,
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        session=session,
        join_token_hash=crypto.hash_token(token),
        join_token_sealed=crypto.seal(token),
    )
    return registrant, token


async def staff_token(user: StaffUser) -> str:
    return await auth.start_session(
        user=user, stage=SessionStage.FULL, ip="127.0.0.1", user_agent="pytest"
    )


async def join(server: LiveServer, peers: list[Peer], token: str) -> tuple[Peer, dict[str, Any]]:
    peer = new_peer(peers)
    await peer.connect(server.url, join=token)
    return peer, await peer.next_event(protocol.ROOM)


async def presenter(server: LiveServer, peers: list[Peer], role: Role = Role.OWNER) -> Peer:
    user = await make_user(
        role, email=f"{role.value}-{uuid.uuid4().hex[:6]}@example.com", name="Pat Presenter"
    )
    peer = new_peer(peers)
    await peer.connect(server.url, token=await staff_token(user))
    await peer.next_event(protocol.HELLO)
    return peer


async def chat_from(peer: Peer, body: str, **having: Any) -> dict[str, Any]:
    """The next chat batch item with this body (and these values) that reaches `peer`."""
    async with asyncio.timeout(STEP_TIMEOUT):
        while True:
            batch = await peer.next_event(protocol.CHAT)
            for message in batch["messages"]:
                if message["body"] == body and all(message[k] == v for k, v in having.items()):
                    return dict(message)


async def nothing_more(peer: Peer, event: str, wait: float = 0.5) -> None:
    await asyncio.sleep(wait)
    assert [name for name, _ in peer.drain() if name == event] == []


# --- admission and playback --------------------------------------------------------------------


async def test_a_late_joiner_joins_in_progress(server: LiveServer, peers: list[Peer]) -> None:
    session = await make_session(started=timedelta(minutes=12))
    _registrant, token = await make_attendee(session)
    before = auth.utcnow()
    _peer, room = await join(server, peers, token)
    assert room["session"]["mode"] == "live"
    elapsed = (auth.utcnow() - session.starts_at).total_seconds()
    assert 720 - 1 <= room["position"] <= elapsed + 0.5
    assert abs(room["server_ms"] - before.timestamp() * 1000) < 5000
    assert room["session"]["starts_at_ms"] == int(session.starts_at.timestamp() * 1000)
    assert room["session"]["duration"] == VIDEO_SECONDS
    assert room["hls_url"].endswith("videos/1/master.m3u8")
    assert room["name"] == "Ann Example"
    assert room["settings"]["notice"], "the room always says it is a recording"


@pytest.mark.parametrize(
    ("started", "mode"),
    [(timedelta(minutes=-5), "waiting"), (timedelta(hours=2), "ended")],
)
async def test_before_and_after_the_session(
    server: LiveServer, peers: list[Peer], started: timedelta, mode: str
) -> None:
    session = await make_session(started=started)
    _registrant, token = await make_attendee(session)
    _peer, room = await join(server, peers, token)
    assert room["session"]["mode"] == mode
    assert room["position"] == 0.0


async def test_unknown_link_is_refused(server: LiveServer, peers: list[Peer]) -> None:
    peer = new_peer(peers)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await peer.connect(server.url, join="not-a-real-token")
    assert peer.connect_errors[0]["data"] == {"code": "unknown_link"}


async def test_join_and_leave_and_heartbeats_are_recorded(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session()
    registrant, token = await make_attendee(session)
    peer, _room = await join(server, peers, token)
    assert await peer.call(protocol.HEARTBEAT, {"position": 700.0, "playing": True}) == {"ok": True}
    # A player cannot claim to be ahead of the live position (here from a second tab: one
    # connection's heartbeats are stored at most every few seconds).
    tab, _room = await join(server, peers, token)
    assert (await tab.call(protocol.HEARTBEAT, {"position": 99999, "playing": True}))["ok"]
    await peer.close()
    await tab.close()

    async def written() -> bool:
        events = AnalyticsEvent.filter(registrant_id=registrant.id)
        return (
            await events.filter(kind="heartbeat").count() == 2
            and await events.filter(kind="leave").exists()
        )

    await until(written, "the heartbeats and the leave")
    kinds = (
        await AnalyticsEvent.filter(registrant_id=registrant.id)
        .order_by("id")
        .values_list("kind", "video_seconds", "session_id")
    )
    assert kinds[0][0] == "join"
    heartbeats = [seconds for kind, seconds, _ in kinds if kind == "heartbeat"]
    assert heartbeats[0] == 700.0
    elapsed = (auth.utcnow() - session.starts_at).total_seconds()
    assert heartbeats[1] <= elapsed + 2.0
    assert all(session_id == session.id for _, _, session_id in kinds)


# --- chat --------------------------------------------------------------------------------------


async def test_private_chat_reaches_the_team_only_and_the_answer_comes_back(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session(chat_mode="private")
    ann, ann_token = await make_attendee(session, "Ann Example")
    _bob, bob_token = await make_attendee(session, "Bob Other")
    team = await presenter(server, peers)
    ann_peer, _ = await join(server, peers, ann_token)
    bob_peer, _ = await join(server, peers, bob_token)

    sent = await ann_peer.call(protocol.CHAT_SEND, {"body": "  How do I invite my team? "})
    assert sent["ok"], sent
    assert sent["message"]["body"] == "How do I invite my team?"
    assert sent["message"]["visibility"] == "private"
    inbox = await chat_from(team, "How do I invite my team?")
    assert inbox["registrant_id"] == ann.id
    assert inbox["name"] == "Ann Example"
    assert inbox["webinar_title"] == "Onboarding"
    await nothing_more(bob_peer, protocol.CHAT)

    answer = await team.call(
        protocol.REPLY,
        {
            "session_id": session.id,
            "body": "Settings > Team",
            "reply_to": inbox["id"],
            "public": False,
        },
    )
    assert answer["ok"], answer
    assert answer["emailed"] is False, "Ann is still in the room"
    reply = await chat_from(ann_peer, "Settings > Team")
    assert reply["sender"] == "team"
    assert reply["name"] == "Pat Presenter"
    assert reply["reply_to"] == inbox["id"]
    await nothing_more(bob_peer, protocol.CHAT)


async def test_open_chat_goes_to_everyone_with_first_names_only(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session(chat_mode="open")
    _ann, ann_token = await make_attendee(session, "Ann Example")
    _bob, bob_token = await make_attendee(session, "Bob Other")
    ann_peer, _ = await join(server, peers, ann_token)
    bob_peer, _ = await join(server, peers, bob_token)
    assert (await ann_peer.call(protocol.CHAT_SEND, {"body": "Hello all <b>bold</b>"}))["ok"]
    seen = await chat_from(bob_peer, "Hello all <b>bold</b>")
    assert seen["name"] == "Ann"
    assert "registrant_id" not in seen, "attendees do not learn each other's ids"
    # A later joiner sees the public history.
    _carl, carl_token = await make_attendee(session, "Carl Late")
    _peer, room = await join(server, peers, carl_token)
    assert [m["body"] for m in room["chat"]] == ["Hello all <b>bold</b>"]
    assert "registrant_id" not in room["chat"][0]
    _again, room = await join(server, peers, ann_token)
    assert room["chat"][0]["registrant_id"] == _ann.id, "one's own messages stay one's own"


async def test_moderated_chat_waits_for_approval(server: LiveServer, peers: list[Peer]) -> None:
    session = await make_session(chat_mode="moderated")
    _ann, ann_token = await make_attendee(session, "Ann Example")
    _bob, bob_token = await make_attendee(session, "Bob Other")
    team = await presenter(server, peers, Role.MODERATOR)
    ann_peer, _ = await join(server, peers, ann_token)
    bob_peer, _ = await join(server, peers, bob_token)
    sent = await ann_peer.call(protocol.CHAT_SEND, {"body": "Great demo"})
    assert sent["message"]["visibility"] == "pending"
    queued = await chat_from(team, "Great demo")
    await nothing_more(bob_peer, protocol.CHAT)
    assert (await team.call(protocol.MODERATE, {"message_id": queued["id"], "action": "approve"}))[
        "ok"
    ]
    approved = await chat_from(bob_peer, "Great demo")
    assert approved["visibility"] == "public"
    mine = await chat_from(ann_peer, "Great demo", visibility="public")
    assert mine["id"] == sent["message"]["id"]

    assert (await team.call(protocol.MODERATE, {"message_id": queued["id"], "action": "delete"}))[
        "ok"
    ]
    assert await bob_peer.next_event(protocol.CHAT_REMOVED) == {"ids": [queued["id"]]}
    assert (await ChatMessage.get(id=queued["id"])).deleted_at is not None


async def test_room_rules_refuse_clearly_and_keep_nothing(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session(chat_mode="open", slow_mode_seconds=30, banned_words=["spam"])
    _ann, token = await make_attendee(session)
    peer, _ = await join(server, peers, token)
    cases: list[tuple[Any, str]] = [
        ({"body": ""}, "empty"),
        ({"body": "   "}, "empty"),
        ({"body": "x" * (protocol.MAX_CHAT_CHARS + 1)}, "too_long"),
        ({"body": 42}, "bad_request"),
        ("just a string", "bad_request"),
        ({"body": "buy SPAM now"}, "banned_word"),
    ]
    for payload, code in cases:
        answer = await peer.call(protocol.CHAT_SEND, payload)
        assert answer["ok"] is False, payload
        assert answer["error"]["code"] == code, (payload, answer)
        assert answer["error"]["message"]
    assert await ChatMessage.all().count() == 0
    assert (await peer.call(protocol.CHAT_SEND, {"body": "first"}))["ok"]
    slow = await peer.call(protocol.CHAT_SEND, {"body": "second"})
    assert slow["error"]["code"] == "slow_mode"
    assert await ChatMessage.filter(automatic=False).count() == 1
    # Nobody from the team is online: the first message drew the room's auto-response.
    auto = await chat_from(peer, (await ChatMessage.get(automatic=True)).body)
    assert auto["sender"] == "team"


async def test_muted_and_banned_attendees(server: LiveServer, peers: list[Peer]) -> None:
    session = await make_session(chat_mode="open")
    ann, token = await make_attendee(session)
    team = await presenter(server, peers)
    peer, _ = await join(server, peers, token)
    ask = {"session_id": session.id, "registrant_id": ann.id}
    assert (await team.call(protocol.RESTRICT, {**ask, "action": "mute"}))["ok"]
    assert await peer.next_event(protocol.RESTRICTED) == {"kind": "mute"}
    assert (await peer.call(protocol.CHAT_SEND, {"body": "hi"}))["error"]["code"] == "muted"
    assert (await team.call(protocol.RESTRICT, {**ask, "action": "ban"}))["ok"]
    assert await peer.next_event(protocol.RESTRICTED) == {"kind": "ban"}
    await until(lambda: not peer.client.connected, "the server to disconnect")
    again = new_peer(peers)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await again.connect(server.url, join=token)
    assert again.connect_errors[0]["data"] == {"code": "banned"}


async def test_a_reply_to_someone_who_left_is_emailed(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session()
    ann, token = await make_attendee(session, "Ann Example")
    team = await presenter(server, peers)
    peer, _ = await join(server, peers, token)
    assert (await peer.call(protocol.CHAT_SEND, {"body": "Is there an API?"}))["ok"]
    question = await chat_from(team, "Is there an API?")
    await peer.close()
    await until(
        lambda: AnalyticsEvent.exists(registrant_id=ann.id, kind="leave"), "the leave recorded"
    )
    answer = await team.call(
        protocol.REPLY,
        {
            "session_id": session.id,
            "body": "Yes: see the docs.",
            "reply_to": question["id"],
            "public": False,
        },
    )
    assert answer["ok"]
    assert answer["emailed"] is True
    planned = await PlannedEmail.get(registrant_id=ann.id, kind="chat_reply")
    from app.services import delivery

    rendered = await delivery._renderers["chat_reply"](planned, auth.utcnow())
    assert rendered.skip is None
    assert "> Is there an API?" in rendered.text
    assert "Yes: see the docs." in rendered.text
    assert f"/j/{token}" in rendered.text
    assert "Onboarding" in rendered.subject


# --- interactions ------------------------------------------------------------------------------


async def test_a_poll_takes_one_answer_and_shows_results_to_everyone(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session(started=timedelta(minutes=12))
    poll = await Interaction.create(
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        kind="poll",
        title="Which plan?",
        config={"options": ["Basic", "Pro"], "multiple": False},
        opens_at_seconds=600,
        closes_at_seconds=1200,
    )
    later = await Interaction.create(
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        kind="poll",
        title="Later",
        config={"options": ["A", "B"], "multiple": False},
        opens_at_seconds=1500,
    )
    _ann, ann_token = await make_attendee(session)
    _bob, bob_token = await make_attendee(session, "Bob Other")
    ann_peer, room = await join(server, peers, ann_token)
    bob_peer, _ = await join(server, peers, bob_token)
    assert [item["id"] for item in room["timeline"]] == [poll.id, later.id]
    assert room["timeline"][0]["config"] == {"options": ["Basic", "Pro"], "multiple": False}

    voted = await ann_peer.call(protocol.ANSWER, {"interaction_id": poll.id, "answer": 1})
    assert voted["ok"], voted
    assert voted["results"]["results"]["counts"] == [0, 1]
    again = await ann_peer.call(protocol.ANSWER, {"interaction_id": poll.id, "answer": 0})
    assert again["error"]["code"] == "already_answered"
    assert (await ann_peer.call(protocol.ANSWER, {"interaction_id": later.id, "answer": 0}))[
        "error"
    ]["code"] == "closed"
    bad = await bob_peer.call(protocol.ANSWER, {"interaction_id": poll.id, "answer": 7})
    assert bad["error"]["code"] == "bad_answer"
    pushed = await bob_peer.next_event(protocol.RESULTS)
    assert pushed == {
        "interaction_id": poll.id,
        "session_id": session.id,
        "results": voted["results"]["results"],
    }
    # A reconnect restores what was answered and its results.
    _again, room = await join(server, peers, ann_token)
    assert room["answered"] == {str(poll.id): 1}
    assert room["results"][0]["interaction_id"] == poll.id


async def test_a_question_to_the_presenter_reaches_the_team_and_is_kept(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session(started=timedelta(minutes=12))
    question = await Interaction.create(
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        kind="question",
        title="Your question",
        config={},
        opens_at_seconds=600,
    )
    ann, ann_token = await make_attendee(session)
    team = await presenter(server, peers)
    ann_peer, _ = await join(server, peers, ann_token)

    asked = await ann_peer.call(
        protocol.ANSWER, {"interaction_id": question.id, "answer": "  Can I import users? "}
    )
    assert asked["ok"], asked
    inbox = await chat_from(team, "Your question\nCan I import users?")
    assert inbox["registrant_id"] == ann.id
    stored = await InteractionResponse.get(interaction_id=question.id, registrant_id=ann.id)
    assert interactions.given_answer(stored.answer) == "Can I import users?"
    again = await ann_peer.call(protocol.ANSWER, {"interaction_id": question.id, "answer": "x"})
    assert again["error"]["code"] == "already_answered"
    # A reconnect shows the question as asked, in the words it was asked.
    _again, room = await join(server, peers, ann_token)
    assert room["answered"] == {str(question.id): "Can I import users?"}
    tallied = await room_service.tally(question, session.id, fresh=True)
    assert tallied["results"] == {"total": 1}
    # The dashboard counts it and the person's profile shows it in their words.
    summary = await engagement.interaction_results(engagement.Filters(webinar_id=ann.webinar_id))
    assert [(item.kind, item.responses) for item in summary] == [("question", 1)]
    profile = await profiles.profile(ann.contact_id, auth.utcnow())
    assert profile is not None
    asked_in = profile.registrations[0].interactions
    assert [(line.title, line.answer) for line in asked_in] == [
        ("Your question", "Can I import users?")
    ]


async def test_a_failure_on_the_server_is_answered_not_left_hanging(
    server: LiveServer, peers: list[Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await make_session()
    _ann, ann_token = await make_attendee(session)
    ann_peer, _ = await join(server, peers, ann_token)

    async def broken(*args: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(room_service, "answer", broken)
    reply = await ann_peer.call(protocol.ANSWER, {"interaction_id": 1, "answer": 0})
    assert reply["ok"] is False
    assert reply["error"]["code"] == "server_error"
    assert "the database" not in reply["error"]["message"]
    # The connection stays usable.
    assert (await ann_peer.call(protocol.SYNC, {}))["ok"]


async def test_a_pushed_poll_reaches_the_session(server: LiveServer, peers: list[Peer]) -> None:
    session = await make_session()
    _ann, token = await make_attendee(session)
    team = await presenter(server, peers)
    peer, _ = await join(server, peers, token)
    pushed = await team.call(
        protocol.PUSH,
        {
            "session_id": session.id,
            "kind": "poll",
            "title": "Ready for Q&A?",
            "config": {"options": ["Yes", "Not yet"], "multiple": False},
        },
    )
    assert pushed["ok"], pushed
    item = await peer.next_event(protocol.INTERACTION)
    assert item["title"] == "Ready for Q&A?"
    assert 700 < item["opens_at"] < 800
    assert (await peer.call(protocol.ANSWER, {"interaction_id": item["id"], "answer": 0}))["ok"]
    announced = await team.call(
        protocol.PUSH,
        {"session_id": session.id, "kind": "announcement", "title": "Q&A in 5 minutes"},
    )
    assert announced["ok"]
    assert await peer.next_event(protocol.ANNOUNCEMENT) == {"text": "Q&A in 5 minutes"}


async def test_offer_clicks_are_counted(server: LiveServer, peers: list[Peer]) -> None:
    session = await make_session()
    offer = await Interaction.create(
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        kind="offer",
        title="20% off",
        config={
            "text": "Today only",
            "button": "Get it",
            "url": "https://example.com/buy",
            "countdown_seconds": 300,
        },
        opens_at_seconds=60,
    )
    ann, token = await make_attendee(session)
    team = await presenter(server, peers)
    peer, _ = await join(server, peers, token)
    assert (await peer.call(protocol.CLICK, {"interaction_id": offer.id}))["ok"]
    counted = await team.next_event(protocol.RESULTS)
    assert counted == {
        "interaction_id": offer.id,
        "session_id": session.id,
        "results": {"total": 1},
    }
    watched = await team.call(protocol.WATCH, {"session_id": session.id})
    assert {
        "interaction_id": offer.id,
        "session_id": session.id,
        "results": {"total": 1},
    } in watched["results"]
    event = await AnalyticsEvent.get(registrant_id=ann.id, kind="offer_click")
    assert event.data == {"interaction_id": offer.id}
    other = await Interaction.create(
        webinar=await Webinar.create(slug="other", title="Other"),
        kind="offer",
        title="Not yours",
        config={},
        opens_at_seconds=0,
    )
    assert (await peer.call(protocol.CLICK, {"interaction_id": other.id}))["error"][
        "code"
    ] == "unknown_interaction"


# --- the protocol's guards ---------------------------------------------------------------------


async def test_events_are_authorised_on_arrival(server: LiveServer, peers: list[Peer]) -> None:
    session = await make_session()
    ann, token = await make_attendee(session)
    peer, _ = await join(server, peers, token)
    staff_only = await peer.call(
        protocol.REPLY, {"session_id": session.id, "body": "x", "public": True}
    )
    assert staff_only["error"]["code"] == "forbidden"
    analyst = await presenter(server, peers, Role.ANALYST)
    refused = await analyst.call(
        protocol.RESTRICT, {"session_id": session.id, "registrant_id": ann.id, "action": "ban"}
    )
    assert refused["error"]["code"] == "forbidden"
    assert (await analyst.call(protocol.CONSOLE))["ok"], "analysts may look"
    assert (await analyst.call(protocol.CHAT_SEND, {"body": "x"}))["error"]["code"] == "forbidden"
    unknown = await peer.call("no-such-event", {})
    assert unknown["error"]["code"] == "unknown_event"


async def test_a_flood_is_limited_then_disconnected(server: LiveServer, peers: list[Peer]) -> None:
    session = await make_session()
    _ann, token = await make_attendee(session)
    peer, _ = await join(server, peers, token)
    answers = await asyncio.gather(
        *(peer.call(protocol.SYNC, {}) for _ in range(60)), return_exceptions=True
    )
    codes = [a["error"]["code"] for a in answers if isinstance(a, dict) and not a["ok"]]
    assert "rate_limited" in codes
    for _ in range(300):
        if not peer.client.connected:
            break
        await peer.client.emit(protocol.SYNC, {})
        await asyncio.sleep(0.001)
    await until(lambda: not peer.client.connected, "the server to disconnect")


async def test_an_oversized_event_closes_the_connection(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session()
    _ann, token = await make_attendee(session)
    peer, _ = await join(server, peers, token)
    await peer.client.emit(protocol.CHAT_SEND, {"body": "x" * (protocol.MAX_PAYLOAD_BYTES * 2)})
    await until(lambda: not peer.client.connected, "the server to disconnect")
    assert await ChatMessage.all().count() == 0


async def test_console_lists_live_sessions_with_unread_messages(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session(started=timedelta(minutes=5))
    _ann, token = await make_attendee(session)
    team = await presenter(server, peers)
    peer, _ = await join(server, peers, token)
    assert (await peer.call(protocol.CHAT_SEND, {"body": "hello team"}))["ok"]
    view = (await team.call(protocol.CONSOLE))["console"]
    (listed,) = [s for s in view["sessions"] if s["id"] == session.id]
    assert listed["mode"] == "live"
    assert listed["unread"] == 1
    assert listed["online"] == 1
    assert view["inbox"][0]["body"] == "hello team"
    assert (await team.call(protocol.READ, {"session_id": session.id}))["marked"] == 1
    assert await team.next_event(protocol.READ) == {"session_id": session.id, "registrant_id": None}
    watched = await team.call(protocol.WATCH, {"session_id": session.id})
    assert watched["ok"]
    assert [m["body"] for m in watched["chat"]] == ["hello team"]
    assert watched["attendees"][0]["online"] is True
    assert watched["attendees"][0]["restriction"] is None


@pytest.mark.redis
async def test_two_web_processes_share_one_room_through_redis(
    database: Settings, peers: list[Peer]
) -> None:
    require(bool(TEST_REDIS_URL), "TEST_REDIS_URL is not set")
    settings = database.model_copy(
        update={"redis_url": TEST_REDIS_URL, "redis_channel": f"encore-{uuid.uuid4().hex[:8]}"}
    )
    session = await make_session(chat_mode="private")
    _ann, token = await make_attendee(session)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(live_server(settings))
        second = await stack.enter_async_context(live_server(settings))
        attendee, room = await join(first, peers, token)
        assert room["team_online"] is False
        team = await presenter(second, peers)
        assert await attendee.next_event(protocol.TEAM) == {"online": True}
        assert (await attendee.call(protocol.CHAT_SEND, {"body": "hi from process one"}))["ok"]
        question = await chat_from(team, "hi from process one")
        answer = await team.call(
            protocol.REPLY,
            {
                "session_id": session.id,
                "body": "hello from two",
                "reply_to": question["id"],
                "public": False,
            },
        )
        assert answer["ok"]
        assert (await chat_from(attendee, "hello from two"))["sender"] == "team"
        for peer in peers:
            await peer.close()


async def test_a_replay_shows_the_chat_with_its_moments(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session(started=timedelta(hours=1), chat_mode="open")
    await Schedule.create(
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        kind="recurring",
        timezone="UTC",
        rules={"repeat": "daily", "times": ["10:00"], "replay_hours": 48},
    )
    _ann, token = await make_attendee(session)
    await ChatMessage.create(
        session=session, body="said at minute two", visibility="public", media_seconds=120.0
    )
    peer, room = await join(server, peers, token)
    assert room["session"]["mode"] == "replay"
    assert room["session"]["replay_until_ms"] > room["server_ms"]
    assert [(m["body"], m["media_seconds"]) for m in room["chat"]] == [
        ("said at minute two", 120.0)
    ]
    # The replay's player may be anywhere; its reports are kept as they are.
    assert (await peer.call(protocol.HEARTBEAT, {"position": 1500.0, "playing": True}))["ok"]
    poll = await Interaction.create(
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        kind="poll",
        title="Closed now",
        config={"options": ["A", "B"], "multiple": False},
        opens_at_seconds=0,
    )
    late = await peer.call(protocol.ANSWER, {"interaction_id": poll.id, "answer": 0})
    assert late["error"]["code"] == "closed"


async def test_on_demand_starts_when_the_attendee_presses_play(
    server: LiveServer, peers: list[Peer]
) -> None:
    session = await make_session()
    await WebinarSession.filter(id=session.id).update(kind="on_demand")
    poll = await Interaction.create(
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        kind="poll",
        title="First question",
        config={"options": ["A", "B"], "multiple": False},
        opens_at_seconds=0,
        closes_at_seconds=60,
    )
    _ann, token = await make_attendee(session)
    peer, room = await join(server, peers, token)
    assert room["session"]["mode"] == "on_demand"
    assert room["position"] == 0.0
    early = await peer.call(protocol.ANSWER, {"interaction_id": poll.id, "answer": 0})
    assert early["error"]["code"] == "closed"
    started = await peer.call(protocol.START, {})
    assert started["ok"]
    assert abs(started["started_ms"] - room["server_ms"]) < 10_000
    assert (await peer.call(protocol.ANSWER, {"interaction_id": poll.id, "answer": 0}))["ok"]


async def test_refusals_speak_the_webinars_language(server: LiveServer, peers: list[Peer]) -> None:
    session = await make_session()
    await Webinar.filter(id=session.webinar_id).update(language="de")  # type: ignore[attr-defined]
    _ann, token = await make_attendee(session)
    peer, room = await join(server, peers, token)
    assert "Aufzeichnung" in room["settings"]["notice"]
    empty = await peer.call(protocol.CHAT_SEND, {"body": " "})
    assert empty["error"] == {"code": "empty", "message": "Schreiben Sie zuerst eine Nachricht."}
