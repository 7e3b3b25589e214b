"""The live room end to end with everyone in a real browser: attendees in their own browsers
and time zones, the presenter in the console in another, one real web process, a really
transcoded video, and the clock deciding when things happen."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, BrowserContext, Expect, Page

from app import i18n
from tests.browser.conftest import ACTION_TIMEOUT_MS, DESKTOP, ConsoleWatch, EncoreServer
from tests.browser.room_setup import (
    STEP_TIMEOUT_S,
    TOLERANCE_S,
    VIDEO,
    behind_live,
    card,
    playing,
    run_json,
    wait_near_live,
)

pytestmark = pytest.mark.browser

JOURNEY_TIMEOUT_S = 240
VIDEO_SECONDS = 90
LEAD_S = 25  # the session starts this long after it is created
LATE_BY_S = 8  # the late joiner arrives this long after the start
OFFER_AT_S = 45
OFFER_COUNTDOWN_S = 300
# The room checks its clock four times a second; a busy machine may add a little.
APPEAR_WITHIN_S = 2.0
# The console asks for its sessions again every 30 s: that is when a waiting one turns live.
CONSOLE_REFRESH_S = 30

EMAIL = "olivia@example.com"
PASSWORD = "violet staple orbit lantern"
PRESENTER = "Olivia Owner"
PRESENTER_ZONE = "America/New_York"
ATTENDEE_ZONE = "Europe/Berlin"
LATE_ZONE = "Asia/Tokyo"
TITLE = "Live room webinar"
OFFER = "Launch offer"
MESSAGE = "Can I share the recording with my team?"
REPLY = "Of course, the link works for everyone in your team."
POLL = "How big is your team?"
OPTIONS = ("Just me", "Two to ten", "More than ten")

# Three browsers and a web process share the machine: this module's own assertions wait as long
# as a step may (the shared default would be changed for every other module too).
expect = Expect()
expect.set_options(timeout=STEP_TIMEOUT_S * 1000)

# Runs with the web process's settings: a recording transcoded for real and a webinar showing
# it in private chat mode with a timed offer; prints the ids and the video's length.
_WEBINAR_SCRIPT = """
import sys
from datetime import UTC, datetime
from app.models import Interaction, Webinar, WebinarStatus
from tests.browser.room_setup import run_script, transcoded_video

async def main(settings):
    seconds, title, offer_title = float(sys.argv[1]), sys.argv[2], sys.argv[3]
    offer_at, countdown, offer_url = float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    video = await transcoded_video(settings, seconds)
    webinar = await Webinar.create(
        slug="live-room-webinar", title=title, status=WebinarStatus.PUBLISHED,
        published_at=datetime.now(UTC), chat_mode="private", video=video,
    )
    offer = await Interaction.create(
        webinar=webinar, kind="offer", title=offer_title,
        config={"text": "Half price for the first month.", "button": "Get the offer",
                "url": offer_url, "countdown_seconds": countdown},
        opens_at_seconds=offer_at,
    )
    return {"webinar_id": webinar.id, "offer_id": offer.id, "duration": video.duration_seconds}

run_script(main)
"""

# A session of the webinar starting `lead` seconds from now and one registrant of it per
# (name, zone) given; prints the session, its start and the registrants' join tokens.
_SESSION_SCRIPT = """
import json, sys
from datetime import UTC, datetime, timedelta
from app.models import Contact, WebinarSession
from tests.browser.room_setup import registrant_with_token, run_script

async def main(settings):
    wanted = json.loads(sys.argv[1])
    starts_at = (datetime.now(UTC) + timedelta(seconds=wanted["lead"])).replace(microsecond=0)
    session = await WebinarSession.create(
        webinar_id=wanted["webinar_id"], starts_at=starts_at, kind="scheduled"
    )
    people = []
    for index, (name, zone) in enumerate(wanted["people"]):
        contact = await Contact.create(email=f"person{index}@example.com", name=name)
        registrant, token = await registrant_with_token(
            contact, webinar_id=wanted["webinar_id"], session=session, timezone=zone
        )
        people.append({"token": token, "registrant_id": registrant.id, "name": name})
    return {"session_id": session.id, "start": starts_at.isoformat(), "people": people}

run_script(main)
"""

# The offer clicks recorded for one registrant and interaction, as JSON.
_CLICKS_SCRIPT = """
import sys
from app.models import AnalyticsEvent
from tests.browser.room_setup import run_script

async def main(settings):
    registrant_id, interaction_id = int(sys.argv[1]), int(sys.argv[2])
    rows = await AnalyticsEvent.filter(
        kind="offer_click", registrant_id=registrant_id
    ).values("session_id", "video_seconds", "data")
    return [row for row in rows if (row["data"] or {}).get("interaction_id") == interaction_id]

run_script(main)
"""

# Notes when the player and each interaction card first appear on the page (ms since the epoch),
# so a test can tell that something did not come too early even if it looked only afterwards.
_APPEARANCES = """
(() => {
  const seen = {};
  window.appeared = seen;
  const note = (node) => {
    if (!(node instanceof Element)) { return; }
    const found = [node, ...node.querySelectorAll("[data-room-player], [data-interaction]")];
    for (const element of found) {
      let key = null;
      if (element.hasAttribute("data-room-player")) { key = "player"; }
      if (element.hasAttribute("data-interaction")) {
        key = "interaction:" + element.getAttribute("data-interaction");
      }
      if (key && !(key in seen)) { seen[key] = Date.now(); }
    }
  };
  new MutationObserver((changes) => {
    for (const change of changes) { change.addedNodes.forEach(note); }
  }).observe(document, { childList: true, subtree: true });
})();
"""


def _clock(moment: datetime) -> str:
    """The h:mm of a local time as an en-US page writes it."""
    return f"{moment.hour % 12 or 12}:{moment.minute:02d}"


async def _context(browser: Browser, *, zone: str, locale: str) -> BrowserContext:
    context = await browser.new_context(
        viewport={"width": DESKTOP["width"], "height": DESKTOP["height"]},
        locale=locale,
        timezone_id=zone,
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    return context


async def _page(context: BrowserContext) -> tuple[Page, ConsoleWatch]:
    page = await context.new_page()
    watch = ConsoleWatch()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    return page, watch


async def _attendee(
    browser: Browser, server: EncoreServer, token: str, zone: str
) -> tuple[Page, ConsoleWatch]:
    context = await _context(browser, zone=zone, locale="en-GB")
    await context.add_init_script(script=_APPEARANCES)
    page, watch = await _page(context)
    await page.goto(f"{server.base_url}/j/{token}")
    await expect(page.get_by_role("heading", name=TITLE, level=1)).to_be_visible()
    return page, watch


async def _console(browser: Browser, server: EncoreServer) -> tuple[Page, ConsoleWatch]:
    context = await _context(browser, zone=PRESENTER_ZONE, locale="en-US")
    page, watch = await _page(context)
    await page.goto(f"{server.base_url}/login")
    await page.get_by_label("Email address").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{server.base_url}/admin")
    await page.get_by_role("link", name="Console").click()
    await expect(page).to_have_url(f"{server.base_url}/admin/console")
    await expect(page.locator("[data-connection]")).to_have_text("Connected")
    return page, watch


async def _session_seconds(page: Page, start_ms: int) -> float:
    """Where the session's clock is now, as this page's device tells the time."""
    value = await page.evaluate(f"() => (Date.now() - {start_ms}) / 1000")
    assert isinstance(value, int | float)
    return float(value)


async def _appeared_at(page: Page, key: str, start_ms: int) -> float:
    """Seconds into the session at which the page first showed `key` (see _APPEARANCES)."""
    value = await page.evaluate(f"(key) => window.appeared[key] - {start_ms}", key)
    assert isinstance(value, int | float), (key, value)
    return float(value) / 1000


async def test_a_live_session_with_its_presenter_and_attendees_in_browsers(
    browser: Browser, server: EncoreServer
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        await _journey(browser, server)


async def _journey(browser: Browser, server: EncoreServer) -> None:
    made = await run_json(
        server,
        _WEBINAR_SCRIPT,
        VIDEO_SECONDS,
        TITLE,
        OFFER,
        OFFER_AT_S,
        OFFER_COUNTDOWN_S,
        f"{server.base_url}/readyz",
    )
    assert made["duration"] > OFFER_AT_S + 30, made
    await asyncio.to_thread(server.create_owner, email=EMAIL, name=PRESENTER, password=PASSWORD)
    wanted = {
        "webinar_id": made["webinar_id"],
        "lead": LEAD_S,
        "people": [["Ada Lovelace", ATTENDEE_ZONE], ["Carl Gauss", LATE_ZONE]],
    }
    live = await run_json(server, _SESSION_SCRIPT, json.dumps(wanted))
    start = datetime.fromisoformat(live["start"])
    start_ms = int(start.timestamp() * 1000)
    ada, carl = live["people"]
    session_id = live["session_id"]

    # The presenter has the console open before the start: the session is listed as waiting,
    # its start in the presenter's own zone.
    console, console_errors = await _console(browser, server)
    session_row = console.locator(f'[data-session-id="{session_id}"]')
    await expect(session_row).to_contain_text(TITLE)
    await expect(session_row).to_contain_text("Starting soon")
    clock = _clock(start.astimezone(ZoneInfo(PRESENTER_ZONE)))
    await expect(session_row).to_contain_text(re.compile(rf"Starts .*\b{clock}\b"))
    await expect(
        console.get_by_text(f"Times are in your time zone ({PRESENTER_ZONE})")
    ).to_be_visible()
    await expect(session_row).to_contain_text("0 online")

    # The attendee opens the link before the start: a waiting room in their zone that counts down.
    page, page_errors = await _attendee(browser, server, ada["token"], ATTENDEE_ZONE)
    berlin = ZoneInfo(ATTENDEE_ZONE)
    waiting = page.locator("[data-room-waiting]")
    await expect(waiting).to_contain_text(i18n.format_when(start, berlin, "en"))
    await expect(waiting).to_contain_text(f"Time zone: {i18n.zone_label(berlin, start)}")
    countdown = page.locator("[data-countdown]")
    await expect(countdown).to_have_text(re.compile(r"Starts in \d+ seconds"))
    first = int(re.findall(r"\d+", await countdown.inner_text())[0])
    assert 0 < first <= LEAD_S, first
    await expect(countdown).not_to_have_text(f"Starts in {first} seconds", timeout=3000)
    later = int(re.findall(r"\d+", await countdown.inner_text())[0])
    assert later < first, (first, later)
    assert await page.locator(VIDEO).count() == 0
    # The presenter sees them arrive, while the session still waits.
    await expect(session_row).to_contain_text("1 online")
    await expect(session_row).to_contain_text("Starting soon")
    # Someone from the team is in the console: the attendee is not told nobody is there.
    await expect(page.get_by_text("Nobody from our team is online right now")).to_be_hidden()

    # At the start, playback begins by itself where the session is.
    await expect(page.locator(VIDEO)).to_have_count(1, timeout=(LEAD_S + 10) * 1000)
    await expect(countdown).to_be_hidden()
    player_at = await _appeared_at(page, "player", start_ms)
    assert -1.0 <= player_at <= APPEAR_WITHIN_S, player_at
    await playing(page)
    await wait_near_live(page, start_ms)
    assert abs(await behind_live(page, start_ms)) < TOLERANCE_S
    assert await page.locator(VIDEO).evaluate("(video) => video.currentTime") < 10
    await expect(page.locator(".room-live-badge")).to_have_text("Live")

    # A late joiner plays at the session's position.
    await asyncio.sleep(max(0.0, LATE_BY_S - await _session_seconds(page, start_ms)))
    late, late_errors = await _attendee(browser, server, carl["token"], LATE_ZONE)
    await playing(late)
    await wait_near_live(late, start_ms)
    assert abs(await behind_live(late, start_ms)) < TOLERANCE_S
    assert await late.locator(VIDEO).evaluate("(video) => video.currentTime") >= LATE_BY_S - 1
    await expect(late.locator("[data-room-waiting]")).to_have_count(0)
    await expect(session_row).to_contain_text("2 online")

    # The console notices the start at its next look at the sessions.
    await expect(session_row).to_contain_text("Live now", timeout=(CONSOLE_REFRESH_S + 5) * 1000)

    # The attendee writes to the team; it reaches the presenter's inbox, unread.
    box = page.get_by_label("Your message")
    await box.fill(MESSAGE)
    await box.press("Enter")
    mine = page.locator("[data-chat-list] .chat-msg-own")
    await expect(mine).to_contain_text(MESSAGE)
    await expect(box).to_have_value("")
    # The message's time is shown in the attendee's own zone.
    stamp = mine.locator("time")
    written = datetime.fromisoformat(
        (await stamp.get_attribute("datetime") or "").replace("Z", "+00:00")
    ).astimezone(berlin)
    shown = await stamp.inner_text()
    assert f"{written.minute:02d}" in shown, shown
    assert re.match(rf"0?({written.hour}|{written.hour % 12 or 12}):", shown), (shown, written)

    question = console.locator("[data-inbox] li", has_text=MESSAGE)
    await expect(question).to_contain_text(ada["name"])
    await expect(question).to_contain_text(TITLE)
    await expect(question.locator(".badge-unread")).to_have_text("New")
    await expect(session_row.locator(".badge-unread")).to_have_text("1 unread")

    # The presenter opens the conversation (which reads it) and replies privately.
    await question.get_by_role("button", name="Open conversation").click()
    conversation = console.locator("[data-conversation]")
    await expect(conversation).to_contain_text(MESSAGE)
    await expect(question.locator(".badge-unread")).to_have_count(0)
    await expect(session_row.locator(".badge-unread")).to_have_count(0)
    await expect(console.locator("[data-attendees] li", has_text=ada["name"])).to_contain_text(
        "online"
    )
    await expect(console.get_by_label(f"Privately to {ada['name']}")).to_be_checked()
    await console.get_by_label("Message", exact=True).fill(REPLY)
    await console.get_by_role("button", name="Send", exact=True).click()
    await expect(console.locator("[data-reply-status]")).to_have_text(f"Sent to {ada['name']}.")
    answer = page.locator("[data-chat-list] .chat-msg-team")
    await expect(answer).to_contain_text(REPLY)
    await expect(answer).to_contain_text("Team")
    await expect(answer).to_contain_text("In reply to You")
    # A private conversation stays between the attendee and the team.
    late_chat = late.locator("[data-chat-list]")
    await expect(late_chat).not_to_contain_text(MESSAGE)
    await expect(late_chat).not_to_contain_text(REPLY)

    # The offer's moment has not come yet.
    offer = card(page, OFFER)
    now_at = await _session_seconds(page, start_ms)
    assert now_at < OFFER_AT_S - 1, f"the steps before the offer took until {now_at:.1f} s"
    await expect(offer).to_have_count(0)

    # The presenter pushes a poll; both attendees get it, answer and see the results.
    push = console.locator("[data-push-form]")
    await push.get_by_label("Question").fill(POLL)
    await push.get_by_label("Options, one per line").fill("\n".join(OPTIONS))
    await push.get_by_role("button", name="Push now").click()
    await expect(push.locator("[data-push-status]")).to_have_text("Pushed to the session.")
    result = console.locator("[data-results] .console-result", has_text=POLL)
    await expect(result).to_contain_text("No answers yet.")

    poll = card(page, POLL)
    await expect(poll).to_be_visible()
    await poll.get_by_label(OPTIONS[1]).check()
    await poll.get_by_role("button", name="Vote").click()
    await expect(poll).to_contain_text("Thank you for your answer.")
    await expect(poll.locator(".room-result.is-mine")).to_contain_text(OPTIONS[1])
    await expect(poll.locator(".room-result").nth(1)).to_contain_text("100%")
    await expect(poll).to_contain_text("1 answer in total")
    bars = result.locator(".console-bars li")
    await expect(result.locator(".console-facts-list")).to_contain_text("Answers1")
    await expect(bars.nth(1)).to_contain_text("1 (100%)")

    late_poll = card(late, POLL)
    await expect(late_poll).to_be_visible()
    await late_poll.get_by_label(OPTIONS[2]).check()
    await late_poll.get_by_role("button", name="Vote").click()
    await expect(late_poll).to_contain_text("2 answers in total")
    # Both the first attendee's results and the presenter's follow live.
    await expect(poll).to_contain_text("2 answers in total")
    await expect(poll.locator(".room-result").nth(1)).to_contain_text("50%")
    await expect(poll.locator(".room-result").nth(2)).to_contain_text("50%")
    await expect(result.locator(".console-facts-list")).to_contain_text("Answers2")
    await expect(bars.nth(1)).to_contain_text("1 (50%)")
    await expect(bars.nth(2)).to_contain_text("1 (50%)")
    await expect(bars.nth(0)).to_contain_text("0 (0%)")

    # The offer appears at its moment of the video, not before, with its countdown.
    now_at = await _session_seconds(page, start_ms)
    assert now_at < OFFER_AT_S - 0.5, f"the poll took until {now_at:.1f} s"
    await expect(offer).to_have_count(0)
    await expect(offer).to_be_visible(timeout=int(OFFER_AT_S - now_at + 10) * 1000)
    offer_id = await offer.get_attribute("data-interaction")
    assert offer_id == str(made["offer_id"]), offer_id
    offer_at = await _appeared_at(page, f"interaction:{offer_id}", start_ms)
    assert OFFER_AT_S - 0.5 <= offer_at <= OFFER_AT_S + APPEAR_WITHIN_S, offer_at
    playing_at = await page.locator(VIDEO).evaluate("(video) => video.currentTime")
    assert playing_at >= OFFER_AT_S - TOLERANCE_S, playing_at
    await expect(offer).to_contain_text("Half price for the first month.")
    timer = offer.locator(".room-offer-timer")
    await expect(timer).to_have_text(re.compile(r"Offer ends in (5:00|4:5\d)"))
    ticking = await timer.inner_text()
    await expect(timer).not_to_have_text(ticking, timeout=3000)

    # Opening the offer goes to its page in a new tab and is counted.
    async with page.context.expect_page() as opened:
        await offer.get_by_role("link", name=re.compile("Get the offer")).click()
    tab = await opened.value
    await tab.wait_for_load_state()
    assert tab.url == f"{server.base_url}/readyz"
    await tab.close()
    clicks: list[dict[str, Any]] = []
    async with asyncio.timeout(STEP_TIMEOUT_S):
        while not clicks:
            clicks = await run_json(server, _CLICKS_SCRIPT, ada["registrant_id"], made["offer_id"])
    assert len(clicks) == 1, clicks
    assert clicks[0]["session_id"] == session_id, clicks
    assert OFFER_AT_S <= clicks[0]["video_seconds"] < OFFER_AT_S + STEP_TIMEOUT_S, clicks

    # Both attendees are still where the session is.
    await wait_near_live(page, start_ms)
    await wait_near_live(late, start_ms)
    for errors in (page_errors, late_errors, console_errors):
        assert errors.errors == [], errors.errors
    for one in (page, late, console):
        await one.context.close()
