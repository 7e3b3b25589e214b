"""The email sequence in a real browser: an editor changes a reminder, a visitor registers and
gets the confirmation and the changed reminder in their own zone, then unsubscribes."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import ACTION_TIMEOUT_MS, DESKTOP, EncoreServer, open_page

pytestmark = pytest.mark.browser

JOURNEY_TIMEOUT_S = 150
SLUG = "sequence-webinar"
EMAIL = "olivia@example.com"
PASSWORD = "violet staple orbit lantern"

# A published webinar with one session in 20 days at 15:00 Berlin time; prints its id and start.
_WEBINAR_SCRIPT = """
import asyncio, json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo
from app import db
from app.models import Schedule, Webinar, WebinarStatus
from app.settings import load_or_exit

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        berlin = ZoneInfo("Europe/Berlin")
        day = (datetime.now(UTC) + timedelta(days=20)).astimezone(berlin).date()
        webinar = await Webinar.create(
            slug="sequence-webinar", title="Sequence webinar", status=WebinarStatus.PUBLISHED,
            published_at=datetime.now(UTC),
        )
        await Schedule.create(
            webinar=webinar, kind="specific", timezone="Europe/Berlin",
            rules={"dates": [f"{day.isoformat()}T15:00"]},
        )
        start = datetime.combine(day, time(15, 0), berlin).astimezone(UTC)
        print(json.dumps({"id": webinar.id, "start": start.isoformat()}))
    finally:
        await db.close_db()

asyncio.run(main())
"""

# What the scheduler's job does, at a given moment: plan sequences, send what is due. Prints the
# outbox for one address: subject, text, whether a calendar file and List-Unsubscribe came along.
_TICK_SCRIPT = """
import asyncio, json, sys
from datetime import datetime
from email import message_from_string, policy
from app import db
from app.models import OutboxMessage
from app.services import delivery, sequences
from app.settings import load_or_exit

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        now = datetime.fromisoformat(sys.argv[1])
        await sequences.plan_pending(now)
        await delivery.deliver_due(now)
        found = []
        for row in await OutboxMessage.filter(recipients=sys.argv[2]).order_by("id"):
            message = message_from_string(row.content, policy=policy.default)
            text = message.get_body(("plain",)).get_content().replace("\\r\\n", "\\n")
            found.append({
                "subject": row.subject,
                "text": text,
                "ics": any(p.get_filename() == "invite.ics" for p in message.iter_attachments()),
                "unsubscribe": str(message.get("List-Unsubscribe", "")),
            })
        print(json.dumps(found))
    finally:
        await db.close_db()

asyncio.run(main())
"""


def _tick(server: EncoreServer, moment: datetime, email: str) -> list[dict[str, object]]:
    out = server.run("-c", _TICK_SCRIPT, moment.isoformat(), email)
    found: list[dict[str, object]] = json.loads(out.strip().splitlines()[-1])
    return found


async def test_an_edited_reminder_reaches_a_registrant_who_then_unsubscribes(
    browser: Browser, server: EncoreServer
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        out = await asyncio.to_thread(server.run, "-c", _WEBINAR_SCRIPT)
        made = json.loads(out.strip().splitlines()[-1])
        start = datetime.fromisoformat(made["start"])

        # The editor changes the one-hour reminder to two hours, previews it and saves.
        await asyncio.to_thread(
            server.create_owner, email=EMAIL, name="Olivia Owner", password=PASSWORD
        )
        page, console = await open_page(browser, viewport=DESKTOP)
        await page.goto(f"{server.base_url}/login")
        await page.get_by_label("Email address").fill(EMAIL)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(f"{server.base_url}/admin")
        await page.goto(f"{server.base_url}/admin/webinars/{made['id']}")
        await page.get_by_role("link", name="Emails").click()
        rows = page.locator("table.emails-table tbody tr")
        await expect(rows).to_have_count(8)
        hour = rows.filter(has_text="1 hour before the start")
        await hour.get_by_role("link", name=re.compile("Edit")).click()
        await page.get_by_label("Sent this long before the start").fill("2")
        await page.get_by_label("Subject").fill("Two hours to go: {webinar}")
        await page.get_by_role("button", name="Preview").click()
        preview = page.locator(".email-preview")
        await expect(preview).to_contain_text("Two hours to go: Sequence webinar")
        await expect(preview).to_contain_text("Hello Olivia,")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("status")).to_contain_text("Email saved.")
        await expect(rows.filter(has_text="2 hours before the start")).to_have_count(1)
        assert console.errors == [], console.errors
        await page.context.close()

        # A visitor in New York registers.
        context = await browser.new_context(locale="en-US", timezone_id="America/New_York")
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        visitor = await context.new_page()
        await visitor.goto(f"{server.base_url}/w/{SLUG}")
        await expect(visitor).to_have_url(re.compile(r"tz=America%2FNew_York"))
        await visitor.get_by_label("Your name").fill("Grace Hopper")
        await visitor.get_by_label("Email address").fill("grace@example.com")
        await visitor.get_by_role("button", name="Register now").click()
        await expect(visitor).to_have_url(re.compile(r"/j/[A-Za-z0-9_-]+/registered$"))

        # The scheduler sends the confirmation at once and the reminder two hours before.
        now = datetime.now(start.tzinfo)
        sent = await asyncio.to_thread(_tick, server, now, "grace@example.com")
        assert [m["subject"] for m in sent] == ["You're registered: Sequence webinar"]
        assert sent[0]["ics"]
        sent = await asyncio.to_thread(
            _tick, server, start - timedelta(hours=2), "grace@example.com"
        )
        reminder = sent[-1]
        assert reminder["subject"] == "Two hours to go: Sequence webinar"
        text = str(reminder["text"])
        assert text.startswith("Hello Grace,")
        assert "9:00" in text, text  # 15:00 in Berlin
        assert "America/New_York" in text, text
        link = re.search(r"<(http[^>]+/u/[^>]+)>", str(reminder["unsubscribe"]))
        assert link, reminder["unsubscribe"]

        # The unsubscribe link shows a page; the button unsubscribes; nothing more is sent.
        await visitor.goto(link.group(1))
        await expect(visitor.get_by_text("g•••@example.com")).to_be_visible()
        await visitor.get_by_role("button", name="Unsubscribe").click()
        await expect(visitor.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
        later = await asyncio.to_thread(
            _tick, server, start - timedelta(minutes=10), "grace@example.com"
        )
        assert len(later) == len(sent), "an email went out after unsubscribing"
        await context.close()
