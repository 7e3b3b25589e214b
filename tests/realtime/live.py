"""A real web process for socket tests: uvicorn on loopback and Socket.IO clients that record."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import socketio
import uvicorn
from starlette.types import ASGIApp

from app.main import create_app
from app.realtime.transport import AnswerNow, websocket_protocol
from app.settings import Settings

HOST = "127.0.0.1"
STEP_TIMEOUT = 10.0


@dataclass
class LiveServer:
    """A running web process: its base URL and its Socket.IO server."""

    url: str
    sio: socketio.AsyncServer


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """Serve create_app() with uvicorn on a free loopback port inside this event loop."""
    app = create_app(settings, manage_db=False)  # the database fixture owns the connection
    sio: socketio.AsyncServer = app.sio
    async with serve_on_loopback(
        app, sio, lifespan="on", stop=sio.hub.shutdown, answer_now=sio.hub.answer_now
    ) as url:
        yield LiveServer(url=url, sio=sio)


@asynccontextmanager
async def serve_on_loopback(
    app: ASGIApp,
    sio: socketio.AsyncServer,
    *,
    lifespan: Literal["on", "off"],
    stop: Callable[[], Awaitable[None]],
    lean: bool = True,
    answer_now: AnswerNow | None = None,
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port inside this event loop; its base URL.

    WebSockets on the Socket.IO path are served by `app.realtime.transport`, as in the web
    process (with the hub's `answer_now`, when given), unless `lean` is false (then
    python-engineio serves them through ASGI). On the way
    out `stop` runs first, then uvicorn ends and the Redis manager of `sio` (if it has one) is
    closed.
    """
    config = uvicorn.Config(
        app,
        host=HOST,
        port=0,
        lifespan=lifespan,
        log_config=None,
        access_log=False,
        ws=websocket_protocol(sio, answer_now=answer_now) if lean else "websockets-sansio",
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    pytest.fail("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{HOST}:{port}"
    finally:
        await stop()
        server.should_exit = True
        await asyncio.wait_for(task, STEP_TIMEOUT)
        await close_redis_manager(sio.manager)


async def close_redis_manager(manager: Any) -> None:
    """Stop a Redis manager's pub/sub listener and close its connections.

    python-socketio leaves both running for the life of the process; a test must not.
    """
    if not isinstance(manager, socketio.AsyncRedisManager):
        return
    listener = getattr(manager, "thread", None)
    if isinstance(listener, asyncio.Task):
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    if manager.pubsub is not None:
        await manager.pubsub.aclose()
    if manager.redis is not None:
        await manager.redis.aclose()


@dataclass
class Peer:
    """A Socket.IO client that keeps every event it receives."""

    client: socketio.AsyncClient = field(
        default_factory=lambda: socketio.AsyncClient(reconnection=False, request_timeout=5)
    )
    events: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    connect_errors: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        async def any_event(event: str, data: Any = None) -> None:
            await self.events.put((event, data))

        async def connect_error(data: Any = None) -> None:
            self.connect_errors.append(data)

        self.client.on("*", any_event)
        self.client.on("connect_error", connect_error)

    async def connect(self, url: str, *, token: str = "", join: str = "", **headers: str) -> None:
        """Connect as staff (session `token`) or as an attendee (`join` token)."""
        if token:
            headers["Cookie"] = f"encore_session={token}"
        await self.client.connect(
            url,
            headers=headers,
            auth={"token": join} if join else None,
            transports=["websocket"],
            wait_timeout=STEP_TIMEOUT,
        )

    async def call(self, event: str, data: Any = None) -> Any:
        """Emit an event and wait for its acknowledgement."""
        return await self.client.call(event, data, timeout=STEP_TIMEOUT)

    def drain(self) -> list[tuple[str, Any]]:
        """Every event received so far, removed from the queue."""
        found = []
        while not self.events.empty():
            found.append(self.events.get_nowait())
        return found

    async def next_event(self, name: str, *, match: Any = None) -> Any:
        """The data of the next `name` event (equal to `match` when given), within a timeout."""
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                event, data = await self.events.get()
                if event == name and (match is None or data == match):
                    return data

    async def close(self) -> None:
        await self.client.disconnect()


def new_peer(peers: list[Peer]) -> Peer:
    """A new client, kept in `peers` so that it is disconnected at the end of the test."""
    peer = Peer()
    peers.append(peer)
    return peer


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Wait until `condition` holds (it may be a coroutine function), or fail saying `what`."""
    deadline = asyncio.get_running_loop().time() + STEP_TIMEOUT
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
