"""The analytics dashboards in a real browser: charts drawn under the strict CSP, a chart saved
as a PNG and its numbers as CSV, on the synthetic data of the page tests."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import EncoreServer, open_page

pytestmark = pytest.mark.browser

JOURNEY_TIMEOUT_S = 120
EMAIL = "olivia@example.com"
PASSWORD = "violet staple orbit lantern"

# The page tests' synthetic webinar (figures computed by hand there); prints its ids.
_WORLD_SCRIPT = """
import asyncio, dataclasses, json
from app import db
from app.settings import load_or_exit
from tests.web.test_analytics_pages import build_world

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        print(json.dumps(dataclasses.asdict(await build_world())))
    finally:
        await db.close_db()

asyncio.run(main())
"""

# What every chart's canvas holds: its size, whether Chart.js drew it, and how many pixels
# are neither transparent nor white (axis text, bars and lines).
_CANVASES = """
() => Array.from(document.querySelectorAll("canvas[data-chart]")).map((canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0 && (data[i] < 240 || data[i + 1] < 240 || data[i + 2] < 240)) ink += 1;
  }
  return {
    name: canvas.closest("[data-chart-figure]").id,
    width: canvas.width,
    height: canvas.height,
    drawn: Boolean(window.Chart && window.Chart.getChart(canvas)),
    ink: ink,
  };
})
"""


async def _sign_in(page: Page, server: EncoreServer) -> None:
    await page.goto(f"{server.base_url}/login")
    await page.get_by_label("Email address").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{server.base_url}/admin")


async def _charts(page: Page) -> list[dict[str, object]]:
    found: list[dict[str, object]] = await page.evaluate(_CANVASES)
    return found


def _png(path: Path) -> Image.Image:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(path)
    image.load()
    return image


async def test_dashboard_draws_charts_and_downloads_them(
    browser: Browser, server: EncoreServer, tmp_path: Path
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        await _journey(browser, server, tmp_path)


async def _journey(browser: Browser, server: EncoreServer, tmp_path: Path) -> None:
    await asyncio.to_thread(
        server.create_owner, email=EMAIL, name="Olivia Owner", password=PASSWORD
    )
    out = await asyncio.to_thread(server.run, "-c", _WORLD_SCRIPT)
    world = json.loads(out.strip().splitlines()[-1])
    page, watch = await open_page(browser)
    await _sign_in(page, server)

    # The overview: the table, and the chart of registered and attended people.
    await page.get_by_role("link", name="Analytics").click()
    await expect(page).to_have_url(f"{server.base_url}/admin/analytics")
    overview = page.locator(f'tr[data-webinar="{world["webinar_id"]}"]')
    await expect(overview).to_contain_text("66.7%")
    [chart] = await _charts(page)
    assert chart["drawn"], chart
    assert chart["ink"], chart

    # The webinar's dashboard, from its row.
    await overview.get_by_role("link", name="Onboarding").click()
    await expect(page).to_have_url(
        f"{server.base_url}/admin/analytics/webinars/{world['webinar_id']}"
    )
    await expect(page.get_by_role("link", name="Analytics", exact=True).last).to_have_attribute(
        "aria-current", "page"
    )
    charts = await _charts(page)
    names = [str(chart["name"]) for chart in charts]
    assert names == [
        "chart-funnel",
        "chart-drop-off",
        f"chart-interaction-{world['poll_id']}",
        f"chart-interaction-{world['nps_id']}",
        "chart-chat",
    ]
    for chart in charts:
        assert chart["drawn"], chart
        assert int(str(chart["width"])) > 200, chart
        assert int(str(chart["height"])) > 150, chart
        assert int(str(chart["ink"])) > 500, chart  # axes, labels and data, not a blank canvas
    # The canvases name themselves; the same numbers stay for screen readers, out of sight.
    funnel = page.locator("#chart-funnel")
    await expect(funnel.locator("canvas")).to_have_attribute("role", "img")
    await expect(funnel.locator("canvas")).to_have_attribute(
        "aria-label",
        "Funnel: visitors to converted. Visitors: 10; Registered: 6; "
        "Attended: 4; Stayed to the end: 1; Converted: 2.",
    )
    hidden = page.locator("#chart-drop-off [data-chart-table]")
    await expect(hidden).to_have_class("an-chart-data sr-only")
    await expect(hidden.get_by_role("table")).to_contain_text("Poll: Which plan?")
    await expect(page.locator("#chart-funnel .an-chart-data")).to_be_visible()

    # The funnel as a PNG: drawn on a white page under its title.
    async with page.expect_download() as png_download:
        await funnel.get_by_role("button", name="Download PNG of funnel").click()
    download = await png_download.value
    assert download.suggested_filename == f"webinar-{world['webinar_id']}-funnel.png"
    saved = tmp_path / "funnel.png"
    await download.save_as(saved)
    image = _png(saved)
    assert image.width > 300
    assert image.height > 200
    assert image.convert("RGB").getpixel((1, 1)) == (255, 255, 255)
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None
    assert len(colours) > 20  # text, bars and grid, not a blank page

    # The drop-off curve's numbers as CSV, with the page's filters.
    await page.get_by_label("From", exact=True).fill("2030-05-01")
    await page.get_by_label("To", exact=True).fill("2030-05-05")
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(
        f"{server.base_url}/admin/analytics/webinars/{world['webinar_id']}"
        "?start=2030-05-01&end=2030-05-05&session="
    )
    await expect(
        page.locator("#chart-funnel").get_by_role("row", name="Attended 3 75.0 37.5")
    ).to_be_visible()
    async with page.expect_download() as csv_download:
        await (
            page.locator("#chart-drop-off")
            .get_by_role("link", name="Download CSV of viewers per minute of the video")
            .click()
        )
    download = await csv_download.value
    assert download.suggested_filename == (
        f"webinar-{world['webinar_id']}-drop-off-from-2030-05-01-to-2030-05-05.csv"
    )
    saved = tmp_path / "drop-off.csv"
    await download.save_as(saved)
    body = saved.read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["Minute", "From", "To", "Viewers", "Interactions opening"]
    # Only the first session: a, b and c for two minutes, a and b to minute 4, then a alone.
    assert [int(row[3]) for row in rows[1:]] == [3, 3, 2, 2, 2, 1, 1, 1, 1, 1]

    # A PNG of another chart after the filters, and no CSP or script errors on the way.
    async with page.expect_download() as png_download:
        await (
            page.locator(f"#chart-interaction-{world['nps_id']}")
            .get_by_role("button", name="Download PNG")
            .click()
        )
    download = await png_download.value
    assert download.suggested_filename == (
        f"webinar-{world['webinar_id']}-interaction-{world['nps_id']}"
        "-from-2030-05-01-to-2030-05-05.png"
    )
    assert watch.errors == []
