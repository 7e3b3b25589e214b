"""People in a real browser: an analyst counts a segment live as the rules change, sees what to
correct, and downloads its members as CSV; an editor saves it; contacts and accounts open."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import pytest
from playwright.async_api import Browser, Page, expect

from app.services.people import SCORE_FORMULA
from tests.browser.conftest import DESKTOP, MOBILE, EncoreServer, open_page

pytestmark = pytest.mark.browser

JOURNEY_TIMEOUT_S = 150
PASSWORD = "violet staple orbit lantern"

# Ann attended (80% of the video), Bob and Cy missed; an owner, an analyst and an editor.
# Prints the contacts' ids.
_PEOPLE_SCRIPT = """
import asyncio, json
from datetime import UTC, datetime, timedelta
from app import db
from app.models import Attendance, Contact, Registrant, Role, Video, Webinar, WebinarSession
from app.services import crypto, team
from app.settings import load_or_exit

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        video = await Video.create(title="Talk", source_key="uploads/talk", duration_seconds=1000)
        webinar = await Webinar.create(slug="kick-off", title="Kick-off", video=video)
        starts = datetime.now(UTC) - timedelta(days=2)
        session = await WebinarSession.create(webinar=webinar, starts_at=starts)
        ids = {}
        for email, name in (("ann@acme.example", "Ann Acme"), ("bob@acme.example", "Bob Acme"),
                            ("cy@beta.example", "=Cy Formula")):
            contact = await Contact.create(
                email=email, name=name, company_domain=email.rpartition("@")[2]
            )
            token = crypto.new_token()
            registrant = await Registrant.create(
                contact=contact, webinar=webinar, session=session,
                join_token_hash=crypto.hash_token(token), join_token_sealed=crypto.seal(token),
            )
            ids[email] = contact.id
            if email.startswith("ann"):
                await Attendance.create(
                    webinar_id=webinar.id, session_id=session.id, registrant_id=registrant.id,
                    contact_id=contact.id, first_join_at=starts, last_seen_at=starts,
                    watched_seconds=800,
                )
        for role in (Role.OWNER, Role.ANALYST, Role.EDITOR):
            await team.create_user(
                email=f"{role.value}@example.com", name=role.value.title(),
                password="violet staple orbit lantern", role=role,
            )
        print(json.dumps(ids))
    finally:
        await db.close_db()

asyncio.run(main())
"""


async def sign_in(page: Page, server: EncoreServer, email: str) -> None:
    await page.goto(f"{server.base_url}/login")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{server.base_url}/admin")


async def test_an_analyst_counts_and_exports_a_segment_and_an_editor_saves_it(
    browser: Browser, server: EncoreServer
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        out = await asyncio.to_thread(server.run, "-c", _PEOPLE_SCRIPT)
        ids = json.loads(out.strip().splitlines()[-1])

        page, console = await open_page(browser, viewport=DESKTOP)
        await sign_in(page, server, "analyst@example.com")
        await page.get_by_role("link", name="Segments").click()
        await page.get_by_role("link", name="Explore contacts").click()
        count = page.locator("[data-segment-count]")
        await expect(count).to_have_text("3")
        # The count follows the rules without a click.
        await page.get_by_label("Attendance").select_option("missed")
        await expect(count).to_have_text("2")
        await page.get_by_label("Watched at least (%)").fill("500")
        problems = page.locator(".segment-problems")
        await expect(problems).to_contain_text(
            "Watched at least: Enter a whole percentage from 1 to 100."
        )
        await page.get_by_label("Watched at least (%)").fill("")
        await expect(count).to_have_text("2")
        await expect(page.locator(".segment-preview")).to_contain_text("Bob Acme")
        # The analyst may export what they typed, but there is no Save.
        assert await page.get_by_role("button", name="Save").count() == 0
        async with page.expect_download() as waiting:
            await page.get_by_role("button", name="Export these members as CSV").click()
        download = await waiting.value
        path = await download.path()
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
        assert [row[:3] for row in rows[1:]] == [
            ["bob@acme.example", "Bob Acme", "acme.example"],
            ["cy@beta.example", "'=Cy Formula", "beta.example"],
        ]
        assert console.errors == [], console.errors
        await page.context.close()

        page, console = await open_page(browser, viewport=MOBILE)
        await sign_in(page, server, "editor@example.com")
        await page.goto(f"{server.base_url}/admin/segments/new")
        await page.get_by_label("Name", exact=True).fill("Came and watched")
        await page.get_by_label("Attendance").select_option("attended")
        await page.get_by_label("Watched at least (%)").fill("75")
        await expect(page.locator("[data-segment-count]")).to_have_text("1")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("status")).to_contain_text("Segment saved.")
        await expect(page.locator(".segment-preview")).to_contain_text("Ann Acme")
        await page.get_by_role("link", name="Ann Acme").click()
        await expect(
            page.get_by_role("heading", name="Engagement score: 54 of 100")
        ).to_be_visible()
        await page.goto(f"{server.base_url}/admin/contacts/{ids['ann@acme.example']}")
        await page.get_by_text("How the score is computed").click()
        await expect(page.get_by_text(SCORE_FORMULA[1])).to_be_visible()
        await page.goto(f"{server.base_url}/admin/accounts")
        await page.get_by_role("link", name="acme.example").first.click()
        await expect(page.get_by_role("heading", name="acme.example")).to_be_visible()
        await expect(page.locator("table")).to_contain_text("Bob Acme")
        assert console.errors == [], console.errors
        await page.context.close()
