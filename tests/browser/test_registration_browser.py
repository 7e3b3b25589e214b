"""Two visitors in different time zones register in a real browser, each seeing their own times."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import ACTION_TIMEOUT_MS, DESKTOP, MOBILE, ConsoleWatch, EncoreServer

pytestmark = pytest.mark.browser

JOURNEY_TIMEOUT_S = 120
SLUG = "zones-webinar"

# Runs with the web process's settings: a published webinar with one session in 20 days at
# 15:00 Berlin time; prints the session's UTC start.
_WEBINAR_SCRIPT = """
import asyncio
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo
from app import db
from app.models import Schedule, Webinar, WebinarStatus
from app.settings import load_or_exit

async def main() -> None:
    settings = load_or_exit()
    await db.init_db(settings)
    try:
        berlin = ZoneInfo("Europe/Berlin")
        day = (datetime.now(UTC) + timedelta(days=20)).astimezone(berlin).date()
        webinar = await Webinar.create(
            slug="zones-webinar",
            title="Zones webinar",
            description="A talk that people join from everywhere.",
            status=WebinarStatus.PUBLISHED,
            published_at=datetime.now(UTC),
            theme={"template": "split", "primary": "#1d4ed8"},
            landing={"headline": "Join from anywhere", "thank_you_headline": "You are in"},
            registration_fields=[
                {"key": "company", "label": "Company", "type": "text", "required": True}
            ],
        )
        await Schedule.create(
            webinar=webinar,
            kind="specific",
            timezone="Europe/Berlin",
            rules={"dates": [f"{day.isoformat()}T15:00"]},
        )
        print(datetime.combine(day, time(15, 0), berlin).astimezone(UTC).isoformat())
    finally:
        await db.close_db()

asyncio.run(main())
"""


def _clock(moment: datetime) -> str:
    """The h:mm of a local time as an English page writes it."""
    return f"{moment.hour % 12 or 12}:{moment.minute:02d}"


async def _visitor(
    browser: Browser, zone: str, *, mobile: bool = False
) -> tuple[Page, ConsoleWatch]:
    size = MOBILE if mobile else DESKTOP
    context = await browser.new_context(
        viewport={"width": size["width"], "height": size["height"]},
        locale="en-US",
        timezone_id=zone,
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = await context.new_page()
    watch = ConsoleWatch()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    return page, watch


async def _register(
    page: Page,
    console: ConsoleWatch,
    server: EncoreServer,
    *,
    zone: str,
    start: datetime,
    email: str,
) -> None:
    landing = f"{server.base_url}/w/{SLUG}?utm_source=newsletter"
    await page.goto(landing)
    # landing.js sees the browser's zone and shows the page once more in it, keeping the UTM.
    await expect(page).to_have_url(re.compile(rf"tz={re.escape(quote(zone, safe=''))}"))
    assert "utm_source=newsletter" in page.url
    local = start.astimezone(ZoneInfo(zone))
    choice = page.get_by_role("radio", name=re.compile(re.escape(_clock(local))))
    await expect(choice).to_be_checked()
    label = await page.locator(".choice-time").first.inner_text()
    assert f"{local.day}" in label, label
    assert ("AM" if local.hour < 12 else "PM") in label, label
    await expect(page.get_by_text(f"Times are shown in {zone}")).to_be_visible()
    assert await page.locator("[data-timezone]").input_value() == zone
    assert await page.get_by_label("Time zone").input_value() == zone

    # A first try without the required company: the form comes back with the error focused.
    await page.get_by_label("Your name").fill("Grace Hopper")
    await page.get_by_label("Email address").fill(email)
    console.expect_status(422, f"{server.base_url}/w/{SLUG}/register")
    await page.get_by_role("button", name="Register now").click()
    summary = page.get_by_role("alert")
    await expect(summary).to_contain_text("This field is required.")
    await expect(summary).to_be_focused()
    company = page.get_by_label("Company")
    await expect(company).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Your name")).to_have_value("Grace Hopper")
    await expect(page.get_by_label("Email address")).to_have_value(email)
    await expect(choice).to_be_checked()
    # The error list leads straight to the field, keyboard only.
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(company).to_be_focused()
    await page.keyboard.type("Navy")
    await page.get_by_role("button", name="Register now").click()

    await expect(page).to_have_url(re.compile(r"/j/[A-Za-z0-9_-]+/registered$"))
    await expect(page.get_by_role("heading", name="You are in")).to_be_visible()
    when = page.locator(".session-when")
    await expect(when).to_contain_text(_clock(local))
    await expect(when).to_contain_text(str(local.day))
    await expect(page.locator(".session-zone")).to_contain_text(zone)
    # The countdown runs (JavaScript replaced the server's text).
    countdown = page.locator("[data-countdown]")
    await expect(countdown).to_have_class(re.compile("countdown-live"))
    await expect(countdown).to_contain_text(re.compile(r"Starts in \d+ days"))
    join = await page.get_by_role("textbox", name="Your personal join link").input_value()
    assert re.fullmatch(rf"{re.escape(server.base_url)}/j/[A-Za-z0-9_-]+", join), join
    await expect(page.get_by_role("link", name="Calendar file (.ics)")).to_be_visible()


async def test_two_visitors_register_in_their_own_time_zones(
    browser: Browser, server: EncoreServer
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        out = await asyncio.to_thread(server.run, "-c", _WEBINAR_SCRIPT)
        start = datetime.fromisoformat(out.strip().splitlines()[-1])
        visitors = [
            ("America/New_York", "grace@example.com", False),
            ("Asia/Tokyo", "hopper@example.com", True),
        ]
        for zone, email, mobile in visitors:
            page, console = await _visitor(browser, zone, mobile=mobile)
            await _register(page, console, server, zone=zone, start=start, email=email)
            assert console.errors == [], console.errors
            await page.context.close()
