"""Follow-up audiences and the dashboards agree on who stayed to the end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy

import pytest

from app.models import (
    AnalyticsEvent,
    Audience,
    Contact,
    EmailState,
    OutboxMessage,
    Registrant,
    Video,
    VideoState,
    Webinar,
    WebinarSession,
)
from app.services import attendance, attendance_rows, crypto, delivery, engagement, mail, sequences
from app.services.attendance import HeartbeatBuffer, Presence
from app.settings import Settings

START = datetime(2030, 3, 5, 15, 0, tzinfo=UTC)
VIDEO_SECONDS = 1000.0
END = START + timedelta(minutes=17)  # the video's length in whole minutes


@pytest.fixture(autouse=True)
def outbox_mailer() -> Iterator[None]:
    """Messages land in the outbox table."""
    mail.use_mailer(None)
    yield
    mail.use_mailer(None)


async def registrant_for(session: WebinarSession, email: str) -> Registrant:
    contact = await Contact.create(email=email, name="Sam Example")
    token = crypto.new_token()
    return await Registrant.create(
        contact=contact,
        webinar_id=session.webinar_id,  # type: ignore[attr-defined]
        session=session,
        join_token_hash=crypto.hash_token(token),
        join_token_sealed=crypto.seal(token),
    )


async def watch_in_the_room(
    buffer: HeartbeatBuffer, registrant: Registrant, session: WebinarSession, until: float
) -> None:
    """Join, play from the start with a heartbeat every 20 seconds, leave at `until`."""
    who = Presence(session.webinar_id, session.id, registrant.id, registrant.contact_id)  # type: ignore[attr-defined]
    await attendance.record(attendance.JOIN, who, START, 0.0)
    position = 0.0
    while position < until:
        position = min(position + attendance_rows.HEARTBEAT_SECONDS, until)
        buffer.add(who, START + timedelta(seconds=position), position, playing=True)
    await attendance.record(attendance.LEAVE, who, START + timedelta(seconds=until), until)


def test_one_rule_decides_who_stayed_to_the_end() -> None:
    assert attendance_rows.STAYED_SHARE == 0.95
    assert not attendance_rows.stayed(920.0, VIDEO_SECONDS)
    assert attendance_rows.stayed(950.0, VIDEO_SECONDS)
    assert sequences.audience_of(joined=True, stayed_to_end=False) is Audience.LEFT_EARLY
    assert sequences.audience_of(joined=True, stayed_to_end=True) is Audience.ATTENDED
    assert sequences.audience_of(joined=False, stayed_to_end=False) is Audience.MISSED


async def test_someone_who_watched_92_percent_left_early_on_the_dashboard_and_in_email(
    database: Settings,
) -> None:
    video = await Video.create(
        title="Talk", source_key="uploads/t", state=VideoState.READY, duration_seconds=VIDEO_SECONDS
    )
    webinar = await Webinar.create(slug="growth", title="Growth", video=video)
    session = await WebinarSession.create(webinar=webinar, starts_at=START)
    most = await registrant_for(session, "most@example.com")
    whole = await registrant_for(session, "whole@example.com")
    await registrant_for(session, "missed@example.com")
    buffer = HeartbeatBuffer()
    await watch_in_the_room(buffer, most, session, 920.0)  # 92% of the video
    await watch_in_the_room(buffer, whole, session, 960.0)  # 96%
    await buffer.flush()

    funnel = await engagement.funnel(engagement.Filters(session_id=session.id))
    assert (funnel.registered, funnel.attended, funnel.stayed_to_end) == (3, 2, 1)

    # Someone whose events are stored but whose row is not written yet is judged the same way.
    pending = await registrant_for(session, "pending@example.com")
    for kind, seconds in (("join", 0.0), ("heartbeat", 920.0)):
        await AnalyticsEvent.create(
            kind=kind,
            at=START + timedelta(seconds=seconds),
            webinar_id=webinar.id,
            session_id=session.id,
            registrant_id=pending.id,
            contact_id=pending.contact_id,
            video_seconds=seconds,
        )

    await sequences.plan_pending(END + timedelta(minutes=1))
    outcome = await delivery.deliver_due(END + timedelta(hours=1))
    assert outcome[EmailState.SENT] == 4
    subjects = {
        message.recipients: message_from_string(message.content, policy=policy.default)["Subject"]
        for message in await OutboxMessage.all()
    }
    assert subjects == {
        "most@example.com": "The rest of Growth",
        "pending@example.com": "The rest of Growth",
        "whole@example.com": "Thank you for joining Growth",
        "missed@example.com": "Sorry we missed you: Growth",
    }
