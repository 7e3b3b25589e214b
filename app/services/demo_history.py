"""Sample history for the demo webinar, so that its analytics have something to show.

One past session of the demo webinar with sample registrants (every name ends in "(sample)",
every address is at a subdomain of example.com, every registration carries `SAMPLE_SOURCE` as
its source and referrer). Their landing-page views, registrations, room visits, answers, offer
clicks and chat messages go through the same service calls as real ones (`analytics_events`,
`attendance`, `room`, `chat`), so every figure is derived exactly as for real attendees. The
demo's poll and offer are real content of the demo webinar, added as the editor adds them.

The session lies eight days back, at a minute no schedule offers, past the replay window, and
nobody holds a join link for it: no one can enter its room, so nobody ever sees these people
or their messages there. The addresses are marked suppressed and their emails as planned:
nothing is ever sent to them. `remove` takes all of it away again (the poll and offer stay).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.models import (
    AnalyticsEvent,
    Attendance,
    Contact,
    DailyVisitor,
    Interaction,
    Registrant,
    Webinar,
    WebinarSession,
)
from app.services import (
    analytics_events,
    attendance,
    attendance_rows,
    chat,
    contacts,
    crypto,
    interactions,
    room,
)
from app.services.attendance import HeartbeatBuffer

SAMPLE_SOURCE = "encore-sample-data"
SAMPLE_LABEL = "(sample)"
SESSION_AGE = timedelta(days=8)
SESSION_MINUTE = 7  # no schedule of the demo offers a session at :07
VIEW_DAYS = 5  # landing-page views in the days before the session
EXTRA_VISITORS = 30  # visitors who looked and did not register

POLL_TITLE = "What will you use Encore for first?"
POLL_OPTIONS = ("Customer onboarding", "Product training", "Sales demos")
OFFER_TITLE = "Book a setup call"


@dataclass(frozen=True)
class SamplePerson:
    """One sample registrant and what they do in the sample session."""

    name: str
    domain: str
    role: str
    watched: float  # share of the video, 0 for someone who never joins
    answer: int | None = None  # the poll option chosen
    clicks_offer: bool = False
    says: str = ""  # a chat message

    @property
    def email(self) -> str:
        """The sample address, at a subdomain of example.com."""
        return f"{self.name.split()[0].lower()}@{self.domain}"


PEOPLE = (
    SamplePerson("Maya Chen", "northwind.example.com", "Customer success", 1.0, 0, True,
                 "Can we use our own branding on the landing page?"),
    SamplePerson("Luis Ortega", "northwind.example.com", "Onboarding", 0.97, 0, True),
    SamplePerson("Priya Nair", "northwind.example.com", "Customer success", 0.6, 1),
    SamplePerson("Tom Becker", "northwind.example.com", "Sales", 0.0),
    SamplePerson("Aiko Tanaka", "globex.example.com", "Onboarding", 1.0, 0, False,
                 "Does the replay keep the chat?"),
    SamplePerson("Sam Okafor", "globex.example.com", "Other", 0.92, 2, True),
    SamplePerson("Nora Lind", "globex.example.com", "Customer success", 0.3),
    SamplePerson("Jonas Weber", "initech.example.com", "Sales", 0.0),
    SamplePerson("Elif Kaya", "initech.example.com", "Customer success", 0.0),
    SamplePerson("Ravi Patel", "initech.example.com", "Onboarding", 0.0),
    SamplePerson("Chloé Martin", "umbrella.example.com", "Product training", 0.8, 1, False,
                 "How long do recordings stay available?"),
    SamplePerson("Omar Haddad", "umbrella.example.com", "Customer success", 1.0, 0, True),
    SamplePerson("Grace Kim", "umbrella.example.com", "Onboarding", 0.45, 0),
    SamplePerson("Ben Carter", "hooli.example.com", "Sales", 0.0),
    SamplePerson("Sofia Rossi", "hooli.example.com", "Customer success", 1.0, 2),
    SamplePerson("Daniel Novak", "hooli.example.com", "Other", 0.15),
)  # fmt: skip


def sample_name(person: SamplePerson) -> str:
    """The name a sample person is shown under."""
    return f"{person.name} {SAMPLE_LABEL}"


async def sample_session_ids(webinar_id: int) -> set[int]:
    """The sessions of a webinar that hold sample history."""
    found: list[Any] = await Registrant.filter(
        webinar_id=webinar_id, referrer=SAMPLE_SOURCE
    ).values_list("session_id", flat=True)
    return {int(value) for value in found if value is not None}


async def has_sample_history() -> bool:
    """Whether any webinar holds sample history (the demo's, unless it was removed)."""
    return await Registrant.exists(referrer=SAMPLE_SOURCE)


async def is_sample_contact(contact_id: int) -> bool:
    """Whether a contact is one of the sample people."""
    return await Registrant.exists(contact_id=contact_id, referrer=SAMPLE_SOURCE)


async def _interactions(webinar: Webinar, duration: float) -> tuple[Interaction, Interaction]:
    """The demo's poll and offer, added the way the editor adds them."""
    poll = interactions.check(
        "poll",
        {"title": POLL_TITLE, "opens_at": str(int(duration * 0.2)), "options": list(POLL_OPTIONS)},
        duration=duration,
    )
    offer = interactions.check(
        "offer",
        {
            "title": OFFER_TITLE,
            "opens_at": str(int(duration * 0.5)),
            "text": "Twenty minutes with our team to set up your first webinar.",
            "button": "Choose a time",
            "url": "https://example.com/setup-call",
        },
        duration=duration,
    )
    return (
        await interactions.save(webinar=webinar, checked=poll, interaction_id=None, actor=None),
        await interactions.save(webinar=webinar, checked=offer, interaction_id=None, actor=None),
    )


async def add(webinar: Webinar, *, now: datetime, duration: float) -> WebinarSession:
    """Add the demo's poll and offer, and the sample session with its history."""
    poll, offer = await _interactions(webinar, duration)
    starts = (now - SESSION_AGE).replace(minute=SESSION_MINUTE, second=0, microsecond=0)
    session = await WebinarSession.create(
        webinar=webinar,
        starts_at=starts,
        kind="scheduled",
        closed_at=starts + timedelta(seconds=duration),
    )
    chooser = random.Random(7)  # noqa: S311 - the same sample on every machine
    for _ in range(EXTRA_VISITORS):
        at = starts - timedelta(days=chooser.uniform(0.2, VIEW_DAYS))
        visitor = f"{chooser.getrandbits(64):016x}"
        analytics_events.landing_view(
            webinar_id=webinar.id, visitor=visitor, at=at, utm={}, referrer=""
        )
    buffer = HeartbeatBuffer()
    for person in PEOPLE:
        registered = starts - timedelta(days=chooser.uniform(0.1, VIEW_DAYS))
        analytics_events.landing_view(
            webinar_id=webinar.id,
            visitor=f"{chooser.getrandbits(64):016x}",
            at=registered - timedelta(minutes=2),
            utm={"utm_source": SAMPLE_SOURCE},
            referrer="",
        )
        registrant = await _register(webinar, session, person, registered)
        if person.watched > 0:
            await _attend(buffer, registrant, session, person, duration, poll, offer)
    await buffer.flush()
    await analytics_events.flush_landing_views()
    # The team has seen these messages: they must not wait in anyone's inbox.
    await chat.mark_read(session.id, starts + timedelta(seconds=duration))
    return session


async def _register(
    webinar: Webinar, session: WebinarSession, person: SamplePerson, at: datetime
) -> Registrant:
    contact, _ = await contacts.get_or_create_contact(email=person.email, name=sample_name(person))
    await Contact.filter(id=contact.id).update(created_at=at, suppressed_at=at)
    company = person.domain.split(".")[0].capitalize()
    registrant = await Registrant.create(
        contact=contact,
        webinar=webinar,
        session=session,
        # Nobody holds this link: the token is thrown away at once.
        join_token_hash=crypto.hash_token(crypto.new_token()),
        timezone="America/New_York",
        answers={"company": company, "role": person.role},
        utm={"utm_source": SAMPLE_SOURCE},
        referrer=SAMPLE_SOURCE,
        plan_state=0,
    )
    await Registrant.filter(id=registrant.id).update(created_at=at)
    await analytics_events.record_registration(registrant, at)
    return registrant


async def _attend(
    buffer: HeartbeatBuffer,
    registrant: Registrant,
    session: WebinarSession,
    person: SamplePerson,
    duration: float,
    poll: Interaction,
    offer: Interaction,
) -> None:
    """One visit to the room, as the player and the room report it."""
    starts = session.starts_at
    attendee = room.Attendee(
        registrant_id=registrant.id,
        contact_id=registrant.contact_id,
        webinar_id=registrant.webinar_id,
        session_id=session.id,
        session_kind="scheduled",
        starts_at=starts,
        duration=duration,
        name=sample_name(person),
        language="en",
        token="",
    )
    leaves = min(person.watched, 1.0) * duration

    def moment(seconds: float) -> datetime:
        return starts + timedelta(seconds=seconds)

    await attendance.record(attendance.JOIN, attendee.presence, moment(0.0), 0.0)
    position = 0.0
    while position <= leaves:
        buffer.add(attendee.presence, moment(position), position, playing=True)
        position += attendance_rows.HEARTBEAT_SECONDS
    live_until = min(leaves, duration - 1.0)
    if person.answer is not None and poll.opens_at_seconds + 1 <= live_until:
        await room.answer(attendee, poll.id, person.answer, moment(poll.opens_at_seconds + 1))
    if person.clicks_offer and offer.opens_at_seconds + 1 <= live_until:
        await room.click(attendee, offer.id, moment(offer.opens_at_seconds + 1))
    if person.says and live_until > 0:
        await chat.post(attendee, person.says, moment(live_until / 2), team_online=True)
    await attendance.record(attendance.LEAVE, attendee.presence, moment(leaves), leaves)


async def remove(webinar: Webinar) -> int:
    """Take a webinar's sample history away again; how many sample people were removed."""
    sessions = await sample_session_ids(webinar.id)
    if not sessions:
        return 0
    ends: list[datetime] = []
    for session in await WebinarSession.filter(id__in=sessions):
        ends.append(session.starts_at + timedelta(days=1))
    registrants = await Registrant.filter(
        webinar_id=webinar.id, referrer=SAMPLE_SOURCE
    ).values_list("id", "contact_id")
    contact_ids = {int(contact_id) for _, contact_id in registrants}
    await Attendance.filter(session_id__in=sessions).delete()
    # Sample views and registrations all date from before the demo existed.
    await AnalyticsEvent.filter(webinar_id=webinar.id, at__lt=max(ends)).delete()
    await AnalyticsEvent.filter(session_id__in=sessions).delete()
    await DailyVisitor.filter(webinar_id=webinar.id, day__lt=max(ends).date()).delete()
    await Registrant.filter(id__in=[int(r) for r, _ in registrants]).delete()
    await WebinarSession.filter(id__in=sessions).delete()
    # A sample person is removed unless they registered for something real meanwhile.
    still: list[Any] = await Registrant.filter(contact_id__in=contact_ids).values_list(
        "contact_id", flat=True
    )
    kept = {int(value) for value in still}
    gone = [contact_id for contact_id in contact_ids if contact_id not in kept]
    await Contact.filter(id__in=gone).delete()
    return len(gone)
