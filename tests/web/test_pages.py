"""Security headers, error pages, health checks and the CSRF cookie, through the real app."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.main import create_app
from app.models import Role
from app.settings import Settings, load_settings
from tests.conftest import csrf_token, make_user

SECRET_DETAIL = "db password hunter2 at /srv/encore/app/secret_module.py"
LEAKS = ("Traceback", 'File "', ".py", "RuntimeError", "hunter2", "site-packages", "starlette")


def _assert_security_headers(response: httpx.Response, *, https: bool = False) -> None:
    where = f"{response.request.method} {response.request.url} ({response.status_code})"
    csp = response.headers.get("content-security-policy", "")
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp, f"{directive} missing on {where}"
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers.get("x-frame-options") == "DENY", where
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy") == "strict-origin-when-cross-origin", where
    if https:
        hsts = response.headers.get("strict-transport-security", "")
        match = re.fullmatch(r"max-age=(\d+); includeSubDomains", hsts)
        assert match, f"HSTS missing on {where}"
        assert int(match.group(1)) >= 365 * 24 * 3600
    else:
        assert "strict-transport-security" not in response.headers, where


def _assert_leaks_nothing(response: httpx.Response) -> None:
    for leak in LEAKS:
        assert leak not in response.text, f"{leak!r} shown on a {response.status_code} page"


async def test_security_headers_on_every_kind_of_response(client: httpx.AsyncClient) -> None:
    await make_user(Role.OWNER)
    responses = [
        await client.get("/login"),  # page
        await client.get("/admin"),  # redirect
        await client.get("/healthz"),  # plain text
        await client.get("/readyz"),  # JSON
        await client.get("/static/css/app.css"),  # static file
        await client.get("/no/such/page"),  # 404
        await client.post("/login", data={"email": "a@example.com"}),  # refused by CSRF
    ]
    assert [r.status_code for r in responses] == [200, 303, 200, 200, 200, 404, 403]
    for response in responses:
        _assert_security_headers(response)


async def test_hsts_only_over_https(client: httpx.AsyncClient) -> None:
    plain = await client.get("/healthz")
    assert "strict-transport-security" not in plain.headers
    for path, status in (("/healthz", 200), ("/no/such/page", 404), ("/admin", 303)):
        response = await client.get(f"https://testserver{path}")
        assert response.status_code == status
        _assert_security_headers(response, https=True)


async def test_not_found_is_a_friendly_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/wp-admin/../../etc/passwd.php")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Page not found</h1>" in response.text
    assert "There is nothing at this address." in response.text
    assert 'href="/"' in response.text
    _assert_leaks_nothing(response)

    api = await client.get("/no/such/page", headers={"accept": "application/json"})
    assert api.status_code == 404
    assert api.json() == {"error": "Page not found"}


async def test_method_not_allowed(client: httpx.AsyncClient) -> None:
    response = await client.get("/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    assert "<h1>Method not allowed</h1>" in response.text
    _assert_leaks_nothing(response)

    # A POST with a valid token reaches the router, which refuses the method.
    token = await csrf_token(client, "/reset")
    response = await client.post("/healthz", data={"csrf_token": token})
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]
    _assert_security_headers(response)


async def test_head_answers_like_get_on_public_pages(client: httpx.AsyncClient) -> None:
    await make_user(Role.OWNER)
    for path in ("/login", "/login/2fa", "/reset", "/setup/nope", "/invite/nope", "/reset/nope"):
        get = await client.get(path)
        head = await client.head(path)
        assert head.status_code == get.status_code, path
        assert head.headers.get("location") == get.headers.get("location"), path
        assert head.content == b""


async def _boom(request: Request) -> Response:
    del request
    raise RuntimeError(SECRET_DETAIL)


@pytest.fixture
async def failing_client(database: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app plus one route that fails, with app errors turned into responses."""
    app = create_app(database, manage_db=False)
    inner = app.other_asgi_app
    assert isinstance(inner, Starlette)
    inner.router.routes.append(Route("/boom", _boom, methods=["GET"]))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"accept": "text/html"}
        ) as http,
    ):
        yield http


async def test_unhandled_error_shows_a_reference_and_nothing_else(
    failing_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="encore.web"):
        response = await failing_client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Something went wrong</h1>" in response.text
    _assert_leaks_nothing(response)
    match = re.search(r"Reference: ([0-9a-f]{16})<", response.text)
    assert match, response.text
    reference = match.group(1)
    assert response.headers.get("x-request-id") == reference
    _assert_security_headers(response)

    # The full story is in the log, under the same reference.
    records = [r for r in caplog.records if getattr(r, "request_id", None) == reference]
    assert records
    assert records[0].exc_info is not None
    assert SECRET_DETAIL in str(records[0].exc_info[1])

    # The app keeps serving.
    assert (await failing_client.get("/healthz")).status_code == 200


async def test_health_checks(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.text == "ok"
    assert health.headers["content-type"].startswith("text/plain")
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok"}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_readyz_reports_an_unreachable_database(tmp_path: Path, closed_port: int) -> None:
    settings = load_settings(
        var_dir=tmp_path / "var",
        database_url=f"postgres://encore:pw-not-shown@127.0.0.1:{closed_port}/encore",
        public_base_url="http://testserver",
        secret_key="test-secret-key-" + "x" * 32,
        smtp_url="",
        redis_url="",
    )
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http,
    ):
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "unreachable"}
    assert "pw-not-shown" not in ready.text
    assert str(closed_port) not in ready.text


def _set_cookies(response: httpx.Response, name: str) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]


async def test_csrf_cookie_is_set_once_httponly_and_lax(client: httpx.AsyncClient) -> None:
    first = await client.get("/reset")
    cookies = _set_cookies(first, "encore_csrf")
    assert len(cookies) == 1
    attributes = {part.strip().lower() for part in cookies[0].split(";")[1:]}
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert "secure" not in attributes
    value = cookies[0].split(";")[0].split("=", 1)[1]
    assert len(value) >= 32

    # The browser sends it back: no new cookie, and the form token stays valid.
    again = await client.get("/reset")
    assert _set_cookies(again, "encore_csrf") == []
    token = await csrf_token(client, "/reset")
    done = await client.post("/reset", data={"email": "nobody@example.com", "csrf_token": token})
    assert done.status_code == 200

    # Without the token the same form is refused.
    refused = await client.post("/reset", data={"email": "nobody@example.com"})
    assert refused.status_code == 403
    assert "security token" in refused.text


async def test_csrf_cookie_is_secure_over_https(client: httpx.AsyncClient) -> None:
    response = await client.get("https://testserver/reset")
    cookies = _set_cookies(response, "encore_csrf")
    assert len(cookies) == 1
    assert "secure" in {part.strip().lower() for part in cookies[0].split(";")[1:]}
