"""The one-append fan-out over real sockets: uvicorn on loopback and python-socketio clients."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import socketio

from app.realtime.fanout import FanoutManager, FanoutRedisManager, send_to_one
from app.realtime.hub import create_server
from app.settings import Settings
from tests.conftest import require
from tests.realtime.live import STEP_TIMEOUT, Peer, close_redis_manager, serve_on_loopback, until

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


@asynccontextmanager
async def bare_server(
    manager: Any, *, lean: bool = True
) -> AsyncIterator[tuple[str, socketio.AsyncServer]]:
    """A plain AsyncServer on `manager`; a client's join token names the room it enters.

    Its WebSockets are served by `app.realtime.transport` unless `lean` is false (then by
    python-engineio through ASGI, the way a long-polling client is served).
    """
    sio = socketio.AsyncServer(
        async_mode="asgi", client_manager=manager, logger=False, engineio_logger=False
    )

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        del environ
        if isinstance(auth, dict) and auth.get("token"):
            await sio.enter_room(sid, auth["token"])
        return True

    sio.on("connect", connect)
    async with serve_on_loopback(
        socketio.ASGIApp(sio), sio, lifespan="off", stop=sio.shutdown, lean=lean
    ) as url:
        yield url, sio


async def connect(url: str, peers: list[Peer], room: str = "") -> Peer:
    peer = Peer()
    peers.append(peer)
    await peer.connect(url, join=room)
    return peer


async def received(peer: Peer, count: int) -> list[tuple[str, Any]]:
    """The next `count` events that reach a peer, in order."""
    found: list[tuple[str, Any]] = []
    async with asyncio.timeout(STEP_TIMEOUT):
        while len(found) < count:
            found.append(await peer.events.get())
    return found


async def nothing_more(peer: Peer, wait: float = 0.3) -> None:
    await asyncio.sleep(wait)
    assert peer.drain() == []


def engine_socket(sio: socketio.AsyncServer, peer: Peer) -> Any:
    return sio.eio.sockets[sio.manager.eio_sid_from_sid(peer.client.get_sid(), "/")]


async def test_the_server_uses_the_fanout_managers(settings: Settings) -> None:
    assert type(create_server(settings).manager) is FanoutManager
    with_redis = settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/0"})
    manager = create_server(with_redis).manager
    try:
        assert type(manager) is FanoutRedisManager
    finally:
        await close_redis_manager(manager)


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "engineio"])
async def test_each_client_gets_its_events_in_the_order_they_were_emitted(
    peers: list[Peer], lean: bool
) -> None:
    async with bare_server(FanoutManager(), lean=lean) as (url, sio):
        first = await connect(url, peers, "room")
        second = await connect(url, peers, "room")
        expected_first, expected_second = [], []
        for number in range(300):
            await sio.emit("n", number, room="room")
            expected_first.append(("n", number))
            expected_second.append(("n", number))
            if number % 7 == 0:
                # A message to one client between two to the room keeps its place.
                await sio.emit("only", number, to=first.client.get_sid())
                expected_first.append(("only", number))
        assert await received(first, len(expected_first)) == expected_first
        assert await received(second, len(expected_second)) == expected_second
        await nothing_more(first)


@pytest.mark.parametrize(
    ("manager_class", "lean"),
    [(socketio.AsyncManager, True), (FanoutManager, True), (FanoutManager, False)],
    ids=["library-manager", "lean", "engineio"],
)
async def test_a_room_reaches_its_members_only(
    peers: list[Peer], manager_class: type[Any], lean: bool
) -> None:
    async with bare_server(manager_class(), lean=lean) as (url, sio):
        ann = await connect(url, peers, "a")
        bob = await connect(url, peers, "a")
        cid = await connect(url, peers, "b")
        await sio.emit("hello", {"to": "a"}, room="a")
        assert await received(ann, 1) == [("hello", {"to": "a"})]
        assert await received(bob, 1) == [("hello", {"to": "a"})]
        await nothing_more(cid)

        await sio.emit("hello", "not bob", room="a", skip_sid=bob.client.get_sid())
        assert await received(ann, 1) == [("hello", "not bob")]
        await nothing_more(bob)

        await sio.emit("hello", "both rooms", room=["a", "b"])
        for peer in (ann, bob, cid):
            assert await received(peer, 1) == [("hello", "both rooms")]
        await sio.emit("hello", "everyone")
        for peer in (ann, bob, cid):
            assert await received(peer, 1) == [("hello", "everyone")]
        await sio.emit("hello", "nobody", room="no-such-room")
        for peer in (ann, bob, cid):
            await nothing_more(peer, 0.1)


async def test_one_client_by_its_sid_with_several_arguments(peers: list[Peer]) -> None:
    async with bare_server(FanoutManager()) as (url, sio):
        ann = await connect(url, peers)
        bob = await connect(url, peers)
        pairs: list[tuple[Any, ...]] = []

        async def pair(*args: Any) -> None:
            pairs.append(args)

        ann.client.on("pair", pair)
        await sio.emit("pair", (1, "two"), to=ann.client.get_sid())
        await sio.emit("note", None, to=ann.client.get_sid())
        await until(lambda: pairs == [(1, "two")], "the two arguments")
        assert await received(ann, 1) == [("note", None)]
        await nothing_more(bob)


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "engineio"])
async def test_one_event_to_one_client_here_keeps_its_place_among_the_others(
    peers: list[Peer], lean: bool
) -> None:
    async with bare_server(FanoutManager(), lean=lean) as (url, sio):
        ann = await connect(url, peers, "room")
        bob = await connect(url, peers, "room")
        await sio.emit("n", 1, room="room")
        await send_to_one(sio, ann.client.get_sid(), "only", {"to": "ann", "list": [1, "ü"]})
        await sio.emit("n", 2, room="room")
        await send_to_one(sio, "no-such-sid", "only", {})
        assert await received(ann, 3) == [
            ("n", 1),
            ("only", {"to": "ann", "list": [1, "ü"]}),
            ("n", 2),
        ]
        assert await received(bob, 2) == [("n", 1), ("n", 2)]
        await nothing_more(bob)


async def test_an_emit_with_a_callback_still_gets_its_answer(peers: list[Peer]) -> None:
    async with bare_server(FanoutManager()) as (url, sio):
        ann = await connect(url, peers)

        async def ask(data: Any = None) -> str:
            return f"answer to {data}"

        ann.client.on("ask", ask)
        answers: list[Any] = []

        def callback(*args: Any) -> None:
            answers.append(args)

        await sio.emit("ask", "question", to=ann.client.get_sid(), callback=callback)
        await until(lambda: answers == [("answer to question",)], "the acknowledgement")


async def test_a_client_leaving_during_a_broadcast_costs_the_others_nothing(
    peers: list[Peer],
) -> None:
    async with bare_server(FanoutManager()) as (url, sio):
        stay = [await connect(url, peers, "room") for _ in range(3)]
        leaver = await connect(url, peers, "room")
        count = 400
        left = asyncio.Event()

        async def broadcast() -> None:
            for number in range(count):
                await sio.emit("n", number, room="room")
                await asyncio.sleep(0.002 if number < 100 else 0)

        async def leave() -> None:
            await received(leaver, 20)
            await leaver.close()
            left.set()

        await asyncio.gather(broadcast(), leave())
        assert left.is_set()
        for peer in stay:
            assert await received(peer, count) == [("n", n) for n in range(count)]
        assert not leaver.client.connected


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "engineio"])
async def test_a_closed_socket_still_in_the_room_is_passed_over(
    peers: list[Peer], lean: bool
) -> None:
    async with bare_server(FanoutManager(), lean=lean) as (url, sio):
        ann = await connect(url, peers, "room")
        bob = await connect(url, peers, "room")
        # The moment between the engine closing a socket and the room forgetting it.
        socket = engine_socket(sio, bob)
        socket.closed = True
        try:
            await sio.emit("n", 1, room="room")
            assert await received(ann, 1) == [("n", 1)]
            if not lean:
                assert socket.queue.empty()
            await nothing_more(bob)
        finally:
            socket.closed = False


@pytest.mark.parametrize("manager_class", [socketio.AsyncManager, FanoutManager])
async def test_a_client_that_stopped_answering_pings_is_closed_as_the_library_does(
    peers: list[Peer], manager_class: type[Any]
) -> None:
    # The lean transport's own ping timer is tested in test_transport.py.
    async with bare_server(manager_class(), lean=False) as (url, sio):
        ann = await connect(url, peers, "room")
        silent = await connect(url, peers, "room")
        sid = silent.client.get_sid()
        socket = engine_socket(sio, silent)
        socket.last_ping = time.time() - 3600
        await sio.emit("n", 1, room="room")
        assert await received(ann, 1) == [("n", 1)]
        await until(lambda: not sio.manager.is_connected(sid, "/"), "the silent client to go")
        assert socket.closed
        await sio.emit("n", 2, room="room")
        assert await received(ann, 1) == [("n", 2)]
        assert silent.drain() == []


@pytest.mark.redis
async def test_two_processes_on_redis_fan_out_in_order(peers: list[Peer]) -> None:
    require(bool(TEST_REDIS_URL), "TEST_REDIS_URL is not set")
    channel = f"fanout-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        one_url, one = await stack.enter_async_context(
            bare_server(FanoutRedisManager(TEST_REDIS_URL, channel=channel))
        )
        two_url, _two = await stack.enter_async_context(
            bare_server(FanoutRedisManager(TEST_REDIS_URL, channel=channel))
        )
        here = await connect(one_url, peers, "room")
        there = await connect(two_url, peers, "room")
        elsewhere = await connect(two_url, peers, "other")
        await asyncio.sleep(0.3)  # both listeners subscribed
        for number in range(50):
            await one.emit("n", number, room="room")
        expected = [("n", n) for n in range(50)]
        assert await received(here, 50) == expected
        assert await received(there, 50) == expected
        await nothing_more(elsewhere)
        for peer in peers:
            await peer.close()
