"""The demo's sample history: derived through the room's own calls, labelled, and removable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.models import (
    AnalyticsEvent,
    Attendance,
    ChatMessage,
    Contact,
    DailyVisitor,
    Interaction,
    PlannedEmail,
    Registrant,
    Video,
    VideoState,
    Webinar,
    WebinarSession,
)
from app.services import accounts, demo_history, engagement, sequences
from app.settings import Settings

NOW = datetime(2030, 6, 12, 14, 30, tzinfo=UTC)


async def demo_like_webinar() -> Webinar:
    video = await Video.create(
        title="Sample", source_key="uploads/demo/sample.mp4", state=VideoState.READY,
        duration_seconds=60.0,
    )  # fmt: skip
    return await Webinar.create(slug="demo-onboarding", title="Getting started", video=video)


async def test_the_sample_session_gives_every_dashboard_figures(database: Settings) -> None:
    webinar = await demo_like_webinar()
    session = await demo_history.add(webinar, now=NOW, duration=60.0)

    assert session.starts_at == datetime(2030, 6, 4, 14, 7, tzinfo=UTC)
    assert await demo_history.sample_session_ids(webinar.id) == {session.id}
    whole = engagement.Filters(webinar_id=webinar.id)
    funnel = await engagement.funnel(whole)
    # 16 people: 5 never join; 5 reach 95% (Maya, Luis, Aiko, Omar, Sofia; Sam stops at 92%);
    # 4 click the offer, which opens at 0:30 (Maya, Luis, Sam, Omar).
    assert (funnel.visitors, funnel.registered) == (46, 16)
    assert (funnel.attended, funnel.stayed_to_end, funnel.converted) == (11, 5, 4)
    (poll, offer) = await engagement.interaction_results(whole)
    assert poll.title == demo_history.POLL_TITLE
    assert poll.results["counts"] == [5, 2, 2]
    assert offer.title == demo_history.OFFER_TITLE
    chat = await engagement.chat_summary(whole)
    assert chat.attendee_messages == 3
    drop_off = await engagement.drop_off(whole)
    assert drop_off.viewers == [11]
    assert {marker.title for marker in drop_off.markers} == {
        demo_history.POLL_TITLE,
        demo_history.OFFER_TITLE,
    }

    # Labelled, never emailed, in no room and in no other webinar.
    people = await Contact.all()
    assert len(people) == 16
    assert all(person.name.endswith(" (sample)") for person in people)
    assert all(person.email.endswith(".example.com") for person in people)
    assert all(person.suppressed_at is not None for person in people)
    registrants = await Registrant.all()
    assert {r.webinar_id for r in registrants} == {webinar.id}
    assert {r.join_token_sealed for r in registrants} == {""}
    assert {r.plan_state for r in registrants} == {0}
    assert await sequences.plan_pending(NOW) == 0
    assert await PlannedEmail.all().count() == 0
    webinars: list[Any] = await Attendance.all().values_list("webinar_id", flat=True)
    assert set(webinars) == {webinar.id}
    assert await ChatMessage.filter(read_at=None).count() == 0
    listed = await accounts.account_rows(now=NOW, onboarding_webinar_id=webinar.id)
    assert {row.key for row in listed} == {
        "northwind.example.com",
        "globex.example.com",
        "initech.example.com",
        "umbrella.example.com",
        "hooli.example.com",
    }


async def test_the_sample_history_can_be_taken_away(database: Settings) -> None:
    webinar = await demo_like_webinar()
    session = await demo_history.add(webinar, now=NOW, duration=60.0)
    later = await WebinarSession.create(webinar=webinar, starts_at=NOW + timedelta(days=1))
    await DailyVisitor.create(webinar_id=webinar.id, day=NOW.date(), visitor=1)

    assert await demo_history.remove(webinar) == 16

    assert await Contact.all().count() == 0
    assert await Registrant.all().count() == 0
    assert await Attendance.all().count() == 0
    assert await AnalyticsEvent.all().count() == 0
    assert await DailyVisitor.all().values_list("day", flat=True) == [NOW.date()]
    left: list[Any] = await WebinarSession.all().values_list("id", flat=True)
    assert left == [later.id]
    assert not await WebinarSession.exists(id=session.id)
    assert await Interaction.filter(webinar_id=webinar.id).count() == 2  # content stays
    assert await demo_history.remove(webinar) == 0
