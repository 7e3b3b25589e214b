"""The Socket.IO server: connection authentication and event handlers."""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import socketio

from app.models import SessionStage
from app.realtime import protocol
from app.services import auth
from app.settings import Settings

log = logging.getLogger("encore.realtime")


def _allowed_origins(settings: Settings) -> list[str]:
    base = urlsplit(settings.public_base_url)
    return [f"{base.scheme}://{base.netloc}"]


def create_server(settings: Settings) -> socketio.AsyncServer:
    """An AsyncServer on the in-memory manager, or on Redis when REDIS_URL is set."""
    manager = (
        socketio.AsyncRedisManager(settings.redis_url, channel=settings.redis_channel)
        if settings.redis_url
        else None
    )
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        cors_allowed_origins=_allowed_origins(settings),
        max_http_buffer_size=protocol.MAX_PAYLOAD_BYTES,
        logger=False,
        engineio_logger=False,
    )
    _register(sio)
    return sio


def create_emitter(settings: Settings) -> socketio.AsyncRedisManager:
    """A write-only manager with which other processes (the scheduler) emit into the rooms."""
    return socketio.AsyncRedisManager(
        settings.redis_url, channel=settings.redis_channel, write_only=True
    )


def _cookie(environ: dict[str, Any], name: str) -> str:
    morsel = SimpleCookie(environ.get("HTTP_COOKIE", "")).get(name)
    return morsel.value if morsel else ""


def _register(sio: socketio.AsyncServer) -> None:
    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth_data: Any = None) -> bool:
        """Accept staff with a signed-in session; attendee tokens join through the room."""
        del auth_data
        session = await auth.resolve_session(_cookie(environ, "encore_session"))
        if session is None or session.stage != SessionStage.FULL:
            # (message, data): the client's connect_error then carries both as they are;
            # a single dict argument would reach it as its Python repr.
            raise socketio.exceptions.ConnectionRefusedError(
                "Sign in to connect.", {"code": "unauthenticated"}
            )
        user = session.user
        await sio.save_session(sid, {"staff_id": user.id, "role": user.role.value})
        await sio.enter_room(sid, protocol.STAFF_ROOM)
        hello: protocol.HelloPayload = {"role": user.role.value, "name": user.name}
        await sio.emit(protocol.HELLO, hello, to=sid)
        return True

    @sio.event  # type: ignore[untyped-decorator]
    async def disconnect(sid: str, reason: Any = None) -> None:
        """Nothing to release yet: rooms are left automatically."""
        del sid, reason
