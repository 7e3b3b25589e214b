"""Pure ASGI middleware: request logging, security headers and CSRF protection."""

from __future__ import annotations

import logging
import random
import re
import secrets
import time
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request, cookie_parser
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.services import crypto
from app.settings import Settings, get_settings
from app.web.templating import render_error

log = logging.getLogger("encore.http")

CSRF_COOKIE = "encore_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MAX_FORM_BYTES = 2 * 1024 * 1024
# Multipart forms may carry images (the webinar editor: logo, cover, presenter photos of up to
# 5 MB each); the handlers check each file's own limit.
MAX_MULTIPART_BYTES = 32 * 1024 * 1024
# The public registration form is exempt from CSRF checks: it must work inside an iframe on
# another site, where browsers do not send our SameSite cookie. Forging it gains an attacker
# nothing (it changes no signed-in state, anyone may register); its honeypot and per-client
# limits are what stand against abuse.
# The unsubscribe link (and its undo) is exempt too: mail providers send the RFC 8058 one-click
# POST without any of our cookies. The signed per-contact token in the path is the only key, so a
# forged request can do nothing its sender could not already do with the link.
CSRF_EXEMPT_PATHS = re.compile(r"/w/[^/]+/register|/u/[^/]+(?:/resubscribe)?")


def media_origins(settings: Settings) -> list[str]:
    """Origins media are fetched from or uploaded to besides our own (S3 or a CDN)."""
    if settings.media_backend != "s3":
        return []
    urls = [settings.s3_public_base_url, settings.s3_endpoint_url]
    if not settings.s3_endpoint_url:
        region = settings.s3_region or "us-east-1"
        urls.append(f"https://{settings.s3_bucket}.s3.{region}.amazonaws.com")
        urls.append(f"https://s3.{region}.amazonaws.com")
    origins: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in {"http", "https"} and parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins


@lru_cache(maxsize=8)
def build_csp(settings: Settings) -> str:
    """The Content-Security-Policy: our own origin, plus the media storage origins if remote."""
    media = " ".join(media_origins(settings))
    extra = f" {media}" if media else ""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob:{extra}",
            # data: for the empty <track src="data:,WEBVTT"> hls.js adds per subtitle track.
            f"media-src 'self' blob: data:{extra}",
            "font-src 'self'",
            f"connect-src 'self' ws: wss:{extra}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


@lru_cache(maxsize=8)
def framable_csp(settings: Settings) -> str:
    """The CSP of pages made to be framed by any site (the embeddable registration form)."""
    return build_csp(settings).replace("frame-ancestors 'none'", "frame-ancestors *")


def is_https(scope: Scope) -> bool:
    """Whether the request arrived over TLS (after trusted proxy headers were applied)."""
    return scope.get("scheme") in {"https", "wss"}


class RequestLogMiddleware:
    """Gives every request an id and logs one structured line when it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Only for telling log lines apart: no secret, so no read of the system's random source.
        request_id = f"{random.getrandbits(64):016x}"
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if log.isEnabledFor(logging.INFO):
                _log_request(scope, status, request_id, started)


def _log_request(scope: Scope, status: int, request_id: str, started: float) -> None:
    client = scope.get("client")
    log.info(
        "%s %s %s",
        scope["method"],
        scope["path"],
        status,
        extra={
            "request_id": request_id,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "client": client[0] if client else "",
        },
    )


def security_headers(scope: Scope) -> dict[str, str]:
    """The headers every response carries; HSTS only over HTTPS."""
    headers = {
        "Content-Security-Policy": build_csp(get_settings()),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }
    if is_https(scope):
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    return headers


@lru_cache(maxsize=8)
def _raw_security_headers(settings: Settings, https: bool) -> tuple[tuple[bytes, bytes], ...]:
    """`security_headers` as raw ASGI header pairs, built once per settings and scheme."""
    headers = security_headers({"scheme": "https" if https else "http"})
    return tuple(
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    )


class SecurityHeadersMiddleware:
    """CSP, framing, sniffing and referrer rules on every response; HSTS over HTTPS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = _raw_security_headers(get_settings(), is_https(scope))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Each header is added unless the response set its own (one pass over them).
                present = list(message.get("headers", ()))
                names = {name.lower() for name, _ in present}
                # A page whose own CSP lets others frame it must not be denied by the old header.
                framable = any(
                    name.lower() == b"content-security-policy" and b"frame-ancestors *" in value
                    for name, value in present
                )
                present.extend(
                    (name, value)
                    for name, value in wanted
                    if name not in names and not (framable and name == b"x-frame-options")
                )
                message["headers"] = present
            await send(message)

        await self.app(scope, receive, send_wrapper)


def csrf_token_for(secret: str) -> str:
    """The token forms carry: an HMAC of the browser's CSRF cookie (signed double submit)."""
    return crypto.sign(secret, "csrf")


def set_csrf_cookie(response: Response, secret: str, *, secure: bool) -> None:
    """Attach the CSRF cookie to a response."""
    response.set_cookie(CSRF_COOKIE, secret, httponly=True, samesite="lax", secure=secure, path="/")


def new_csrf_secret() -> str:
    """A new random CSRF cookie value."""
    return secrets.token_urlsafe(32)


def secure_cookies(scope: Scope) -> bool:
    """Cookies get the Secure flag over HTTPS or when the public URL is HTTPS."""
    return is_https(scope) or get_settings().https


class CSRFMiddleware:
    """Refuses any state-changing request that does not carry the browser's CSRF token."""

    def __init__(self, app: ASGIApp, *, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Starlette's lenient parser: another site's odd cookie (`a@b`, `x[y]`) breaks nothing.
        value = cookie_parser(Headers(scope=scope).get("cookie", "")).get(CSRF_COOKIE, "")
        secret = value if 20 <= len(value) <= 100 else ""
        state = scope.setdefault("state", {})
        if not secret and scope["method"] not in SAFE_METHODS and self._exempt(scope["path"]):
            # A cross-site post to an exempt path (a registration, a one-click unsubscribe)
            # carries no token and its answer holds no form that needs one: no cookie is minted.
            state["csrf_secret"] = state["csrf_token"] = ""
            await self.app(scope, receive, send)
            return
        fresh = not secret
        if fresh:
            secret = new_csrf_secret()
        state["csrf_secret"] = secret
        state["csrf_token"] = csrf_token_for(secret)

        if scope["method"] not in SAFE_METHODS and not self._exempt(scope["path"]):
            body, problem = await self._verify(scope, receive, secret, fresh)
            if problem:
                await _refuse(scope, problem)(scope, receive, send)
                return
            if body is not None:
                receive = _replay(body)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and fresh:
                response = Response()
                set_csrf_cookie(response, secret, secure=secure_cookies(scope))
                headers = MutableHeaders(scope=message)
                for key, value in response.raw_headers:
                    if key == b"set-cookie":
                        headers.append("set-cookie", value.decode("latin-1"))
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _exempt(self, path: str) -> bool:
        return path.startswith(self.exempt_prefixes) or bool(CSRF_EXEMPT_PATHS.fullmatch(path))

    async def _verify(
        self, scope: Scope, receive: Receive, secret: str, fresh: bool
    ) -> tuple[bytes | None, str]:
        headers = Headers(scope=scope)
        expected = csrf_token_for(secret)
        if fresh:
            return None, "expired"
        supplied = headers.get(CSRF_HEADER, "")
        body: bytes | None = None
        content_type = headers.get("content-type", "")
        if not supplied and content_type.startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            multipart = content_type.startswith("multipart/form-data")
            limit = MAX_MULTIPART_BYTES if multipart else MAX_FORM_BYTES
            body, too_large = await _read_body(receive, limit)
            if too_large:
                return None, "too_large"
            request = Request(scope, _replay(body))
            form = await request.form()
            value = form.get(CSRF_FIELD)
            supplied = value if isinstance(value, str) else ""
            await form.close()
        if not supplied or not crypto.signatures_match(supplied, expected):
            return body, "missing" if not supplied else "mismatch"
        return body, ""


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


_MESSAGES = {
    "expired": "Your session for this form has expired. Go back, reload the page and try again.",
    "missing": "This request was refused because it did not carry the form's security token.",
    "mismatch": "This request was refused because its security token does not match. Reload the "
    "page and try again.",
    "too_large": "This form submission is too large.",
}


def _refuse(scope: Scope, problem: str) -> Response:
    status = 413 if problem == "too_large" else 403
    message = _MESSAGES[problem]
    if "text/html" in Headers(scope=scope).get("accept", ""):
        return render_error(Request(scope), status=status, title="Request refused", message=message)
    return JSONResponse({"error": "csrf", "detail": message}, status_code=status)
