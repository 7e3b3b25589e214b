"""The configured mail transport: SMTP when SMTP_URL is set, otherwise the database outbox."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import getaddresses

from app.models import OutboxMessage
from app.settings import get_settings
from emails import Mailer, compose, smtp_mailer_from_url
from emails.message import Attachment


class OutboxMailer:
    """Keeps each message in the database, browsable in the admin, instead of sending it."""

    async def send(self, message: EmailMessage) -> None:
        """Store the message exactly as it would have been sent."""
        recipients = ", ".join(addr for _, addr in getaddresses(message.get_all("To", [])))
        await OutboxMessage.create(
            message_id=str(message["Message-ID"]),
            sender=str(message["From"]),
            recipients=recipients,
            subject=str(message["Subject"]),
            content=message.as_string(),
        )


_override: Mailer | None = None


def get_mailer() -> Mailer:
    """The mailer for this process."""
    if _override is not None:
        return _override
    url = get_settings().smtp_url
    return smtp_mailer_from_url(url) if url else OutboxMailer()


def use_mailer(mailer: Mailer | None) -> None:
    """Replace the mailer (tests; None restores the configured one)."""
    global _override
    _override = mailer


async def send_now(
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> None:
    """Compose and deliver one transactional message (sign-in links, invitations and the like)."""
    message = compose(
        sender=get_settings().mail_from,
        to=to,
        subject=subject,
        text=text,
        html=html,
        attachments=attachments,
    )
    await get_mailer().send(message)
