"""Signing in as a member of the team, for the tests of the webinar editor's tabs."""

from __future__ import annotations

import httpx

from app.models import Role
from tests.conftest import csrf_token, login, make_user


async def sign_in(client: httpx.AsyncClient, role: Role = Role.EDITOR) -> str:
    """Sign in with a role; the CSRF token of the admin pages."""
    if role != Role.OWNER:
        await make_user(Role.OWNER)
    user = await make_user(role, email=f"{role.value}-user@example.com", name="Grace Hopper")
    assert (await login(client, user.email)).status_code == 303
    return await csrf_token(client, "/admin")
