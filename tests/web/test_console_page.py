"""The presenter console page over HTTP: who may open it and what each role is offered."""

from __future__ import annotations

import html
import re

import httpx
import pyotp
import pytest

from app.models import Role
from app.services import auth
from app.services.permissions import Permission, can
from tests.conftest import login, make_user

URL = "/admin/console"
_SCRIPTS = re.compile(r'<script src="(/static/[^"?]+)\?v=[^"]+" defer></script>')


async def _sign_in(client: httpx.AsyncClient, role: Role) -> None:
    if role != Role.OWNER:
        await make_user(Role.OWNER)
    user = await make_user(role, email=f"{role.value}-person@example.com", name="Pat Person")
    response = await login(client, user.email)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"


async def test_anonymous_visitor_is_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/admin/console"


async def test_half_signed_in_user_must_finish_two_factor(client: httpx.AsyncClient) -> None:
    await make_user(Role.OWNER)
    user = await make_user(Role.MODERATOR, email="mod@example.com")
    secret = auth.new_totp_secret()
    assert await auth.enable_totp(user=user, secret=secret, code=pyotp.TOTP(secret).now())
    await login(client, user.email)
    response = await client.get(URL)
    assert response.status_code == 303
    assert response.headers["location"] == "/login/2fa"


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_every_role_sees_the_console_and_only_moderators_may_act(
    client: httpx.AsyncClient, role: Role
) -> None:
    await _sign_in(client, role)
    response = await client.get(URL)
    assert response.status_code == 200
    page = response.text
    assert "<h1>Console</h1>" in page
    assert "<title>Console · " in page
    # The navigation marks the console as the current page.
    assert re.search(
        r'<a href="/admin/console" class="nav-link is-active" aria-current="page">', page
    )

    may_act = can(role, Permission.MODERATE)
    assert f'data-can-act="{"true" if may_act else "false"}"' in page
    assert ("data-reply-form" in page) is may_act
    assert ("data-push-form" in page) is may_act
    watch_only = f"Your role ({role.value}) may watch the console but not act"
    assert (watch_only in page) is not may_act
    if may_act:
        assert "A private reply to someone who has already left the room is emailed to them." in (
            html.unescape(page)
        )
        for kind in ("poll", "offer", "announcement"):
            assert f'<option value="{kind}">' in page


async def test_the_console_scripts_are_served(client: httpx.AsyncClient) -> None:
    await _sign_in(client, Role.MODERATOR)
    page = (await client.get(URL)).text
    scripts = _SCRIPTS.findall(page)
    # The Socket.IO client first: the console script uses it as soon as it runs.
    assert scripts[-2:] == ["/static/vendor/socket.io.min.js", "/static/js/console.js"]
    for path in scripts:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(
            ("text/javascript", "application/javascript")
        )
    console = (await client.get("/static/js/console.js")).text
    # Everyone's words reach the page as text only.
    assert "innerHTML" not in console
    assert "insertAdjacentHTML" not in console


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_the_navigation_offers_the_console_to_every_role(
    client: httpx.AsyncClient, role: Role
) -> None:
    await _sign_in(client, role)
    page = (await client.get("/admin")).text
    assert re.search(r'<a href="/admin/console" class="nav-link">', page)
    assert "#chat" in page
