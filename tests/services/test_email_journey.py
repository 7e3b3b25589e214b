"""One registrant's emails over a real SMTP server: the confirmation with its calendar file, the
reminders in their own zone, and the follow-up for what they did (here: they missed it).

The same journey through the outbox, in a browser, is tests/browser/test_emails_browser.py; the
follow-up for each thing an attendee can do in a real room is tests/realtime/test_room_followups.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from icalendar import Calendar

from app.models import EmailState, PlannedEmail, Registrant
from app.services import delivery, mail, registration, sequences
from app.settings import Settings
from emails import SmtpMailer
from tests.emails.test_smtp import HOST, start_controller
from tests.services.test_registration import FIRST, NOW, form, make_webinar, register


@dataclass
class Inbox:
    """An SMTP server's handler that keeps every message it accepts."""

    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 2.0.0 queued"

    def taken(self) -> list[EmailMessage]:
        with self.lock:
            found, self.messages = self.messages, []
        return found


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    handler = Inbox()
    controller: Controller = start_controller(handler)
    mail.use_mailer(SmtpMailer(hostname=HOST, port=controller.port, timeout=10))
    yield handler
    mail.use_mailer(None)
    controller.stop()


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def test_confirmation_reminders_and_the_follow_up_arrive_over_smtp(
    database: Settings, inbox: Inbox
) -> None:
    webinar = await make_webinar()
    await sequences.ensure_steps(webinar)
    result = await register(webinar, form(timezone="America/New_York"))
    assert result.token is not None
    link = registration.join_url(result.token)

    # The confirmation, with a calendar file whose instant is the session's.
    await delivery.deliver_due(NOW + timedelta(minutes=1))
    (confirmation,) = inbox.taken()
    assert confirmation["Subject"] == "You're registered: Growth"
    assert link in text_of(confirmation)
    (invite,) = [part for part in confirmation.iter_attachments() if isinstance(part, EmailMessage)]
    assert invite.get_content_type() == "text/calendar"
    content = invite.get_content()
    event = Calendar.from_ical(content if isinstance(content, bytes) else content.encode()).walk(
        "VEVENT"
    )[0]
    assert event.decoded("dtstart").astimezone(UTC) == FIRST

    # Registered four hours ahead: the day-before reminder had passed and is not sent late; the
    # one-hour reminder comes at its time, in the registrant's zone (15:00 in Berlin is 9:00 in
    # New York), and once, whatever the ticks.
    await sequences.plan_pending(NOW + timedelta(minutes=1))
    await delivery.deliver_due(FIRST - timedelta(hours=1))
    (hour_before,) = inbox.taken()
    assert "9:00" in text_of(hour_before)
    assert "America/New_York" in text_of(hour_before)
    await delivery.deliver_due(FIRST - timedelta(hours=1))
    assert inbox.taken() == []
    await delivery.deliver_due(FIRST - timedelta(minutes=10))
    assert len(inbox.taken()) == 1  # ten minutes before
    await delivery.deliver_due(FIRST)
    assert len(inbox.taken()) == 1  # "starting now"

    # They never came: after the session, only the follow-up for those who missed it.
    await delivery.deliver_due(FIRST + timedelta(hours=3))
    (follow_up,) = inbox.taken()
    assert follow_up["Subject"] == "Sorry we missed you: Growth"
    assert link in text_of(follow_up)
    registrant = await Registrant.get(contact__email="ada@example.com")
    sent = await PlannedEmail.filter(registrant_id=registrant.id, state=EmailState.SENT).count()
    assert sent == 5  # the confirmation, three before the start and one after, each once
