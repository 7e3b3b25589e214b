"""The media list follows a transcode live (media.js polling the status endpoint), no reload."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import DESKTOP, EncoreServer, open_page

pytestmark = pytest.mark.browser

EMAIL = "olivia@example.com"
PASSWORD = "violet staple orbit lantern"
JOURNEY_TIMEOUT_S = 90

# Plays the transcoder's part: moves one row the way a running job does.
_ROW_SCRIPT = """
import asyncio, sys
from app import db
from app.models import Video, VideoState
from app.settings import load_or_exit

async def main(step: str) -> None:
    await db.init_db(load_or_exit())
    try:
        if step == "create":
            video = await Video.create(
                title="Quarterly review", source_key="uploads/1/review.mov",
                state=VideoState.TRANSCODING, stage="first_pass", progress=5.0, eta_seconds=600,
            )
            print(video.id)
        elif step == "advance":
            await Video.all().update(stage="transcoding", progress=64.0, eta_seconds=30,
                                     playable=True)
        else:
            await Video.all().update(state=VideoState.READY, stage="", progress=100.0,
                                     eta_seconds=None)
    finally:
        await db.close_db()

asyncio.run(main(sys.argv[1]))
"""


async def test_progress_bar_and_state_update_without_reload(
    browser: Browser, server: EncoreServer
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        await asyncio.to_thread(
            server.create_owner, email=EMAIL, name="Olivia Owner", password=PASSWORD
        )
        video_id = (await asyncio.to_thread(server.run, "-c", _ROW_SCRIPT, "create")).strip()
        page, console = await open_page(browser, viewport=DESKTOP)
        await page.goto(f"{server.base_url}/login")
        await page.get_by_label("Email address").fill(EMAIL)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(f"{server.base_url}/admin")

        await page.goto(f"{server.base_url}/admin/media")
        status = page.locator(f'[data-video-status][data-video-id="{video_id}"]')
        bar = status.locator("progress")
        await expect(bar).to_have_attribute("value", "5.0")
        await expect(status).to_contain_text("Making a quick version · 5% · about 10 min left")
        await page.evaluate("window.__sameDocument = true")

        await asyncio.to_thread(server.run, "-c", _ROW_SCRIPT, "advance")
        await expect(status).to_contain_text("Encoding every size · 64% · less than a minute left")
        assert await bar.evaluate("(el) => el.value") == 64
        await expect(status.locator('[data-field="playable"]')).to_be_visible()

        await asyncio.to_thread(server.run, "-c", _ROW_SCRIPT, "done")
        await expect(status.locator(".badge")).to_have_text("ready")
        await expect(bar).to_be_hidden()
        assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        assert console.errors == [], console.errors
