"""The demo's sample history in the admin: labelled on every page that shows it, removable."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from app.models import AuditEvent, Contact, Role, Video, VideoState, Webinar
from app.services import demo_history
from tests.conftest import post_form
from tests.web.test_analytics_pages import sign_in

NOW = datetime(2030, 6, 12, 14, 30, tzinfo=UTC)


async def demo_with_history() -> Webinar:
    video = await Video.create(
        title="Sample", source_key="uploads/s.mp4", state=VideoState.READY, duration_seconds=60.0
    )
    webinar = await Webinar.create(slug="demo-onboarding", title="Getting started", video=video)
    await demo_history.add(webinar, now=NOW, duration=60.0)
    return webinar


async def test_the_sample_history_is_labelled_wherever_it_shows(
    client: httpx.AsyncClient,
) -> None:
    webinar = await demo_with_history()
    await sign_in(client, Role.ANALYST)
    overview = (await client.get("/admin/analytics")).text
    assert "Sample data." in overview
    dashboard = (await client.get(f"/admin/analytics/webinars/{webinar.id}")).text
    assert "Sample data." in dashboard
    assert "· sample data</option>" in dashboard
    assert "Remove sample data" not in dashboard  # analysts change nothing
    maya = await Contact.get(email="maya@northwind.example.com")
    profile = (await client.get(f"/admin/contacts/{maya.id}")).text
    assert "Maya Chen (sample)" in profile
    assert "made-up person" in profile
    assert "hard bounce" not in profile
    refused = await client.post(f"/admin/analytics/webinars/{webinar.id}/sample/remove")
    assert refused.status_code in (403, 400)
    assert await Contact.all().count() == 16


async def test_an_editor_removes_the_sample_history(client: httpx.AsyncClient) -> None:
    webinar = await demo_with_history()
    await sign_in(client, Role.EDITOR)
    page = f"/admin/analytics/webinars/{webinar.id}"
    assert "Remove sample data" in (await client.get(page)).text
    response = await post_form(client, f"{page}/sample/remove", {}, page=page)
    assert response.status_code == 303
    assert response.headers["location"] == page
    assert await Contact.all().count() == 0
    after = (await client.get(page)).text
    assert "Sample data." not in after
    assert "Sample data." not in (await client.get("/admin/analytics")).text
    assert await AuditEvent.filter(action="demo.sample_removed").count() == 1
