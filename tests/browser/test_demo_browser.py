"""The demo as a new user finds it, in a real browser: `encore demo` seeds the demo webinar with
its labelled sample history, and the overview, the webinar's dashboard, a contact, the accounts
and a segment all show its figures."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, EncoreServer, open_page

pytestmark = pytest.mark.browser

# Generating the sample recording takes a while on a busy machine.
JOURNEY_TIMEOUT_S = 240
EMAIL = "owner@example.com"
PASSWORD = "violet staple orbit lantern"
DEMO_TITLE = "Getting started with Encore"

# Each chart's canvas: whether Chart.js drew it, and how many pixels hold ink.
_CANVASES = """
() => Array.from(document.querySelectorAll("canvas[data-chart]")).map((canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0 && (data[i] < 240 || data[i + 1] < 240 || data[i + 2] < 240)) ink += 1;
  }
  return {
    name: canvas.closest("[data-chart-figure]").id,
    drawn: Boolean(window.Chart && window.Chart.getChart(canvas)),
    ink: ink,
  };
})
"""


async def _drawn_charts(page: Page) -> list[str]:
    """The names of the page's charts, each checked to be drawn with data."""
    charts: list[dict[str, object]] = await page.evaluate(_CANVASES)
    for chart in charts:
        assert chart["drawn"], chart
        assert int(str(chart["ink"])) > 500, chart
    return [str(chart["name"]) for chart in charts]


async def test_the_seeded_demo_shows_every_analytics_page(
    browser: Browser, server: EncoreServer, tmp_path: Path
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        await asyncio.to_thread(server.run, "-m", "app", "demo")
        await asyncio.to_thread(
            server.create_owner, email=EMAIL, name="Olivia Owner", password=PASSWORD
        )
        await _journey(browser, server, tmp_path)


async def _journey(browser: Browser, server: EncoreServer, tmp_path: Path) -> None:
    page, watch = await open_page(browser, viewport=DESKTOP)
    await page.goto(f"{server.base_url}/login")
    await page.get_by_label("Email address").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{server.base_url}/admin")

    # The overview: the demo's row and its chart, with the sample history said as such.
    await page.get_by_role("link", name="Analytics").click()
    await expect(page.locator("#an-sample-note")).to_contain_text("Sample data.")
    row = page.locator("tr[data-webinar]", has_text=DEMO_TITLE)
    await expect(row).to_contain_text("16")  # registered
    assert await _drawn_charts(page)

    # The demo webinar's dashboard: every chart drawn, the funnel's figures as computed.
    await row.get_by_role("link", name=DEMO_TITLE).click()
    await expect(page).to_have_url(re.compile(r"/admin/analytics/webinars/[0-9]+$"))
    await expect(page.locator("#an-sample-note")).to_be_visible()
    names = await _drawn_charts(page)
    assert names[:2] == ["chart-funnel", "chart-drop-off"]
    assert names[-1] == "chart-chat"
    await expect(page.locator("#chart-funnel canvas")).to_have_attribute(
        "aria-label",
        "Funnel: visitors to converted. Visitors: 46; Registered: 16; "
        "Attended: 11; Stayed to the end: 5; Converted: 4.",
    )

    # The sample session alone, and its funnel as CSV.
    session = page.get_by_label("Session")
    label = await session.locator("option", has_text="sample data").inner_text()
    await session.select_option(label=label)
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"session=[0-9]+$"))
    assert await _drawn_charts(page)
    async with page.expect_download() as waiting:
        await (
            page.locator("#chart-funnel")
            .get_by_role("link", name=re.compile("^Download CSV"))
            .click()
        )
    download = await waiting.value
    assert re.fullmatch(r"webinar-[0-9]+-funnel-session-[0-9]+\.csv", download.suggested_filename)
    saved = tmp_path / "funnel.csv"
    await download.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"), newline="")))
    figures = {row[0]: row[1] for row in rows[1:]}
    assert (figures["Registered"], figures["Attended"]) == ("16", "11")
    assert (figures["Stayed to the end"], figures["Converted"]) == ("5", "4")

    # A sample person's profile, labelled as such.
    await page.goto(f"{server.base_url}/admin/contacts?q=maya")
    await page.get_by_role("link", name="Maya Chen (sample)").click()
    await expect(page.get_by_role("heading", name="Maya Chen (sample)")).to_be_visible()
    await expect(page.get_by_role("note")).to_contain_text("made-up person")
    await expect(page.locator("table", has_text="Stayed to the end")).to_contain_text("yes")

    # The accounts, by the sample people's company domains, and one account's people.
    await page.goto(f"{server.base_url}/admin/accounts")
    for domain in ("northwind", "globex", "initech", "umbrella", "hooli"):
        await expect(page.locator("table")).to_contain_text(f"{domain}.example.com")
    await page.get_by_role("link", name="northwind.example.com").first.click()
    await expect(page.locator("table")).to_contain_text("Tom Becker (sample)")

    # A segment: who stayed and clicked the offer, counted live and saved.
    await page.goto(f"{server.base_url}/admin/segments/new")
    await page.get_by_label("Name", exact=True).fill("Watched and clicked")
    await page.get_by_label("Attendance").select_option("attended")
    await page.get_by_label("Clicked the offer").check()
    await expect(page.locator("[data-segment-count]")).to_have_text("4")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Segment saved.")
    await expect(page.locator(".segment-preview")).to_contain_text("Omar Haddad (sample)")
    await expect(page.locator("[data-segment-count]")).to_have_text("4")

    assert watch.errors == [], watch.errors
