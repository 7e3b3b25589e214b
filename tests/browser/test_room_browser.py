"""The attendee's live room in a real browser: a real web process, a really transcoded video, the
Socket.IO hub, and (over Python Socket.IO clients) a second attendee and a team member."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from tests.browser.conftest import DESKTOP, MOBILE, EncoreServer, open_page
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
from tests.realtime.live import Peer

pytestmark = pytest.mark.browser

JOURNEY_TIMEOUT_S = 240
VIDEO_SECONDS = 150
LATE_BY_S = 30  # the live session started this long before its attendees arrive
WAIT_FOR_START_S = 12  # the waiting room's session starts this long after it is created
POLL_AT_S = 5
OFFER_AT_S = 52
REQUIRED_AT_S = 9
POLL = "Where do you work from?"
OFFER = "Launch offer"
MESSAGE = "Is there a discount for teams?"
REPLY = "Yes: ask us for the team plan."
ANNOUNCEMENT = "Stay until the end for a surprise"
CHAT_AT = "Greetings from the third second"

# Runs with the web process's settings: a recording transcoded for real, a webinar showing it
# with a poll and a timed offer, and a signed-in team member; prints the ids and the team's
# session token.
_WEBINAR_SCRIPT = """
import sys
from datetime import UTC, datetime
from app.models import Interaction, Role, Schedule, SessionStage, Webinar, WebinarStatus
from app.services import auth, team
from tests.browser.room_setup import run_script, transcoded_video

async def main(settings):
    seconds, poll_at, offer_at, offer_url = (
        float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    )
    video = await transcoded_video(settings, seconds)
    webinar = await Webinar.create(
        slug="room-webinar", title="Room webinar", status=WebinarStatus.PUBLISHED,
        published_at=datetime.now(UTC), chat_mode="private", video=video,
        theme={"primary": "#0f766e"},
    )
    poll = await Interaction.create(
        webinar=webinar, kind="poll", title="Where do you work from?",
        config={"options": ["Home", "Office"], "multiple": False},
        opens_at_seconds=poll_at,
    )
    # Sessions that ended less than two hours ago can be watched again.
    await Schedule.create(
        webinar=webinar, kind="specific", timezone="UTC",
        rules={"dates": ["2031-01-01T10:00"], "replay_hours": 2},
    )
    await Interaction.create(
        webinar=webinar, kind="offer", title="Launch offer",
        config={"text": "Half price for the first month.", "button": "Get the offer",
                "url": offer_url, "countdown_seconds": 600},
        opens_at_seconds=offer_at, position=1,
    )
    user = await team.create_user(
        email="pat@example.com", name="Pat Presenter",
        password="violet staple orbit lantern", role=Role.OWNER,
    )
    staff = await auth.start_session(
        user=user, stage=SessionStage.FULL, ip="127.0.0.1", user_agent="test"
    )
    return {"webinar_id": webinar.id, "poll_id": poll.id,
            "duration": video.duration_seconds, "staff": staff}

run_script(main)
"""

# One JSON argument: a session of the webinar (of `kind`) starting `offset` seconds from now
# (negative: it started that long ago) and `count` registrants of it; the last of them may have
# written a public chat message (`chat`: body and moment), and the session may have a required
# poll of its own (`required_at`). Prints the session, its start and the join tokens.
_SESSION_SCRIPT = """
import json, sys
from datetime import UTC, datetime, timedelta
from app.models import ChatMessage, Contact, Interaction, WebinarSession
from tests.browser.room_setup import registrant_with_token, run_script

async def main(settings):
    wanted = json.loads(sys.argv[1])
    webinar_id, offset, count = wanted["webinar_id"], wanted["offset"], wanted["count"]
    kind = wanted.get("kind", "scheduled")
    starts_at = datetime.now(UTC) + timedelta(seconds=offset)
    session = await WebinarSession.create(webinar_id=webinar_id, starts_at=starts_at, kind=kind)
    people = []
    for index in range(count):
        contact = await Contact.create(
            email=f"attendee{session.id}-{index}@example.com", name=f"Ada{index} Lovelace"
        )
        registrant, token = await registrant_with_token(
            contact, webinar_id=webinar_id, session=session, timezone="Europe/Berlin"
        )
        people.append({"token": token, "registrant_id": registrant.id})
    if "chat" in wanted:
        body, seconds = wanted["chat"]
        await ChatMessage.create(
            session=session, registrant_id=people[-1]["registrant_id"], body=body,
            visibility="public", sender_name="Grace", media_seconds=seconds,
        )
    if "required_at" in wanted:
        await Interaction.create(
            webinar_id=webinar_id, session=session, kind="rating", title="Rate the sound",
            config={"scale": 5}, opens_at_seconds=wanted["required_at"], required=True,
            position=2,
        )
    return {"session_id": session.id, "start_ms": int(starts_at.timestamp() * 1000),
            "people": people}

run_script(main)
"""

_NOT_ACTIVATED = """
Object.defineProperty(navigator, "userActivation", {
  get: () => ({ hasBeenActive: false, isActive: false }),
});
"""


async def _session(server: EncoreServer, made: dict[str, Any], **wanted: Any) -> dict[str, Any]:
    wanted["webinar_id"] = made["webinar_id"]
    session: dict[str, Any] = await run_json(server, _SESSION_SCRIPT, json.dumps(wanted))
    return session


async def _next_chat(peer: Peer, body: str) -> dict[str, Any]:
    async with asyncio.timeout(STEP_TIMEOUT_S):
        while True:
            batch = await peer.next_event("chat")
            for message in batch["messages"]:
                if message["body"] == body:
                    return dict(message)


async def test_the_room_in_every_mode(browser: Browser, server: EncoreServer) -> None:
    peers: list[Peer] = []
    try:
        async with asyncio.timeout(JOURNEY_TIMEOUT_S):
            made: dict[str, Any] = await run_json(
                server,
                _WEBINAR_SCRIPT,
                VIDEO_SECONDS,
                POLL_AT_S,
                OFFER_AT_S,
                f"{server.base_url}/readyz",
            )
            assert made["duration"] > OFFER_AT_S + 30, made
            await _waiting_room(browser, server, made)
            await _clock_rounds(browser, server, made)
            await _late_joiner(browser, server, made, peers)
            await _replay(browser, server, made)
            await _on_demand(browser, server, made)
            await _ended(browser, server, made)
    finally:
        for peer in peers:
            await peer.close()


async def _waiting_room(browser: Browser, server: EncoreServer, made: dict[str, Any]) -> None:
    """The waiting room counts down and turns into the live room by itself at the start."""
    soon = await _session(server, made, offset=WAIT_FOR_START_S, count=1)
    page, console = await open_page(browser, viewport=MOBILE)
    await page.goto(f"{server.base_url}/j/{soon['people'][0]['token']}")
    countdown = page.locator("[data-countdown]")
    await expect(countdown).to_have_text(re.compile(r"Starts in \d+ seconds?"))
    await expect(page.locator("[data-room-chat]")).to_be_visible()
    assert await page.locator(VIDEO).count() == 0
    await expect(page.locator(VIDEO)).to_have_count(1, timeout=(WAIT_FOR_START_S + 8) * 1000)
    await expect(countdown).to_be_hidden()
    await playing(page)
    await wait_near_live(page, soon["start_ms"])
    assert await page.locator(VIDEO).evaluate("(video) => video.currentTime") < 10
    assert console.errors == [], console.errors
    await page.context.close()


@dataclass
class _Rounds:
    """The page's clock rounds seen on its WebSocket: when each was sent and answered."""

    delay_s: float  # how long each answer is held back on its way to the page
    sent: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)

    async def route(self, page: Page) -> None:
        """Pass the page's WebSocket through, noting its clock rounds and delaying their answers."""
        loop = asyncio.get_running_loop()

        def routed(ws: WebSocketRoute) -> None:
            server = ws.connect_to_server()

            def from_page(message: str | bytes) -> None:
                if isinstance(message, str) and message.startswith("42") and '"sync"' in message:
                    self.sent.append(loop.time())
                server.send(message)

            def from_server(message: str | bytes) -> None:
                if isinstance(message, str) and message.startswith("43") and "server_ms" in message:
                    self.answered.append(loop.time())
                    loop.call_later(self.delay_s, ws.send, message)
                    return
                ws.send(message)

            ws.on_message(from_page)
            server.on_message(from_server)

        await page.route_web_socket(re.compile(r"/socket\.io/"), routed)

    async def settled(self) -> None:
        """Wait until the page has sent no round for a while (they go 200 ms apart)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(STEP_TIMEOUT_S):
            while True:
                if self.sent and loop.time() - self.sent[-1] >= 2.0:
                    return
                await asyncio.sleep(0.1)


async def _clock_rounds(browser: Browser, server: EncoreServer, made: dict[str, Any]) -> None:
    """The page measures the server's clock in rounds: up to five, until one comes back fast."""
    live = await _session(server, made, offset=-LATE_BY_S, count=2)
    for person, delay_s, wanted in ((0, 0.0, range(1, 5)), (1, 0.15, range(5, 6))):
        rounds = _Rounds(delay_s)
        page, console = await open_page(browser, viewport=DESKTOP)
        await rounds.route(page)
        await page.goto(f"{server.base_url}/j/{live['people'][person]['token']}")
        await playing(page)
        await rounds.settled()
        # Each round waits for the answer to the one before; with every answer held back past
        # the page's bar all five go, and otherwise the first quick answer ends them.
        assert len(rounds.sent) in wanted, (delay_s, rounds.sent)
        assert len(rounds.answered) == len(rounds.sent)
        gaps = [b - a for a, b in zip(rounds.sent, rounds.sent[1:], strict=False)]
        assert all(gap >= 0.2 + delay_s - 0.05 for gap in gaps), gaps
        await wait_near_live(page, live["start_ms"])
        assert console.errors == [], console.errors
        await page.context.close()


async def _late_joiner(
    browser: Browser, server: EncoreServer, made: dict[str, Any], peers: list[Peer]
) -> None:
    """A late joiner plays where the session is, answers, chats, and sees the offer in time."""
    live = await _session(server, made, offset=-LATE_BY_S, count=2)
    session_id = live["session_id"]
    start_ms = live["start_ms"]
    ada, other = live["people"]
    page, console = await open_page(browser, viewport=DESKTOP)
    # As after opening the link from an email: the visitor has not done anything on the page
    # yet (the automated browser reports that they have).
    await page.context.add_init_script(script=_NOT_ACTIVATED)
    await page.goto(f"{server.base_url}/j/{ada['token']}")
    await expect(page.get_by_role("heading", name="Room webinar", level=1)).to_be_visible()
    video = page.locator(VIDEO)
    await expect(video).to_have_attribute("data-player", "hls.js")
    await playing(page)
    await wait_near_live(page, start_ms)
    assert abs(await behind_live(page, start_ms)) < TOLERANCE_S
    assert await video.evaluate("(video) => video.controls") is False
    await expect(page.locator(".room-live-badge")).to_have_text("Live")
    # Browsers start without sound until the visitor does something: one click turns it on.
    sound = page.get_by_role("button", name="Click for sound")
    await expect(sound).to_be_visible()
    await sound.click()
    await expect(sound).to_be_hidden()
    assert await video.evaluate("(video) => video.muted") is False
    await expect(page.get_by_role("button", name="Mute")).to_be_visible()

    # Seeking ahead of the live position snaps back to it.
    jumped = await video.evaluate(
        "(video) => { video.currentTime += 30; return video.currentTime; }"
    )
    assert jumped - (await page.evaluate(f"() => (Date.now() - {start_ms}) / 1000")) > 20
    await wait_near_live(page, start_ms)
    assert await behind_live(page, start_ms) > -TOLERANCE_S
    await expect(page.get_by_role("button", name="Back to live")).to_be_hidden()

    # The poll opened before this attendee arrived; the offer's moment has not come yet.
    poll = card(page, POLL)
    await expect(poll).to_be_visible()
    offer = card(page, OFFER)
    await expect(offer).to_have_count(0)
    await poll.get_by_label("Home").check()
    await poll.get_by_role("button", name="Vote").click()
    await expect(poll).to_contain_text("Thank you for your answer.")
    await expect(poll.locator(".room-result").first).to_contain_text("100%")
    await expect(poll.locator(".room-result").first).to_contain_text("1 vote")
    await expect(poll).to_contain_text("1 answer in total")
    await expect(poll.locator(".room-result.is-mine")).to_contain_text("Home")

    # Another attendee's vote reaches the page as live results.
    second = Peer()
    peers.append(second)
    await second.connect(server.base_url, join=other["token"])
    await second.next_event("room")
    answer = await second.call("answer", {"interaction_id": made["poll_id"], "answer": 1})
    assert answer["ok"], answer
    await expect(poll.locator(".room-result").nth(1)).to_contain_text("50%")
    await expect(poll).to_contain_text("2 answers in total")

    # The chat: the attendee's message appears in their chat; the team answers in private.
    chat = page.locator("[data-room-chat]")
    await expect(chat).to_contain_text("Only our team sees your messages.")
    team_note = page.get_by_text("Nobody from our team is online right now")
    await expect(team_note).to_be_visible()
    presenter = Peer()
    peers.append(presenter)
    await presenter.connect(server.base_url, token=made["staff"])
    await presenter.next_event("hello")
    await expect(team_note).to_be_hidden()
    await page.get_by_label("Your message").fill(MESSAGE)
    await page.get_by_label("Your message").press("Enter")
    mine = page.locator("[data-chat-list] .chat-msg-own")
    await expect(mine).to_contain_text(MESSAGE)
    await expect(mine).to_contain_text("You")
    await expect(page.get_by_label("Your message")).to_have_value("")
    sent = await _next_chat(presenter, MESSAGE)
    assert sent["registrant_id"] == ada["registrant_id"]
    replied = await presenter.call(
        "chat:reply",
        {
            "session_id": session_id,
            "body": REPLY,
            "reply_to": sent["id"],
            "registrant_id": ada["registrant_id"],
            "public": False,
        },
    )
    assert replied["ok"], replied
    answer_item = page.locator("[data-chat-list] .chat-msg-team")
    await expect(answer_item).to_contain_text(REPLY)
    await expect(answer_item).to_contain_text("Team")
    await expect(answer_item).to_contain_text("In reply to You")

    # An announcement from the presenter shows over the player until dismissed.
    pushed = await presenter.call(
        "push",
        {"session_id": session_id, "kind": "announcement", "title": ANNOUNCEMENT, "config": {}},
    )
    assert pushed["ok"], pushed
    banner = page.locator("[data-room-announcement]")
    await expect(banner).to_contain_text(ANNOUNCEMENT)
    await banner.get_by_role("button", name="Dismiss").click()
    await expect(banner).to_be_hidden()

    # The offer appears at its moment of the video, with its countdown, and opens in a new tab.
    await expect(offer).to_be_visible(timeout=(OFFER_AT_S - LATE_BY_S + 10) * 1000)
    at = await video.evaluate("(video) => video.currentTime")
    assert at >= OFFER_AT_S - 1.0, at
    await expect(offer).to_contain_text("Half price for the first month.")
    await expect(offer.locator(".room-offer-timer")).to_have_text(
        re.compile(r"Offer ends in 9:\d\d")
    )
    async with page.context.expect_page() as opened:
        await offer.get_by_role("link", name=re.compile("Get the offer")).click()
    tab = await opened.value
    await tab.wait_for_load_state()
    assert tab.url == f"{server.base_url}/readyz"
    await tab.close()

    await wait_near_live(page, start_ms)
    # Wide screens: the chat beside the player, not below it.
    player_box = await page.locator("[data-room-player]").bounding_box()
    chat_box = await page.locator("[data-room-chat]").bounding_box()
    assert player_box is not None
    assert chat_box is not None
    assert chat_box["x"] >= player_box["x"] + player_box["width"], (player_box, chat_box)
    assert console.errors == [], console.errors

    # The web process restarts: the page says so, connects again and carries on from the room
    # the server sends anew (the player keeps its place; the chat is the stored one).
    for peer in peers:
        await peer.close()
    await asyncio.to_thread(server.stop)
    status = page.locator("[data-room-status]")
    await expect(status).to_have_text("The connection was lost. Reconnecting…")
    await asyncio.to_thread(server.start)
    await expect(status).to_be_hidden(timeout=20_000)
    await expect(mine).to_contain_text(MESSAGE)
    await expect(answer_item).to_contain_text(REPLY)
    await expect(poll).to_contain_text("2 answers in total")
    await playing(page)
    await wait_near_live(page, start_ms)
    # While the server was away the browser logged the refused socket connections, nothing else.
    unexpected = [e for e in console.errors if "WebSocket connection to" not in e]
    assert unexpected == [], unexpected
    await page.context.close()


async def _replay(browser: Browser, server: EncoreServer, made: dict[str, Any]) -> None:
    """A replay seeks freely; chat and interactions appear at their moments of the video."""
    ended_ago = made["duration"] + 60
    replay = await _session(server, made, offset=-ended_ago, count=2, chat=[CHAT_AT, 3])
    page, console = await open_page(browser, viewport=DESKTOP)
    await page.goto(f"{server.base_url}/j/{replay['people'][0]['token']}")
    start = page.get_by_role("button", name="Start watching")
    await expect(start).to_be_visible()
    video = page.locator(VIDEO)
    assert await video.evaluate("(video) => video.controls") is True
    chat_list = page.locator("[data-chat-list]")
    await expect(chat_list).not_to_contain_text(CHAT_AT)
    await expect(page.locator("[data-interaction]")).to_have_count(0)
    await start.click()
    await playing(page)
    await expect(chat_list).to_contain_text(CHAT_AT, timeout=STEP_TIMEOUT_S * 1000)
    assert await video.evaluate("(video) => video.currentTime") >= 2.5
    await video.evaluate("(video) => { video.currentTime = 100; }")
    await page.wait_for_function(
        f"""() => {{
            const video = document.querySelector("{VIDEO}");
            return !video.seeking && video.currentTime >= 100 && !video.paused;
        }}""",
        timeout=STEP_TIMEOUT_S * 1000,
    )
    poll = card(page, POLL)
    await expect(poll).to_contain_text("Answers were collected during the live session.")
    await expect(poll).to_contain_text("0 answers in total")
    await expect(poll.get_by_role("button", name="Vote")).to_have_count(0)
    await expect(card(page, OFFER)).to_be_visible()
    assert await video.evaluate("(video) => video.currentTime") >= 100
    assert console.errors == [], console.errors
    # Leaving tells the server where the player was; coming back continues from there.
    await page.close()
    page = await page.context.new_page()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    await page.goto(f"{server.base_url}/j/{replay['people'][0]['token']}")
    again = page.get_by_role("button", name="Continue watching")
    await expect(again).to_be_visible()
    await again.click()
    await playing(page)
    assert await page.locator(VIDEO).evaluate("(video) => video.currentTime") >= 99
    assert console.errors == [], console.errors
    await page.context.close()


async def _on_demand(browser: Browser, server: EncoreServer, made: dict[str, Any]) -> None:
    """On demand starts at the first press of play; a pause holds the place."""
    watch = await _session(
        server, made, offset=0, count=1, kind="on_demand", required_at=REQUIRED_AT_S
    )
    page, console = await open_page(browser, viewport=DESKTOP)
    await page.goto(f"{server.base_url}/j/{watch['people'][0]['token']}")
    start = page.get_by_role("button", name="Start watching")
    await expect(start).to_be_visible()
    video = page.locator(VIDEO)
    assert await video.evaluate("(video) => video.paused") is True
    await start.click()
    await playing(page)
    assert await video.evaluate("(video) => video.currentTime") < 3
    await page.get_by_role("button", name="Pause").click()
    paused_at = await video.evaluate("(video) => video.paused ? video.currentTime : -1")
    assert paused_at >= 0
    await asyncio.sleep(3)
    await page.get_by_role("button", name="Play").click()
    await playing(page)
    resumed_at = await video.evaluate("(video) => video.currentTime")
    assert paused_at <= resumed_at < paused_at + 1.5, (paused_at, resumed_at)
    # The server follows this attendee's own clock: the poll at its moment takes the answer.
    poll = card(page, POLL)
    await expect(poll).to_be_visible(timeout=(POLL_AT_S + 5) * 1000)
    await poll.get_by_label("Office").check()
    await poll.get_by_role("button", name="Vote").click()
    await expect(poll).to_contain_text("Thank you for your answer.")
    await expect(poll.locator(".room-result.is-mine")).to_contain_text("Office")

    # A required rating stops the video until it is answered, then the video goes on.
    rating = card(page, "Rate the sound")
    await expect(rating).to_be_visible(timeout=(REQUIRED_AT_S + 5) * 1000)
    hold = page.get_by_text("Please answer to continue watching.")
    await expect(hold).to_be_visible()
    await page.wait_for_function(
        f'() => document.querySelector("{VIDEO}").paused', timeout=STEP_TIMEOUT_S * 1000
    )
    await page.get_by_role("button", name="Play").click()
    await asyncio.sleep(0.5)
    assert await video.evaluate("(video) => video.paused") is True
    await rating.get_by_label("4 of 5").check()
    await rating.get_by_role("button", name="Send answer").click()
    await expect(rating).to_contain_text("Average: 4 of 5")
    await expect(hold).to_be_hidden()
    await playing(page)
    assert console.errors == [], console.errors
    await page.context.close()


async def _ended(browser: Browser, server: EncoreServer, made: dict[str, Any]) -> None:
    """After the session and its replay window: the end screen."""
    gone = await _session(server, made, offset=-(made["duration"] + 3 * 3600), count=1)
    page, console = await open_page(browser, viewport=DESKTOP)
    await page.goto(f"{server.base_url}/j/{gone['people'][0]['token']}")
    await expect(page.get_by_role("heading", name="Thanks for watching")).to_be_visible()
    await expect(page.locator("[data-room-notice]")).to_be_hidden()
    assert await page.locator(VIDEO).count() == 0
    await expect(page.locator("[data-interaction]")).to_have_count(0)
    assert console.errors == [], console.errors
    await page.context.close()
