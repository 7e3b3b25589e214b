"""The Socket.IO hub end to end: a real uvicorn server on loopback and real Socket.IO clients."""

from __future__ import annotations

import os
import uuid
from contextlib import AsyncExitStack

import httpx
import pytest
import socketio

from app.models import Role, SessionStage, StaffUser
from app.realtime import protocol
from app.realtime.hub import create_emitter, create_server
from app.services import auth
from app.settings import Settings
from tests.conftest import login, make_user, require
from tests.realtime.live import (
    HOST,
    STEP_TIMEOUT,
    LiveServer,
    Peer,
    close_redis_manager,
    live_server,
    new_peer,
)

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


async def session_token(user: StaffUser, stage: SessionStage = SessionStage.FULL) -> str:
    return await auth.start_session(user=user, stage=stage, ip=HOST, user_agent="pytest")


async def test_anonymous_connection_is_refused(server: LiveServer, peers: list[Peer]) -> None:
    peer = new_peer(peers)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await peer.connect(server.url)
    assert peer.connect_errors == [
        {"message": "Sign in to connect.", "data": {"code": "unauthenticated"}}
    ]
    assert not peer.client.connected


async def test_unknown_session_cookie_is_refused(server: LiveServer, peers: list[Peer]) -> None:
    peer = new_peer(peers)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await peer.connect(server.url, token="not-a-real-session-token")
    assert peer.connect_errors[0]["data"] == {"code": "unauthenticated"}


async def test_signed_in_staff_connects_and_gets_hello(
    server: LiveServer, peers: list[Peer]
) -> None:
    await make_user(Role.OWNER)  # until an owner exists, /login offers the first-run setup
    await make_user(Role.MODERATOR, email="mona@example.com", name="Mona Moderator")
    async with httpx.AsyncClient(
        base_url=server.url, headers={"accept": "text/html"}, timeout=STEP_TIMEOUT
    ) as http:
        response = await login(http, "mona@example.com")
        assert response.status_code == 303, response.text
        token = http.cookies.get("encore_session")
    assert token

    peer = new_peer(peers)
    await peer.connect(server.url, token=token)

    hello = await peer.next_event(protocol.HELLO)
    assert hello == {"role": "moderator", "name": "Mona Moderator"}
    assert peer.client.connected
    assert peer.connect_errors == []


async def test_owner_session_from_the_service_gets_owner_role(
    server: LiveServer, peers: list[Peer]
) -> None:
    owner = await make_user(Role.OWNER, email="olivia@example.com", name="Olivia Owner")
    peer = new_peer(peers)
    await peer.connect(server.url, token=await session_token(owner))
    assert await peer.next_event(protocol.HELLO) == {"role": "owner", "name": "Olivia Owner"}


@pytest.mark.parametrize("stage", [SessionStage.PASSWORD, SessionStage.ENROL])
async def test_unfinished_sign_in_is_refused(
    server: LiveServer, peers: list[Peer], stage: SessionStage
) -> None:
    user = await make_user(Role.OWNER)
    peer = new_peer(peers)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await peer.connect(server.url, token=await session_token(user, stage))
    assert peer.connect_errors[0]["data"] == {"code": "unauthenticated"}
    assert peer.events.empty(), "nothing is sent before the refusal"


async def test_disabled_account_is_refused(server: LiveServer, peers: list[Peer]) -> None:
    user = await make_user(Role.OWNER)
    token = await session_token(user)
    user.is_active = False
    await user.save(update_fields=["is_active"])
    peer = new_peer(peers)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await peer.connect(server.url, token=token)


async def test_foreign_origin_is_refused(
    database: Settings, server: LiveServer, peers: list[Peer]
) -> None:
    user = await make_user(Role.OWNER)
    token = await session_token(user)
    foreign = new_peer(peers)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await foreign.connect(server.url, token=token, Origin="http://evil.example")
    assert not foreign.client.connected

    own = new_peer(peers)
    await own.connect(server.url, token=token, Origin=database.public_base_url)
    assert (await own.next_event(protocol.HELLO))["role"] == "owner"


async def test_staff_room_receives_server_emits(server: LiveServer, peers: list[Peer]) -> None:
    user = await make_user(Role.OWNER)
    peer = new_peer(peers)
    await peer.connect(server.url, token=await session_token(user))
    await peer.next_event(protocol.HELLO)

    await server.sio.emit("notice", {"text": "hi staff"}, room=protocol.STAFF_ROOM)
    assert await peer.next_event("notice") == {"text": "hi staff"}


@pytest.mark.redis
async def test_redis_manager_shares_messages_between_processes(
    database: Settings, peers: list[Peer]
) -> None:
    require(bool(TEST_REDIS_URL), "TEST_REDIS_URL is not set")
    settings = database.model_copy(update={"redis_url": TEST_REDIS_URL})
    assert isinstance(create_server(settings).manager, socketio.AsyncRedisManager)
    user = await make_user(Role.OWNER)
    # Other runs on this Redis server may use the same channel: match our own payloads.
    nonce = uuid.uuid4().hex

    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(live_server(settings))
        second = await stack.enter_async_context(live_server(settings))
        assert isinstance(first.sio.manager, socketio.AsyncRedisManager)
        on_first, on_second = new_peer(peers), new_peer(peers)
        await on_first.connect(first.url, token=await session_token(user))
        await on_second.connect(second.url, token=await session_token(user))
        await on_first.next_event(protocol.HELLO)
        await on_second.next_event(protocol.HELLO)

        # One web process emits: a client connected to the other one receives it too.
        from_first = {"from": "first", "nonce": nonce}
        await first.sio.emit("notice", from_first, room=protocol.STAFF_ROOM)
        assert await on_first.next_event("notice", match=from_first) == from_first
        assert await on_second.next_event("notice", match=from_first) == from_first

        # Another process (the scheduler) emits through a write-only manager.
        external = create_emitter(settings)
        from_outside = {"from": "scheduler", "nonce": nonce}
        try:
            await external.emit("notice", from_outside, room=protocol.STAFF_ROOM)
        finally:
            await close_redis_manager(external)
        assert await on_first.next_event("notice", match=from_outside) == from_outside
        assert await on_second.next_event("notice", match=from_outside) == from_outside

        for peer in (on_first, on_second):
            await peer.close()
