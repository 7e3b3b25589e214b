"""From the room to the follow-up: what attendees did in a real room picks the email they get."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from app.models import AnalyticsEvent, Contact, OutboxMessage, Webinar, WebinarSession
from app.realtime import protocol
from app.services import auth, delivery, mail, sequences
from app.settings import Settings
from tests.realtime.live import LiveServer, Peer, live_server, until
from tests.realtime.test_room import VIDEO_SECONDS, join, make_attendee, make_session


@pytest.fixture
async def server(database: Settings) -> AsyncIterator[LiveServer]:
    mail.use_mailer(None)  # the outbox: what would have been sent
    async with live_server(database) as running:
        yield running
    mail.use_mailer(None)


async def test_each_attendee_gets_the_follow_up_for_what_they_did_in_the_room(
    server: LiveServer, peers: list[Peer]
) -> None:
    # One session is in its last minute (its attendee watches to the end); in another, five
    # minutes in, one attendee leaves and one never came.
    session = await make_session(started=timedelta(seconds=VIDEO_SECONDS - 40))
    webinar = await Webinar.get(id=session.webinar_id)  # type: ignore[attr-defined]
    later = await WebinarSession.create(
        webinar=webinar, starts_at=auth.utcnow() - timedelta(minutes=5)
    )
    await sequences.ensure_steps(webinar)
    stayed, stayed_token = await make_attendee(session, "Stay Till-End")
    left, left_token = await make_attendee(later, "Left Early")
    missed, _token = await make_attendee(later, "Never Came")

    stayer, _ = await join(server, peers, stayed_token)
    assert (
        await stayer.call(protocol.HEARTBEAT, {"position": VIDEO_SECONDS - 45, "playing": True})
    )["ok"]
    leaver, _ = await join(server, peers, left_token)
    assert (await leaver.call(protocol.HEARTBEAT, {"position": 300.0, "playing": True}))["ok"]
    await leaver.close()
    await stayer.close()

    await until(lambda: _written(leaves=2, heartbeats=2), "the leaves and heartbeats written")

    await sequences.plan_pending(auth.utcnow())
    after_end = later.starts_at + timedelta(seconds=VIDEO_SECONDS, hours=2)
    await delivery.deliver_due(after_end)
    received: dict[str, set[str]] = {}
    for message in await OutboxMessage.all():
        received.setdefault(message.recipients, set()).add(message.subject)
    stayed_email = (await Contact.get(id=stayed.contact_id)).email
    left_email = (await Contact.get(id=left.contact_id)).email
    missed_email = (await Contact.get(id=missed.contact_id)).email
    follow_ups = {
        "Thank you for joining Onboarding",
        "The rest of Onboarding",
        "Sorry we missed you: Onboarding",
    }
    assert received[stayed_email] & follow_ups == {"Thank you for joining Onboarding"}
    assert received[left_email] & follow_ups == {"The rest of Onboarding"}
    assert received[missed_email] & follow_ups == {"Sorry we missed you: Onboarding"}


async def _written(*, leaves: int, heartbeats: int) -> bool:
    return (
        await AnalyticsEvent.filter(kind="leave").count() >= leaves
        and await AnalyticsEvent.filter(kind="heartbeat").count() >= heartbeats
    )
