"""The presenter console in a real browser against a real web process, with attendees connected
over Socket.IO from Python: the inbox, a private reply, approval in a moderated room, a pushed
poll and its live results."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import ACTION_TIMEOUT_MS, DESKTOP, ConsoleWatch, EncoreServer
from tests.realtime.live import Peer

pytestmark = pytest.mark.browser

JOURNEY_TIMEOUT_S = 150
STEP_TIMEOUT_S = 10
EMAIL = "olivia@example.com"
PASSWORD = "violet staple orbit lantern"
ZONE = "America/New_York"
QUESTION = "Will there be a recording afterwards?"
REPLY = "Yes, everyone gets the recording by email tomorrow."
FOLLOW_UP = "Thank you, that helps!"
LEAVING = "I have to leave early, sorry."
LATER = "No problem, the recording is on its way to you."
PUBLIC = "Hello from Lisbon, everyone!"

# Runs with the web process's settings: a webinar in private chat mode whose session started
# five minutes ago, and two registrants of it; prints the ids, the start and the join tokens.
_SESSION_SCRIPT = """
import asyncio, json
from datetime import UTC, datetime, timedelta
from app import db
from app.models import Contact, Registrant, Webinar, WebinarSession, WebinarStatus
from app.services import crypto
from app.settings import load_or_exit

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        webinar = await Webinar.create(
            slug="console-webinar", title="Console webinar", status=WebinarStatus.PUBLISHED,
            published_at=now, chat_mode="private",
        )
        session = await WebinarSession.create(
            webinar=webinar, starts_at=now - timedelta(minutes=5), kind="scheduled"
        )
        tokens = {}
        for key, name in (("ann", "Ann Example"), ("bob", "Bob Other")):
            contact = await Contact.create(email=f"{key}@example.com", name=name)
            token = crypto.new_token()
            await Registrant.create(
                contact=contact, webinar=webinar, session=session,
                join_token_hash=crypto.hash_token(token), join_token_sealed=crypto.seal(token),
            )
            tokens[key] = token
        print(json.dumps({
            "webinar_id": webinar.id, "session_id": session.id,
            "start": session.starts_at.isoformat(), "tokens": tokens,
        }))
    finally:
        await db.close_db()

asyncio.run(main())
"""

_MODERATED_SCRIPT = """
import asyncio, sys
from app import db
from app.models import Webinar
from app.settings import load_or_exit

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        await Webinar.filter(id=int(sys.argv[1])).update(chat_mode="moderated")
    finally:
        await db.close_db()

asyncio.run(main())
"""

_ANALYST_SCRIPT = """
import asyncio, sys
from app import db
from app.models import Role
from app.services import team
from app.settings import load_or_exit

async def main() -> None:
    await db.init_db(load_or_exit())
    try:
        await team.create_user(
            email=sys.argv[1], name="Andy Analyst", password=sys.argv[2], role=Role.ANALYST
        )
    finally:
        await db.close_db()

asyncio.run(main())
"""

# Stands in for the browser's notification permission prompt and records what the page shows;
# counts the oscillators the page starts for its sound.
_BROWSER_HOOKS = """
(() => {
  const notes = [];
  let permission = "default";
  let asked = 0;
  class RecordedNotification {
    constructor(title, options) {
      notes.push({ title: title, body: (options && options.body) || "" });
    }
    static get permission() { return permission; }
    static requestPermission(callback) {
      asked += 1;
      permission = "granted";
      if (callback) { callback(permission); }
      return Promise.resolve(permission);
    }
    close() {}
  }
  window.Notification = RecordedNotification;
  window.consoleNotes = notes;
  window.permissionRequests = () => asked;
  const sounds = [];
  window.consoleSounds = sounds;
  if (window.AudioContext) {
    const create = window.AudioContext.prototype.createOscillator;
    window.AudioContext.prototype.createOscillator = function () {
      sounds.push(this.state);
      return create.call(this);
    };
  }
})();
"""


def _clock(moment: datetime) -> str:
    """The h:mm of a local time as an en-US page writes it."""
    return f"{moment.hour % 12 or 12}:{moment.minute:02d}"


async def _chat_to(peer: Peer, body: str, **having: Any) -> dict[str, Any]:
    """The next chat item with this body (and these values) that reaches an attendee."""
    async with asyncio.timeout(STEP_TIMEOUT_S):
        while True:
            batch = await peer.next_event("chat")
            for message in batch["messages"]:
                if message["body"] == body and all(message.get(k) == v for k, v in having.items()):
                    return dict(message)


async def _attendee(server: EncoreServer, token: str, peers: list[Peer]) -> Peer:
    peer = Peer()
    peers.append(peer)
    await peer.connect(server.base_url, join=token)
    room = await peer.next_event("room")
    assert room["session"]["mode"] == "live", room["session"]
    return peer


async def _console_page(
    browser: Browser, server: EncoreServer, email: str = EMAIL
) -> tuple[Page, ConsoleWatch]:
    context = await browser.new_context(
        viewport={"width": DESKTOP["width"], "height": DESKTOP["height"]},
        locale="en-US",
        timezone_id=ZONE,
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    await context.add_init_script(script=_BROWSER_HOOKS)
    page = await context.new_page()
    watch = ConsoleWatch()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    await page.goto(f"{server.base_url}/login")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{server.base_url}/admin")
    await page.get_by_role("link", name="Console").click()
    await expect(page).to_have_url(f"{server.base_url}/admin/console")
    await expect(page.locator("[data-connection]")).to_have_text("Connected")
    return page, watch


async def test_presenter_answers_moderates_and_pushes_a_poll(
    browser: Browser, server: EncoreServer
) -> None:
    peers: list[Peer] = []
    try:
        async with asyncio.timeout(JOURNEY_TIMEOUT_S):
            await _journey(browser, server, peers)
    finally:
        for peer in peers:
            await peer.close()


async def _journey(browser: Browser, server: EncoreServer, peers: list[Peer]) -> None:
    out = await asyncio.to_thread(server.run, "-c", _SESSION_SCRIPT)
    made = json.loads(out.strip().splitlines()[-1])
    session_id, tokens = made["session_id"], made["tokens"]
    start = datetime.fromisoformat(made["start"]).astimezone(ZoneInfo(ZONE))
    await asyncio.to_thread(
        server.create_owner, email=EMAIL, name="Olivia Owner", password=PASSWORD
    )
    page, console = await _console_page(browser, server)

    # The live session, its start in the presenter's own zone.
    session_row = page.locator(f'[data-session-id="{session_id}"]')
    await expect(session_row).to_contain_text("Console webinar")
    await expect(session_row).to_contain_text("Live now")
    await expect(session_row).to_contain_text(_clock(start))
    await expect(page.get_by_text(f"Times are in your time zone ({ZONE})")).to_be_visible()
    await expect(session_row).to_contain_text("0 online")

    # Notifications are asked for on a press of the button, never on load.
    assert await page.evaluate("window.permissionRequests()") == 0
    await page.get_by_role("button", name="Turn on desktop notifications").click()
    await expect(page.get_by_text("Desktop notifications are on.")).to_be_visible()
    assert await page.evaluate("window.permissionRequests()") == 1

    # An attendee writes to the team: it lands in the inbox, unread, with an alert.
    ann = await _attendee(server, tokens["ann"], peers)
    sent = await ann.call("chat:send", {"body": QUESTION})
    assert sent["ok"], sent
    question_id = sent["message"]["id"]
    inbox = page.locator("[data-inbox]")
    question = inbox.locator("li", has_text=QUESTION)
    await expect(question).to_contain_text("Ann Example")
    await expect(question).to_contain_text("ann@example.com")
    await expect(question).to_contain_text("Console webinar")
    await expect(question.locator(".badge-unread")).to_have_text("New")
    await expect(session_row.locator(".badge-unread")).to_have_text("1 unread")
    await expect(page.locator("[data-total-unread]")).to_have_text("1 unread")
    await expect(page).to_have_title(re.compile(r"^\(1\) Console · "))
    await expect(session_row).to_contain_text("1 online")
    notes = await page.evaluate("window.consoleNotes")
    assert notes == [{"title": "Ann Example · Console webinar", "body": QUESTION}], notes
    # The button press let the page start sound; the message played it.
    assert "running" in await page.evaluate("window.consoleSounds")

    # Opening the conversation reads it and prepares a private reply to that message.
    await question.get_by_role("button", name="Open conversation").click()
    await expect(page.locator("[data-session-title]")).to_have_text("Console webinar")
    conversation = page.locator("[data-conversation]")
    await expect(conversation).to_contain_text(QUESTION)
    await expect(session_row.locator(".badge-unread")).to_have_count(0)
    await expect(question.locator(".badge-unread")).to_have_count(0)
    await expect(page).to_have_title(re.compile(r"^Console · "))
    await expect(page.get_by_label("Privately to Ann Example")).to_be_checked()
    await expect(page.locator("[data-reply-context]")).to_contain_text(
        f"In reply to Ann Example: “{QUESTION}”"
    )
    attendee_row = page.locator("[data-attendees] li", has_text="Ann Example")
    await expect(attendee_row).to_contain_text("online")
    await expect(
        page.get_by_text("A private reply to someone who has already left the room")
    ).to_be_visible()

    await page.get_by_label("Message", exact=True).fill(REPLY)
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.locator("[data-reply-status]")).to_have_text("Sent to Ann Example.")
    answer = await _chat_to(ann, REPLY)
    assert answer["sender"] == "team"
    assert answer["visibility"] == "private"
    assert answer["reply_to"] == question_id
    assert answer["name"] == "Olivia Owner"
    reply_row = conversation.locator("li", has_text=REPLY)
    await expect(reply_row).to_contain_text("privately to Ann Example")
    await expect(page.get_by_label("Message", exact=True)).to_have_value("")

    # A message in the open session, on a visible page, is read at once and raises no alert.
    followed = await ann.call("chat:send", {"body": FOLLOW_UP})
    assert followed["ok"], followed
    follow_up = inbox.locator("li", has_text=FOLLOW_UP)
    await expect(conversation).to_contain_text(FOLLOW_UP)
    await expect(follow_up).to_be_visible()
    await expect(follow_up.locator(".badge-unread")).to_have_count(0)
    await expect(page).to_have_title(re.compile(r"^Console · "))
    assert len(await page.evaluate("window.consoleNotes")) == 1
    # The server agrees: a fresh console shows nothing unread.
    await page.reload()
    await expect(page.locator("[data-connection]")).to_have_text("Connected")
    await expect(session_row).to_contain_text("Console webinar")
    await expect(session_row.locator(".badge-unread")).to_have_count(0)
    await expect(inbox.locator("li", has_text=QUESTION)).to_be_visible()

    # An attendee who wrote and left gets the reply by email.
    bob = await _attendee(server, tokens["bob"], peers)
    assert (await bob.call("chat:send", {"body": LEAVING}))["ok"]
    leaving = inbox.locator("li", has_text=LEAVING)
    await expect(leaving.locator(".badge-unread")).to_have_text("New")
    await bob.close()
    peers.remove(bob)
    await leaving.get_by_role("button", name="Open conversation").click()
    await expect(page.get_by_label("Privately to Bob Other")).to_be_checked()
    await page.get_by_label("Message", exact=True).fill(LATER)
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.locator("[data-reply-status]")).to_have_text(
        "Sent to Bob Other, who has left the room: it was emailed to them."
    )

    # Moderated room: a public message waits in the queue until it is approved.
    await asyncio.to_thread(server.run, "-c", _MODERATED_SCRIPT, str(made["webinar_id"]))
    posted = await ann.call("chat:send", {"body": PUBLIC})
    assert posted["ok"], posted
    assert posted["message"]["visibility"] == "pending"
    queue = page.locator("[data-queue]")
    waiting = queue.locator("li", has_text=PUBLIC)
    await expect(waiting).to_contain_text("Ann Example")
    await expect(page.locator("[data-queue-count]")).to_have_text("1")
    await expect(conversation.locator("li", has_text=PUBLIC)).to_contain_text(
        "waiting for approval"
    )
    await waiting.get_by_role("button", name="Approve").click()
    approved = await _chat_to(ann, PUBLIC, visibility="public")
    assert approved["id"] == posted["message"]["id"]
    await expect(page.get_by_text("Nothing is waiting.")).to_be_visible()
    await expect(conversation.locator("li", has_text=PUBLIC)).to_contain_text("public")

    # A poll: an incomplete form is refused beside its fields and keeps what was typed.
    push = page.locator("[data-push-form]")
    await push.get_by_label("Options, one per line").fill("Yes")
    await push.get_by_role("button", name="Push now").click()
    question_field = push.get_by_label("Question")
    await expect(question_field).to_have_attribute("aria-invalid", "true")
    await expect(push.get_by_text("Write the question.")).to_be_visible()
    await expect(push.get_by_text("Give at least two options, one per line.")).to_be_visible()
    await expect(question_field).to_be_focused()
    await expect(push.get_by_label("Options, one per line")).to_have_value("Yes")

    await question_field.fill("Was this session useful?")
    await push.get_by_label("Options, one per line").fill("Yes\nNo\n\nNot sure yet")
    await push.get_by_role("button", name="Push now").click()
    await expect(push.locator("[data-push-status]")).to_have_text("Pushed to the session.")
    interaction = await ann.next_event("interaction")
    assert interaction["kind"] == "poll"
    assert interaction["title"] == "Was this session useful?"
    assert interaction["config"] == {"options": ["Yes", "No", "Not sure yet"], "multiple": False}
    result = page.locator(f'[data-interaction="{interaction["id"]}"]')
    await expect(result).to_contain_text("Was this session useful?")
    await expect(result).to_contain_text("No answers yet.")

    answered = await ann.call("answer", {"interaction_id": interaction["id"], "answer": 2})
    assert answered["ok"], answered
    await expect(result.locator(".console-facts-list")).to_contain_text("Answers1")
    bars = result.locator(".console-bars li")
    await expect(bars).to_have_count(3)
    await expect(bars.nth(2)).to_contain_text("Not sure yet")
    await expect(bars.nth(2)).to_contain_text("1 (100%)")
    await expect(bars.nth(0)).to_contain_text("0 (0%)")

    assert console.errors == [], console.errors
    await page.context.close()


async def test_an_analyst_watches_the_console_without_acting(
    browser: Browser, server: EncoreServer
) -> None:
    peers: list[Peer] = []
    try:
        async with asyncio.timeout(JOURNEY_TIMEOUT_S):
            out = await asyncio.to_thread(server.run, "-c", _SESSION_SCRIPT)
            made = json.loads(out.strip().splitlines()[-1])
            await asyncio.to_thread(
                server.create_owner, email=EMAIL, name="Olivia Owner", password=PASSWORD
            )
            analyst = "andy@example.com"
            await asyncio.to_thread(server.run, "-c", _ANALYST_SCRIPT, analyst, PASSWORD)
            page, console = await _console_page(browser, server, analyst)
            await expect(
                page.get_by_text("Your role (analyst) may watch the console")
            ).to_be_visible()

            ann = await _attendee(server, made["tokens"]["ann"], peers)
            assert (await ann.call("chat:send", {"body": QUESTION}))["ok"]
            question = page.locator("[data-inbox] li", has_text=QUESTION)
            await expect(question.locator(".badge-unread")).to_have_text("New")
            await question.get_by_role("button", name="Open conversation").click()
            conversation = page.locator("[data-conversation]")
            await expect(conversation).to_contain_text(QUESTION)
            attendee_row = page.locator("[data-attendees] li", has_text="Ann Example")
            await expect(attendee_row).to_contain_text("online")
            # Nothing to act with: no reply, moderation, restriction or push, and reading the
            # conversation leaves it unread for the moderators.
            await expect(conversation.get_by_role("button")).to_have_count(0)
            await expect(attendee_row.get_by_role("button")).to_have_count(0)
            await expect(page.locator("[data-reply-form], [data-push-form]")).to_have_count(0)
            session_row = page.locator(f'[data-session-id="{made["session_id"]}"]')
            await expect(session_row.locator(".badge-unread")).to_have_text("1 unread")
            await expect(page).to_have_title(re.compile(r"^\(1\) Console · "))
            assert console.errors == [], console.errors
            await page.context.close()
    finally:
        for peer in peers:
            await peer.close()
