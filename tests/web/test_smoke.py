from __future__ import annotations

import httpx

from app.models import Role
from tests.conftest import login, make_user


async def test_health_endpoints(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).text == "ok"
    ready = await client.get("/readyz")
    assert ready.json() == {"status": "ready", "database": "ok"}


async def test_owner_signs_in_and_sees_dashboard(client: httpx.AsyncClient) -> None:
    await make_user(Role.OWNER, email="owner@example.com", name="Olivia Owner")
    response = await login(client, "owner@example.com")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    page = await client.get("/admin")
    assert page.status_code == 200
    assert "Welcome back, Olivia" in page.text
