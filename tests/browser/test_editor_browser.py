"""The webinar editor in a real browser: create, live preview under the CSP, save and publish."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, EncoreServer, open_page

pytestmark = pytest.mark.browser

OWNER = "olivia@example.com"
EDITOR = "eddie@example.com"
PASSWORD = "violet staple orbit lantern"
JOURNEY_TIMEOUT_S = 120

_EDITOR_SCRIPT = """
import asyncio, sys
from app import db
from app.models import Role
from app.services import team
from app.settings import load_or_exit

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        await team.create_user(
            email=sys.argv[1], name="Eddie Editor", password=sys.argv[2], role=Role.EDITOR
        )
    finally:
        await db.close_db()

asyncio.run(main())
"""

# Stands in for the schedule page: a daily session at 10:00 Berlin time.
_SCHEDULE_SCRIPT = """
import asyncio, sys
from app import db
from app.models import Schedule
from app.settings import load_or_exit

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        await Schedule.create(
            webinar_id=int(sys.argv[1]), timezone="Europe/Berlin",
            rules={"repeat": "daily", "times": ["10:00"]},
        )
    finally:
        await db.close_db()

asyncio.run(main())
"""

_STORED_SCRIPT = """
import asyncio, json, sys
from app import db
from app.models import Webinar
from app.settings import load_or_exit

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        webinar = await Webinar.get(id=int(sys.argv[1]))
        print(json.dumps({"status": webinar.status.value, "theme": webinar.theme,
                          "landing": webinar.landing, "slug": webinar.slug}))
    finally:
        await db.close_db()

asyncio.run(main())
"""

_PRIMARY = "() => getComputedStyle(document.documentElement).getPropertyValue('--primary').trim()"


async def _sign_in(page: Page, server: EncoreServer) -> None:
    await asyncio.to_thread(
        server.create_owner, email=OWNER, name="Olivia Owner", password=PASSWORD
    )
    await asyncio.to_thread(server.run, "-c", _EDITOR_SCRIPT, EDITOR, PASSWORD)
    await page.goto(f"{server.base_url}/login")
    await page.get_by_label("Email address").fill(EDITOR)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{server.base_url}/admin")


async def _preview_primary(page: Page, wanted: str) -> str:
    """The preview's primary colour, once it is `wanted` (or after about five seconds)."""
    value = ""
    for _ in range(50):
        value = await page.frames[1].evaluate(_PRIMARY)
        if value == wanted:
            break
        await asyncio.sleep(0.1)
    return value


async def _stored(server: EncoreServer, webinar_id: str) -> dict[str, object]:
    output = await asyncio.to_thread(server.run, "-c", _STORED_SCRIPT, webinar_id)
    found: dict[str, object] = json.loads(output)
    return found


async def test_create_preview_save_and_publish(browser: Browser, server: EncoreServer) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        page, console = await open_page(browser, viewport=DESKTOP)
        await _sign_in(page, server)

        await page.goto(f"{server.base_url}/admin/webinars")
        await page.get_by_role("link", name="New webinar").first.click()
        await page.get_by_label("Title").fill("Spring product tour")
        await page.get_by_role("button", name="Create webinar").click()
        await expect(page).to_have_url(re.compile(r"/admin/webinars/\d+\?notice=created$"))
        match = re.search(r"/admin/webinars/(\d+)", page.url)
        assert match is not None
        webinar_id = match.group(1)
        await expect(page.get_by_text("Webinar created.")).to_be_visible()

        # The preview pane shows the landing page, with its stylesheets allowed by the CSP.
        preview = page.frame_locator("[data-preview-frame]")
        await expect(preview.get_by_role("heading", name="Spring product tour")).to_be_visible()
        frame = page.frames[1]
        assert await frame.evaluate(_PRIMARY) == "#4338ca"

        # A new colour and headline show in the preview before anything is saved.
        await page.get_by_label("Primary colour", exact=True).fill("#b91c1c")
        await page.get_by_label("Headline (empty: the title)").fill("See Encore in twenty minutes")
        await expect(
            preview.get_by_role("heading", name="See Encore in twenty minutes")
        ).to_be_visible()
        assert await _preview_primary(page, "#b91c1c") == "#b91c1c"
        await expect(page.locator("[data-preview-state]")).to_have_text("Preview up to date.")
        # The colour picker follows the typed value.
        picker = page.get_by_label("Pick the primary colour")
        await expect(picker).to_be_visible()
        await expect(picker).to_have_value("#b91c1c")

        # A low-contrast text colour is flagged beside the colours as it is picked.
        await page.get_by_label("Text colour", exact=True).fill("#f0f0f0")
        await expect(page.locator("[data-contrast]")).to_contain_text(
            "The text colour is hard to read on the background colour."
        )
        await page.get_by_label("Text colour", exact=True).fill("#1f2937")
        await expect(page.locator("[data-contrast]")).to_be_empty()

        # Rows: a question added with the button appears in the preview.
        await page.locator('[data-row-add="faq"]').click()
        question = page.locator('[data-rows="faq"] [data-row]').last
        await question.get_by_label("Question").fill("Is it live?")
        await question.get_by_label("Answer").fill("The presenters answer in chat.")
        await expect(preview.get_by_text("Is it live?")).to_be_visible()
        stored = await _stored(server, webinar_id)
        assert stored["landing"] == {}  # nothing saved yet

        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page).to_have_url(re.compile(r"\?notice=saved$"))
        await expect(page.get_by_text("Saved.", exact=True)).to_be_visible()
        await expect(page.get_by_label("Primary colour", exact=True)).to_have_value("#b91c1c")
        stored = await _stored(server, webinar_id)
        theme = stored["theme"]
        assert isinstance(theme, dict)
        assert theme["primary"] == "#b91c1c"
        landing = stored["landing"]
        assert isinstance(landing, dict)
        assert landing["headline"] == "See Encore in twenty minutes"
        assert landing["faq"] == [
            {"question": "Is it live?", "answer": "The presenters answer in chat."}
        ]

        # Publishing waits for a schedule.
        console.expect_status(409, f"{server.base_url}/admin/webinars/{webinar_id}/publish")
        await page.get_by_role("button", name="Publish").click()
        await expect(page.get_by_role("alert")).to_contain_text("Set up a schedule first")
        await asyncio.to_thread(server.run, "-c", _SCHEDULE_SCRIPT, webinar_id)
        await page.goto(f"{server.base_url}/admin/webinars/{webinar_id}")
        await page.get_by_role("button", name="Publish").click()
        await expect(page).to_have_url(re.compile(r"\?notice=published$"))
        await expect(page.get_by_text("Published: the landing page is live.")).to_be_visible()
        await expect(page.get_by_role("button", name="Unpublish")).to_be_visible()
        assert (await _stored(server, webinar_id))["status"] == "published"

        public = await page.context.new_page()
        await public.goto(f"{server.base_url}/w/{stored['slug']}")
        await expect(
            public.get_by_role("heading", name="See Encore in twenty minutes")
        ).to_be_visible()
        assert await public.evaluate(_PRIMARY) == "#b91c1c"

        assert console.errors == []
