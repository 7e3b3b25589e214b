"""Public pages: the home redirect, health checks and error pages."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from app import db
from app.web.middleware import security_headers
from app.web.templating import render_error

log = logging.getLogger("encore.web")


async def home(request: Request) -> Response:
    """The root sends staff to the admin (which asks them to sign in)."""
    del request
    return RedirectResponse("/admin", status_code=303)


async def healthz(request: Request) -> Response:
    """The process is alive."""
    del request
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    """The process can serve: its database answers."""
    del request
    if await db.ping():
        return JSONResponse({"status": "ready", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)


_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    413: "Too large",
    429: "Too many requests",
}


async def http_error(request: Request, exc: Exception) -> Response:
    """HTTP errors as friendly pages (JSON for API clients)."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    title = _TITLES.get(status, "Error")
    message = {
        404: "There is nothing at this address. Check the link, or go back to the start.",
        405: "This address does not accept that kind of request.",
    }.get(status, title + ".")
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"error": title}, status_code=status, headers=exc.headers)
    return render_error(
        request, status=status, title=title, message=message, headers=dict(exc.headers or {})
    )


async def server_error(request: Request, exc: Exception) -> Response:
    """Unexpected failures: logged in full, shown to the visitor as a reference only."""
    request_id = request.scope.get("state", {}).get("request_id", "")
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    # This response is sent from outside the middleware stack: it brings its own headers.
    headers = security_headers(request.scope)
    if request_id:
        headers["X-Request-ID"] = request_id
    return render_error(
        request,
        status=500,
        title="Something went wrong",
        message="The problem has been logged. Try again in a moment; if it keeps happening, "
        f"give your administrator this reference: {request_id}.",
        headers=headers,
    )
