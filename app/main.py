"""create_app(): the Starlette application wrapped by the Socket.IO ASGI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import socketio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from app import db
from app.realtime import protocol
from app.realtime.hub import create_server
from app.services import analytics_events
from app.settings import Settings, get_settings, use_settings
from app.web import pages
from app.web.middleware import CSRFMiddleware, RequestLogMiddleware, SecurityHeadersMiddleware
from app.web.routes import build_routes

log = logging.getLogger("encore")


def create_app(settings: Settings | None = None, *, manage_db: bool = True) -> socketio.ASGIApp:
    """Build the whole web process: HTTP routes, middleware, lifespan and the Socket.IO hub."""
    if settings is not None:
        use_settings(settings)
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        del app
        if manage_db:
            await db.init_db(settings)
        log.info("web process ready", extra={"base_url": settings.public_base_url})
        try:
            yield
        finally:
            # Write what the room buffered, then disconnect sockets and stop the Redis
            # listener, before the database goes away.
            await sio.hub.shutdown()
            try:
                await analytics_events.flush_landing_views()
            except Exception:
                log.exception("writing the last landing-page views failed")
            if manage_db:
                await db.close_db()

    starlette_app = Starlette(
        routes=build_routes(),
        middleware=[
            Middleware(RequestLogMiddleware),
            Middleware(SecurityHeadersMiddleware),
            Middleware(CSRFMiddleware),
        ],
        exception_handlers={HTTPException: pages.http_error, 500: pages.server_error},
        lifespan=lifespan,
    )
    sio = create_server(settings)
    # No on_startup/on_shutdown here: ASGIApp then forwards lifespan to Starlette.
    app = socketio.ASGIApp(sio, other_asgi_app=starlette_app, socketio_path=protocol.SOCKETIO_PATH)
    app.sio = sio
    return app
