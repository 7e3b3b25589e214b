"""The schedule editor in Chromium: every event type with its preview, then a confirmed move."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, EncoreServer, open_page

pytestmark = pytest.mark.browser

EMAIL = "olivia@example.com"
PASSWORD = "violet staple orbit lantern"
JOURNEY_TIMEOUT_S = 120

# A webinar on Tuesdays at 10:00 in Berlin, and a registrant (with a personal link) of its second
# upcoming session, stored the way registration stores them.
_SETUP_SCRIPT = """
import asyncio, json
from datetime import UTC, datetime
from app import db
from app.models import Contact, Registrant, Schedule, Webinar, WebinarSession
from app.services import crypto, sessions
from app.settings import load_or_exit

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        webinar = await Webinar.create(slug="growth", title="Growth Basics")
        schedule = await Schedule.create(
            webinar=webinar, kind="recurring", timezone="Europe/Berlin",
            rules={"repeat": "weekly", "weekdays": ["tue"], "times": ["10:00"]},
        )
        rules = sessions.rules_of(schedule)
        offer = await sessions.offer(webinar, rules, datetime.now(UTC))
        session = await sessions.session_for_slot(webinar, offer.slots[1])
        token = crypto.new_token()
        await Registrant.create(
            contact=await Contact.create(email="ann@example.com", name="Ann Example"),
            webinar=webinar, session=session, timezone="Europe/Berlin",
            join_token_hash=crypto.hash_token(token), join_token_sealed=crypto.seal(token),
        )
        start = session.starts_at.isoformat()
        print(json.dumps({"id": webinar.id, "token": token, "start": start}))
    finally:
        await db.close_db()

asyncio.run(main())
"""

_CHECK_SCRIPT = """
import asyncio, json
from email import message_from_string, policy
from app import db
from datetime import UTC, datetime
from app.models import OutboxMessage, Registrant, WebinarSession
from app.services import delivery
from app.settings import load_or_exit

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        registrant = await Registrant.get(contact__email="ann@example.com")
        session = await WebinarSession.get(id=registrant.session_id)
        await delivery.deliver_due(datetime.now(UTC))  # what the scheduler does every few seconds
        messages = await OutboxMessage.filter(recipients="ann@example.com")
        print(json.dumps({
            "start": session.starts_at.isoformat(),
            "outbox": [
                message_from_string(m.content, policy=policy.default)
                .get_body(("plain",)).get_content()
                for m in messages
            ],
        }))
    finally:
        await db.close_db()

asyncio.run(main())
"""


async def _sign_in(page: Page, server: EncoreServer) -> None:
    await asyncio.to_thread(
        server.create_owner, email=EMAIL, name="Olivia Owner", password=PASSWORD
    )
    await page.goto(f"{server.base_url}/login")
    await page.get_by_label("Email address").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{server.base_url}/admin")


def _kind(value: str) -> str:
    return f'input[name="kind"][value="{value}"]'


async def test_each_event_type_previews_and_a_moved_registrant_keeps_the_link(
    browser: Browser, server: EncoreServer
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        output = await asyncio.to_thread(server.run, "-c", _SETUP_SCRIPT)
        setup = json.loads(output.strip().splitlines()[-1])
        page, console = await open_page(browser, viewport=DESKTOP)
        await _sign_in(page, server)
        editor = f"{server.base_url}/admin/webinars/{setup['id']}/schedule"
        await page.goto(editor)
        form = page.locator("[data-schedule-form]")
        preview = page.locator("[data-preview]")
        recurring = form.locator('[data-show-for="recurring"]')
        specific = form.locator('[data-show-for="specific"]')
        sessions_card = form.locator('section[data-show-for="recurring specific"]')

        # Recurring, every week on Tuesday and Thursday at 10:00 and 18:30.
        await expect(recurring).to_be_visible()
        await expect(specific).to_be_hidden()
        await page.get_by_label("Repeats").select_option("weekly")
        await page.get_by_label("Thursday").check()
        await page.get_by_label("Time 2", exact=True).fill("18:30")
        await page.get_by_role("button", name="Preview").click()
        await expect(preview).to_be_visible()
        rows = preview.locator("tbody tr")
        await expect(rows).to_have_count(10)
        texts = await rows.all_inner_texts()
        assert all(re.match(r"(Tue|Thu) ", text) for text in texts), texts
        assert any("18:30" in text for text in texts), texts
        await expect(page.get_by_label("Thursday")).to_be_checked()

        # Specific dates: two rows, the second added with the button.
        await page.locator(_kind("specific")).check()
        await expect(recurring).to_be_hidden()
        await expect(specific).to_be_visible()
        await page.get_by_label("Date and time 1", exact=True).fill("2031-05-01T10:00")
        await page.get_by_label("Date and time 2", exact=True).fill("2031-05-08T14:30")
        await page.get_by_role("button", name="Add date and time").click()
        await expect(page.get_by_label("Date and time 3", exact=True)).to_be_focused()
        await page.get_by_role("button", name="Preview").click()
        await expect(preview.locator("tbody tr")).to_have_count(2)
        await expect(preview).to_contain_text("Thu 1 May 2031, 10:00 CEST")
        await expect(preview).to_contain_text("Thu 8 May 2031, 14:30 CEST")

        # On demand only: no sessions, "watch now" is offered.
        await page.locator(_kind("on_demand")).check()
        await expect(sessions_card).to_be_hidden()
        await expect(specific).to_be_hidden()
        await page.get_by_role("button", name="Preview").click()
        await expect(page.locator(".sched-preview")).to_contain_text("“Watch now” is offered")
        await expect(preview).to_have_count(0)

        # Just-in-time every 30 minutes next to the daily times, seen from Tokyo.
        await page.locator(_kind("recurring")).check()
        await page.get_by_label("Repeats").select_option("daily")
        jit_every = page.get_by_label("A session every")
        await expect(jit_every).to_be_hidden()
        await page.get_by_label("Just-in-time sessions").check()
        await expect(jit_every).to_be_visible()
        await jit_every.select_option("30")
        # Off the half-hour grid, so that no just-in-time start can coincide with a daily one
        # (which would then be offered once, as the scheduled session), whatever the time now.
        await page.get_by_label("Time 1", exact=True).fill("10:10")
        await page.get_by_label("Time 2", exact=True).fill("18:40")
        await page.get_by_label("Also show times for a visitor in").select_option("Asia/Tokyo")
        await page.get_by_role("button", name="Preview").click()
        await expect(preview.locator(".badge-jit")).to_have_count(1)
        await expect(preview).to_contain_text("For a visitor in Asia/Tokyo")
        await expect(page.locator(".sched-preview")).to_contain_text("a session every 30 minutes")

        # Back to the stored schedule: move Tuesday's session from 10:00 to 11:00.
        await page.goto(editor)
        await expect(page.get_by_label("Time 1", exact=True)).to_have_value("10:00")
        await page.get_by_label("Time 1", exact=True).fill("11:00")
        await page.get_by_role("button", name="Save").click()
        confirm = page.locator(".sched-confirm")
        await expect(confirm).to_contain_text("This change removes sessions people registered for")
        await expect(confirm).to_contain_text("Ann Example")
        await expect(confirm).to_contain_text("Moved to")
        await page.get_by_role("button", name="Confirm and save").click()
        await expect(page).to_have_url(re.compile(r"/schedule\?saved=1&moved=1$"))
        await expect(page.locator(".alert-ok")).to_contain_text("1 registrant(s) moved")
        await expect(page.get_by_label("Time 1", exact=True)).to_have_value("11:00")

        after = json.loads(
            (await asyncio.to_thread(server.run, "-c", _CHECK_SCRIPT)).strip().splitlines()[-1]
        )
        old = datetime.fromisoformat(setup["start"])
        assert datetime.fromisoformat(after["start"]) == old + timedelta(hours=1)
        (message,) = after["outbox"]
        assert f"/j/{setup['token']}" in message
        assert console.errors == [], console.errors
