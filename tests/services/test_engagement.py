"""Every dashboard figure on small synthetic data, against numbers worked out by hand.

Two webinars: W1 (a 10-minute video) with sessions S1 (10 March) and S2 (12 March), W2 (a
20-minute video) with S3 (11 March), and W3, a draft with nothing. The rows are written as the
room would leave them; the comments give each figure's arithmetic.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from app.models import (
    Attendance,
    ChatMessage,
    Contact,
    DailyVisitor,
    Interaction,
    InteractionResponse,
    Registrant,
    StaffUser,
    Video,
    VideoState,
    Webinar,
    WebinarSession,
)
from app.services import crypto, engagement
from app.services.engagement import Filters
from app.settings import Settings
from tests.conftest import make_user

S1_START = datetime(2030, 3, 10, 15, 0, tzinfo=UTC)
S2_START = datetime(2030, 3, 12, 15, 0, tzinfo=UTC)
S3_START = datetime(2030, 3, 11, 9, 0, tzinfo=UTC)


@dataclass
class World:
    w1: int
    w2: int
    w3: int
    s1: int
    s2: int
    s3: int
    poll: int
    quiz: int
    nps: int
    rating: int
    offer: int
    download: int
    pushed: int
    r: dict[int, int]  # registrant number -> id


async def _webinar(title: str, seconds: float | None) -> Webinar:
    video = None
    if seconds is not None:
        video = await Video.create(
            title=title, source_key="uploads/x", state=VideoState.READY, duration_seconds=seconds
        )
    return await Webinar.create(slug=f"w-{uuid.uuid4().hex[:8]}", title=title, video=video)


async def _registrant(number: int, webinar: Webinar, session: WebinarSession | None) -> Registrant:
    contact = await Contact.create(email=f"p{number}@example.com", name=f"Person {number}")
    return await Registrant.create(
        contact=contact,
        webinar=webinar,
        session=session,
        join_token_hash=crypto.hash_token(crypto.new_token()),
    )


async def _attended(
    registrant: Registrant,
    session: WebinarSession,
    *,
    joined: bool = True,
    watched: float = 0.0,
    minutes: list[int] | None = None,
    stayed: bool = False,
    offer: bool = False,
    clicked: list[int] | None = None,
) -> None:
    await Attendance.create(
        webinar_id=registrant.webinar_id,
        session_id=session.id,
        registrant_id=registrant.id,
        contact_id=registrant.contact_id,
        first_join_at=session.starts_at if joined else None,
        last_seen_at=session.starts_at + timedelta(minutes=30),
        watched_seconds=watched,
        furthest_seconds=watched,
        minutes=minutes or [],
        stayed_to_end=stayed,
        clicked_offer=offer,
        clicked=clicked or [],
    )


async def _interaction(
    webinar: Webinar, kind: str, at: float, config: dict[str, Any], **more: Any
) -> int:
    found = await Interaction.create(
        webinar=webinar, kind=kind, title=kind.title(), config=config, opens_at_seconds=at, **more
    )
    return int(found.id)


async def _answers(
    interaction_id: int, session: WebinarSession, given: dict[Registrant, Any]
) -> None:
    for registrant, answer in given.items():
        await InteractionResponse.create(
            interaction_id=interaction_id, session=session, registrant=registrant, answer=answer
        )


@pytest.fixture
async def world(database: Settings) -> World:
    w1 = await _webinar("First", 600)
    w2 = await _webinar("Second", 1200)
    w3 = await _webinar("Draft", None)
    s1 = await WebinarSession.create(webinar=w1, starts_at=S1_START)
    s2 = await WebinarSession.create(webinar=w1, starts_at=S2_START)
    s3 = await WebinarSession.create(webinar=w2, starts_at=S3_START)
    r = {n: await _registrant(n, w1, s1) for n in range(1, 6)}
    r |= {n: await _registrant(n, w1, s2) for n in range(6, 9)}
    r |= {n: await _registrant(n, w2, s3) for n in range(9, 11)}
    r[11] = await _registrant(11, w1, None)  # registered, no session any more

    offer = await _interaction(
        w1,
        "offer",
        480,
        {"text": "", "button": "Buy", "url": "https://x.example", "countdown_seconds": 0},
    )
    download = await _interaction(w1, "download", 30, {"file_key": "downloads/x.pdf"})
    ten = list(range(10))
    await _attended(r[1], s1, watched=600, minutes=ten, stayed=True, offer=True, clicked=[offer])
    await _attended(r[2], s1, watched=300, minutes=[0, 1, 2, 3, 4])
    await _attended(r[3], s1)  # joined, never played
    await _attended(r[5], s1, joined=False, clicked=[download])  # fetched the handout only
    await _attended(r[6], s2, watched=120, minutes=[0, 1], offer=True, clicked=[offer])
    # Watched a replay twice over: 900 s of a 600 s video; minute 10 is the video's very end.
    await _attended(r[7], s2, watched=900, minutes=[*ten, 10], stayed=True, clicked=[download])
    await _attended(r[9], s3, watched=600, minutes=ten)

    # Landing-page visitors (a number per browser) by webinar and day.
    visits = {
        (w1, date(2030, 3, 1)): "ABCGHIJK",
        (w1, date(2030, 3, 2)): "AD",
        (w1, date(2030, 3, 11)): "EL",
        (w2, date(2030, 3, 1)): "AF",
    }
    for (webinar, day), visitors in visits.items():
        for visitor in visitors:
            await DailyVisitor.create(webinar_id=webinar.id, day=day, visitor=ord(visitor))

    poll = await _interaction(w1, "poll", 60, {"options": ["A", "B", "C"], "multiple": False})
    quiz = await _interaction(
        w1,
        "quiz",
        120,
        {"options": ["X", "Y", "Z"], "correct": [2], "multiple": False, "explanation": ""},
    )
    nps = await _interaction(w1, "nps", 300, {})
    rating = await _interaction(w1, "rating", 200, {"scale": 5})
    pushed = await _interaction(
        w1, "poll", 90, {"options": ["Yes", "No"], "multiple": False}, session=s2
    )
    await _interaction(w2, "poll", 10, {"options": ["Q", "R"], "multiple": False})
    await _answers(poll, s1, {r[1]: 0, r[2]: 1, r[3]: 1})
    await _answers(poll, s2, {r[6]: 1, r[7]: 2})
    await _answers(quiz, s1, {r[1]: 2, r[2]: 0})
    await _answers(quiz, s2, {r[6]: 2})
    await _answers(nps, s1, {r[1]: 10, r[2]: 9, r[3]: 7})
    await _answers(nps, s2, {r[6]: 3, r[7]: 8})
    await _answers(rating, s1, {r[1]: 5, r[2]: 4})
    await _answers(pushed, s2, {r[6]: 0})

    staff = await make_user()
    await _chat(s1, r, staff)
    return World(
        w1=w1.id,
        w2=w2.id,
        w3=w3.id,
        s1=s1.id,
        s2=s2.id,
        s3=s3.id,
        poll=poll,
        quiz=quiz,
        nps=nps,
        rating=rating,
        offer=offer,
        download=download,
        pushed=pushed,
        r={n: registrant.id for n, registrant in r.items()},
    )


async def _chat(s1: WebinarSession, r: dict[int, Registrant], staff: StaffUser) -> None:
    s2 = await WebinarSession.get(starts_at=S2_START)

    async def say(session: WebinarSession, second: float, body: str, **who: Any) -> ChatMessage:
        return await ChatMessage.create(
            session=session,
            body=body,
            created_at=session.starts_at + timedelta(seconds=second),
            media_seconds=who.pop("media", second),
            **who,
        )

    await say(s1, 60, "Hello", registrant=r[1])
    await say(s1, 90, "Is there a replay?", registrant=r[1])
    await say(s1, 150, "Yes, tomorrow", registrant=r[1], staff=staff)  # answers both: 90 s, 60 s
    asked = await say(s1, 200, "Where are the slides?", registrant=r[2])
    await say(s1, 200, "We will answer soon", registrant=r[2], automatic=True)
    await say(s1, 500, "In the handout", staff=staff, reply_to=asked)  # public reply: 300 s
    await say(s1, 700, "thanks", registrant=r[3], media=590)  # never answered
    await say(s1, 710, "Thanks for coming", staff=staff)  # to everyone, answering no one
    await say(s2, 30, "Pricing?", registrant=r[6])
    await say(s2, 40, "See the offer", registrant=r[6], staff=staff)  # 10 s
    await say(s2, 50, "ok", registrant=r[6])  # never answered


# --- funnel -------------------------------------------------------------------------------------


async def test_funnel_of_a_webinar(world: World) -> None:
    funnel = await engagement.funnel(Filters(webinar_id=world.w1))
    # Visitors A B C G H I J K D E L; registrants 1-8 and 11; joined 1 2 3 6 7;
    # stayed 1 and 7; clicked an offer 1 and 6.
    assert (funnel.visitors, funnel.registered, funnel.attended) == (11, 9, 5)
    assert (funnel.stayed_to_end, funnel.converted) == (2, 2)
    stages = {stage.key: stage for stage in funnel.stages}
    assert [stage.key for stage in funnel.stages] == [
        "visitors",
        "registered",
        "attended",
        "stayed_to_end",
        "converted",
    ]
    assert stages["visitors"].share_of_previous is None
    assert stages["visitors"].share_of_visitors == 1.0
    assert stages["registered"].share_of_previous == 9 / 11
    assert stages["attended"].share_of_previous == 5 / 9
    assert stages["stayed_to_end"].share_of_previous == 2 / 5
    assert stages["converted"].share_of_previous == 2 / 2
    assert stages["attended"].share_of_visitors == 5 / 11
    assert stages["converted"].share_of_visitors == 2 / 11
    assert set(engagement.Funnel.FORMULAS) >= {"visitors", "registered", "attended", "converted"}


async def test_funnel_of_a_session_has_no_visitors(world: World) -> None:
    funnel = await engagement.funnel(Filters(webinar_id=world.w1, session_id=world.s1))
    assert funnel.visitors is None
    assert (funnel.registered, funnel.attended, funnel.stayed_to_end, funnel.converted) == (
        5,
        3,
        1,
        1,
    )
    stages = funnel.stages
    assert [stage.share_of_visitors for stage in stages] == [None] * 5
    assert stages[2].share_of_previous == 3 / 5
    # The session alone, without naming its webinar, is the same.
    assert await engagement.funnel(Filters(session_id=world.s1)) == funnel


async def test_funnel_by_dates_and_across_webinars(world: World) -> None:
    # 12 March: S2 only; nobody visited the landing page that day.
    by_day = await engagement.funnel(
        Filters(webinar_id=world.w1, start=date(2030, 3, 12), end=date(2030, 3, 12))
    )
    assert (by_day.visitors, by_day.registered, by_day.attended) == (0, 3, 2)
    assert (by_day.stayed_to_end, by_day.converted) == (1, 1)
    assert by_day.stages[1].share_of_previous is None  # nothing to divide by
    # 2-11 March: visitors A D E L; sessions S1 only.
    window = await engagement.funnel(
        Filters(webinar_id=world.w1, start=date(2030, 3, 2), end=date(2030, 3, 11))
    )
    assert (window.visitors, window.registered, window.attended) == (4, 5, 3)
    # Every webinar: visitor A of both webinars counts once (11 + F = 12); registrants 9 + 2.
    everything = await engagement.funnel(Filters())
    assert (everything.visitors, everything.registered, everything.attended) == (12, 11, 6)
    assert (everything.stayed_to_end, everything.converted) == (2, 2)


async def test_a_session_outside_the_filters_is_empty(world: World) -> None:
    other = await engagement.funnel(Filters(webinar_id=world.w2, session_id=world.s1))
    assert (other.registered, other.attended) == (0, 0)
    late = await engagement.attendance_summary(
        Filters(session_id=world.s1, start=date(2030, 3, 11))
    )
    assert (late.registered, late.attended, late.attendance_rate) == (0, 0, None)
    assert late.average_watch_seconds is None
    assert late.median_watch_seconds is None
    with pytest.raises(ValueError, match="start date is after the end date"):
        await engagement.funnel(Filters(start=date(2030, 3, 12), end=date(2030, 3, 11)))


# --- attendance ---------------------------------------------------------------------------------


async def test_attendance_summary(world: World) -> None:
    w1 = await engagement.attendance_summary(Filters(webinar_id=world.w1))
    assert (w1.registered, w1.attended) == (9, 5)
    assert w1.attendance_rate == 5 / 9
    # Watch times 600, 300, 0, 120, 900: mean 1920 / 5, median 300.
    assert w1.average_watch_seconds == 384.0
    assert w1.median_watch_seconds == 300.0
    # Shares of 600 s: 1, 0.5, 0, 0.2 and 1 (900 s capped): 2.7 / 5.
    assert w1.average_watch_share == pytest.approx(0.54)

    s2 = await engagement.attendance_summary(Filters(session_id=world.s2))
    assert (s2.registered, s2.attended, s2.attendance_rate) == (3, 2, 2 / 3)
    assert s2.average_watch_seconds == 510.0
    assert s2.median_watch_seconds == 510.0  # the mean of the two middle ones
    assert s2.average_watch_share == pytest.approx(0.6)

    everything = await engagement.attendance_summary(Filters())
    # Plus r9: 600 s of a 1200 s video. Sorted 0 120 300 600 600 900: median (300 + 600) / 2.
    assert (everything.registered, everything.attended) == (11, 6)
    assert everything.average_watch_seconds == 420.0
    assert everything.median_watch_seconds == 450.0
    assert everything.average_watch_share == pytest.approx(3.2 / 6)

    # 10-11 March: S1 and S3 (r11 has no session, so no date).
    dated = await engagement.attendance_summary(
        Filters(start=date(2030, 3, 10), end=date(2030, 3, 11))
    )
    assert (dated.registered, dated.attended, dated.attendance_rate) == (7, 4, 4 / 7)
    assert dated.average_watch_seconds == (600 + 300 + 0 + 600) / 4


# --- drop-off -----------------------------------------------------------------------------------


async def test_drop_off_per_minute_with_markers(world: World) -> None:
    curve = await engagement.drop_off(Filters(webinar_id=world.w1))
    assert curve.duration_seconds == 600.0
    assert curve.attended == 5
    # Minute 0: r1 r2 r6 r7; minute 2: r1 r2 r7; minutes 5-9: r1 r7 (r7's minute 10 is past
    # the end of a 10-minute video).
    assert curve.viewers == [4, 4, 3, 3, 3, 2, 2, 2, 2, 2]
    assert [(marker.seconds, marker.kind) for marker in curve.markers] == [
        (30.0, "download"),
        (60.0, "poll"),
        (90.0, "poll"),  # pushed into S2
        (120.0, "quiz"),
        (200.0, "rating"),
        (300.0, "nps"),
        (480.0, "offer"),
    ]
    s1 = await engagement.drop_off(Filters(session_id=world.s1))
    assert s1.viewers == [2, 2, 2, 2, 2, 1, 1, 1, 1, 1]
    assert world.pushed not in {marker.interaction_id for marker in s1.markers}
    with pytest.raises(ValueError, match="Choose a webinar"):
        await engagement.drop_off(Filters())


# --- interactions -------------------------------------------------------------------------------


async def test_interaction_results_of_a_webinar(world: World) -> None:
    results = {
        item.interaction_id: item
        for item in await engagement.interaction_results(Filters(webinar_id=world.w1))
    }
    assert list(results) == [
        world.download,
        world.poll,
        world.pushed,
        world.quiz,
        world.rating,
        world.nps,
        world.offer,
    ]
    poll = results[world.poll]
    assert (poll.kind, poll.opens_at, poll.responses) == ("poll", 60.0, 5)
    assert poll.results == {"counts": [1, 3, 1], "total": 5}
    quiz = results[world.quiz].results
    assert quiz["counts"] == [1, 0, 2]
    assert quiz["correct_share"] == 0.6667  # 2 of 3 chose Z
    nps = results[world.nps].results
    # 10 and 9 promote, 7 and 8 are passive, 3 detracts: (2 - 1) / 5 x 100.
    assert (nps["promoters"], nps["passives"], nps["detractors"], nps["score"]) == (2, 2, 1, 20)
    assert results[world.rating].results["average"] == 4.5
    assert results[world.pushed].results == {"counts": [1, 0], "total": 1}
    assert results[world.pushed].session_id == world.s2
    offer = results[world.offer]
    assert (offer.clicked, offer.click_through, offer.results) == (2, 2 / 5, {"total": 2})
    handout = results[world.download]
    # r5 fetched it without joining the room; r7 in the room. Of 5 attendees.
    assert (handout.clicked, handout.click_through) == (2, 2 / 5)
    assert poll.clicked is None
    assert poll.click_through is None


async def test_interaction_results_of_one_session(world: World) -> None:
    results = {
        item.interaction_id: item
        for item in await engagement.interaction_results(Filters(session_id=world.s2))
    }
    assert results[world.poll].results == {"counts": [0, 1, 1], "total": 2}
    assert results[world.quiz].results["correct_share"] == 1.0
    assert results[world.nps].results["score"] == -50  # (0 promoters - 1 detractor) / 2
    assert results[world.rating].results == {"counts": [0, 0, 0, 0, 0], "total": 0, "average": None}
    assert (results[world.offer].clicked, results[world.offer].click_through) == (1, 0.5)
    assert (results[world.download].clicked, results[world.download].click_through) == (1, 0.5)
    s1 = await engagement.interaction_results(Filters(session_id=world.s1))
    assert world.pushed not in {item.interaction_id for item in s1}


# --- chat ---------------------------------------------------------------------------------------


async def test_chat_summary(world: World) -> None:
    chat = await engagement.chat_summary(Filters(webinar_id=world.w1))
    # Attendees wrote 6 (the automatic reply is not theirs); 3 have a question mark.
    assert (chat.attendee_messages, chat.questions, chat.team_replies) == (6, 3, 4)
    # Answered after 90, 60, 300 and 10 s; "thanks" and "ok" never.
    assert chat.answered == 4
    assert chat.median_response_seconds == 75.0
    assert chat.p90_response_seconds == 300.0  # nearest rank: the 4th of 4
    # Minutes of the video: 1 1 3 9 in S1, 0 0 in S2.
    assert chat.by_minute == [2, 2, 0, 1, 0, 0, 0, 0, 0, 1]

    s1 = await engagement.chat_summary(Filters(session_id=world.s1))
    assert (s1.attendee_messages, s1.questions, s1.team_replies, s1.answered) == (4, 2, 3, 3)
    assert (s1.median_response_seconds, s1.p90_response_seconds) == (90.0, 300.0)

    quiet = await engagement.chat_summary(Filters(webinar_id=world.w2))
    assert (quiet.attendee_messages, quiet.answered, quiet.median_response_seconds) == (0, 0, None)
    assert quiet.by_minute == [0] * 20


# --- overview -----------------------------------------------------------------------------------


async def test_overview_of_all_webinars(world: World) -> None:
    rows = await engagement.webinar_overview(None, None)
    assert [row.webinar_id for row in rows] == [world.w3, world.w2, world.w1]
    draft, second, first = rows
    assert (first.sessions, first.visitors, first.registered, first.attended) == (2, 11, 9, 5)
    assert first.attendance_rate == 5 / 9
    assert first.average_watch_share == pytest.approx(0.54)
    assert (first.conversions, first.conversion_rate) == (2, 2 / 5)
    assert (second.sessions, second.visitors, second.registered, second.attended) == (1, 2, 2, 1)
    assert (second.attendance_rate, second.average_watch_share) == (0.5, 0.5)
    assert (second.conversions, second.conversion_rate) == (0, 0.0)
    assert (draft.sessions, draft.visitors, draft.registered, draft.attended) == (0, 0, 0, 0)
    assert (draft.attendance_rate, draft.average_watch_share, draft.conversion_rate) == (
        None,
        None,
        None,
    )
    assert draft.title == "Draft"
    assert draft.status == "draft"


async def test_overview_by_dates(world: World) -> None:
    rows = await engagement.webinar_overview(date(2030, 3, 11), date(2030, 3, 12))
    # The draft has neither sessions nor visitors on those days.
    assert [row.webinar_id for row in rows] == [world.w2, world.w1]
    second, first = rows
    # W1: S2 only; visitors E and L on 11 March.
    assert (first.sessions, first.visitors, first.registered, first.attended) == (1, 2, 3, 2)
    assert first.average_watch_share == pytest.approx(0.6)
    assert (first.conversions, first.conversion_rate) == (1, 0.5)
    # W2: S3 on 11 March; its visitors came on 1 March.
    assert (second.sessions, second.visitors, second.registered, second.attended) == (1, 0, 2, 1)
