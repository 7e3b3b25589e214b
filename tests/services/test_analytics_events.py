"""Events captured outside the room (landing views, registrations, emails) and their retention."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.models import (
    AnalyticsEvent,
    Attendance,
    AuditEvent,
    Contact,
    DailyVisitor,
    EmailState,
    PlannedEmail,
    Registrant,
    Role,
    Webinar,
    WebinarSession,
)
from app.services import analytics_events, attendance, delivery, mail, workspace
from app.services.analytics_events import LANDING_VIEW
from app.settings import Settings
from emails import MemoryMailer, SendError
from scheduler import clock
from tests.conftest import login, make_user, post_form
from tests.web.test_landing import _form, _session_values, make_webinar

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
KIND = "analytics_note"


@delivery.renderer(KIND)
async def _render(row: PlannedEmail, now: datetime) -> delivery.Rendered:
    return delivery.Rendered(to=row.to_email, subject="Note", text="A note\n")


class RefusingMailer:
    """A server that refuses every message for good."""

    async def send(self, message: object) -> None:
        """Refuse."""
        raise SendError("550 no such user", permanent=True)


async def views() -> list[dict[str, object]]:
    await analytics_events.flush_landing_views()
    return list(
        await AnalyticsEvent.filter(kind=LANDING_VIEW).order_by("id").values("webinar_id", "data")
    )


# --- landing-page views -------------------------------------------------------------------------


async def test_landing_views_are_counted_also_from_the_page_cache(
    client: httpx.AsyncClient,
) -> None:
    webinar = await make_webinar()
    first = await client.get("/w/growth-101?utm_source=news", headers={"user-agent": BROWSER})
    assert first.status_code == 200
    cookie = first.cookies["encore_visitor"]
    assert re.fullmatch(r"[0-9a-f]{16}", cookie)
    header = first.headers["set-cookie"]
    assert "Path=/w/" in header
    assert "HttpOnly" in header
    assert "Max-Age=34560000" in header
    # The same visitor again: the page now comes from the cache, and is counted all the same.
    again = await client.get("/w/growth-101?utm_source=news", headers={"user-agent": BROWSER})
    assert again.status_code == 200
    assert "set-cookie" not in again.headers
    counted = await views()
    assert counted == [
        {"webinar_id": webinar.id, "data": {"visitor": cookie, "utm": {"utm_source": "news"}}},
        {"webinar_id": webinar.id, "data": {"visitor": cookie, "utm": {"utm_source": "news"}}},
    ]
    # Not counted: HEAD, programs, prefetches.
    client.cookies.clear()
    assert (await client.head("/w/growth-101", headers={"user-agent": BROWSER})).status_code == 200
    for agent in ("Googlebot/2.1 (+http://www.google.com/bot.html)", "curl/8.5.0", ""):
        assert (await client.get("/w/growth-101", headers={"user-agent": agent})).status_code == 200
    prefetch = {"user-agent": BROWSER, "sec-purpose": "prefetch"}
    assert (await client.get("/w/growth-101", headers=prefetch)).status_code == 200
    assert len(await views()) == 2
    # Another browser is another visitor.
    client.cookies.clear()
    other = await client.get("/w/growth-101", headers={"user-agent": BROWSER})
    assert other.cookies["encore_visitor"] != cookie
    assert len(await views()) == 3
    numbers: list[Any] = await DailyVisitor.filter(webinar_id=webinar.id).values_list(
        "visitor", flat=True
    )
    assert sorted(numbers) == sorted(
        analytics_events.visitor_number(value)
        for value in (cookie, other.cookies["encore_visitor"])
    )
    # A visitor with a cookie that is not ours gets a new one.
    client.cookies.set("encore_visitor", "not-a-visitor", path="/w/")
    fixed = await client.get("/w/growth-101", headers={"user-agent": BROWSER})
    assert re.fullmatch(r"[0-9a-f]{16}", fixed.cookies["encore_visitor"])


async def test_views_of_missing_pages_and_embeds_are_not_counted(
    client: httpx.AsyncClient,
) -> None:
    await make_webinar()
    assert (await client.get("/w/nothing-here", headers={"user-agent": BROWSER})).status_code == 404
    assert (
        await client.get("/w/growth-101/embed", headers={"user-agent": BROWSER})
    ).status_code == 200
    assert await views() == []


async def test_views_are_written_within_a_second_without_a_flush(
    client: httpx.AsyncClient,
) -> None:
    await make_webinar()
    await client.get("/w/growth-101", headers={"user-agent": BROWSER})
    for _ in range(40):
        if await AnalyticsEvent.filter(kind=LANDING_VIEW).exists():
            break
        await asyncio.sleep(0.05)
    assert await AnalyticsEvent.filter(kind=LANDING_VIEW).count() == 1
    assert await DailyVisitor.all().count() == 1


async def test_rebuilt_visitors_match_the_counted_ones(client: httpx.AsyncClient) -> None:
    await make_webinar()
    for _ in range(3):
        client.cookies.clear()
        await client.get("/w/growth-101", headers={"user-agent": BROWSER})
    await views()
    before = sorted(await DailyVisitor.all().values_list("webinar_id", "day", "visitor"))
    await DailyVisitor.all().delete()
    assert await attendance.rebuild() == 0
    assert sorted(await DailyVisitor.all().values_list("webinar_id", "day", "visitor")) == before
    assert len(before) == 3


# --- registrations ------------------------------------------------------------------------------


async def test_registrations_are_events_in_the_batch_and_one_by_one(
    client: httpx.AsyncClient,
) -> None:
    await make_webinar(
        kind="recurring",
        schedule={"repeat": "daily", "times": ["10:00"], "watch_now": True},
    )
    page = (await client.get("/w/growth-101", headers={"user-agent": BROWSER})).text
    slot = next(value for value in _session_values(page) if value != "now")
    batched = await client.post("/w/growth-101/register", data=_form(session=slot))
    assert batched.status_code == 303, batched.text
    on_demand = await client.post(
        "/w/growth-101/register", data=_form(email="bob@example.com", session="now")
    )
    assert on_demand.status_code == 303, on_demand.text
    # Registering again creates nobody.
    await client.post("/w/growth-101/register", data=_form(session="now"))
    events = await AnalyticsEvent.filter(kind="registration").order_by("id")
    registrants = await Registrant.all().order_by("id")
    assert [event.registrant_id for event in events] == [r.id for r in registrants]
    assert [event.session_id for event in events] == [r.session_id for r in registrants]
    assert [event.contact_id for event in events] == [r.contact_id for r in registrants]
    assert {event.webinar_id for event in events} == {registrants[0].webinar_id}


# --- emails -------------------------------------------------------------------------------------


async def test_sent_and_bounced_emails_are_events(database: Settings) -> None:
    ada = await Contact.create(email="ada@example.com", name="Ada")
    sent = await delivery.plan(KIND, to_email="ada@example.com", due_at=NOW)
    await delivery.plan(KIND, to_email="ada@example.com", due_at=NOW + timedelta(days=1))
    memory = MemoryMailer()
    mail.use_mailer(memory)
    try:
        assert await delivery.deliver_due(NOW) == {EmailState.SENT: 1}
        refused = await delivery.plan(KIND, to_email="ada@example.com", due_at=NOW)
        mail.use_mailer(RefusingMailer())
        assert await delivery.deliver_due(NOW) == {EmailState.FAILED: 1}
    finally:
        mail.use_mailer(None)
    events = await AnalyticsEvent.filter(kind__startswith="email_").order_by("id")
    assert [(e.kind, e.contact_id, e.at) for e in events] == [
        ("email_sent", ada.id, NOW),
        ("email_bounced", ada.id, NOW),
    ]
    assert events[0].data == {"email_id": sent.id, "email_kind": KIND}
    assert events[1].data["email_id"] == refused.id
    assert "550" in events[1].data["reason"]


# --- retention ----------------------------------------------------------------------------------


async def test_old_events_are_deleted_and_rows_kept(database: Settings) -> None:
    webinar = await Webinar.create(slug="old", title="Old")
    session = await WebinarSession.create(webinar=webinar, starts_at=NOW - timedelta(days=100))
    for days in (400, 120, 89, 1):
        await AnalyticsEvent.create(
            kind="join", at=NOW - timedelta(days=days), session_id=session.id, registrant_id=1
        )
    await Attendance.create(
        webinar_id=webinar.id, session_id=session.id, registrant_id=1, contact_id=1
    )
    # The default keeps 395 days.
    assert await analytics_events.purge_expired(NOW) == 1
    await workspace.update(analytics_retention_days=0)
    assert await analytics_events.purge_expired(NOW) == 0
    await workspace.update(analytics_retention_days=90)
    assert await analytics_events.purge_expired(NOW) == 1
    kept: list[Any] = await AnalyticsEvent.all().values_list("at", flat=True)
    left = sorted((NOW - at).days for at in kept)
    assert left == [1, 89]
    assert await Attendance.all().count() == 1


async def test_the_scheduler_purges_old_events(database: Settings) -> None:
    scheduler = clock.build_scheduler(database)
    assert "purge_old_events" in {job.id for job in scheduler.get_jobs()}
    await AnalyticsEvent.create(kind="join", at=datetime.now(UTC) - timedelta(days=500))
    await AnalyticsEvent.create(kind="join", at=datetime.now(UTC))
    await clock.purge_old_events()
    assert await AnalyticsEvent.all().count() == 1


@pytest.mark.parametrize(("typed", "days"), [("0", 0), ("30", 30), (" 395 ", 395), ("3650", 3650)])
def test_retention_values(typed: str, days: int) -> None:
    assert analytics_events.parse_retention(typed) == days


@pytest.mark.parametrize("typed", ["", "abc", "-1", "29", "3651", "1.5"])
def test_retention_values_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="days"):
        analytics_events.parse_retention(typed)


async def test_retention_is_set_in_the_settings_page(client: httpx.AsyncClient) -> None:
    await make_user(Role.OWNER)
    await login(client, "owner@example.com")
    page = await client.get("/admin/settings")
    assert 'name="retention_days"' in page.text
    assert 'value="395"' in page.text
    refused = await post_form(
        client, "/admin/settings/analytics", {"retention_days": "12"}, page="/admin/settings"
    )
    assert refused.status_code == 400
    assert 'value="12"' in refused.text  # what was typed stays
    assert 'id="err-retention_days"' in refused.text
    assert "between 30 and 3,650 days" in refused.text
    assert (await workspace.load()).analytics_retention_days == 395
    saved = await post_form(
        client, "/admin/settings/analytics", {"retention_days": "90"}, page="/admin/settings"
    )
    assert saved.status_code == 200
    assert "Analytics retention saved." in saved.text
    assert 'value="90"' in saved.text
    assert (await workspace.load()).analytics_retention_days == 90
    audit: list[Any] = await AuditEvent.filter(action="settings.analytics").values_list(
        "details", flat=True
    )
    assert audit == [{"retention_days": 90, "before": 395}]
