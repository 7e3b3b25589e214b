"""The configured mail transport: SMTP when SMTP_URL is set, otherwise the database outbox."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import getaddresses

from tortoise.transactions import in_transaction

from app.models import OutboxMessage
from app.services import sender as senders
from app.services.rows import insert_many
from app.settings import get_settings
from emails import Mailer, SendError, compose, smtp_mailer_from_url
from emails.mailers import Report
from emails.message import Attachment
from emails.raw import RawMessage


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

    async def send_many(
        self, messages: Sequence[RawMessage], report: Report | None = None
    ) -> list[SendError | None]:
        """Store prepared messages in one statement, exactly as they would have been sent."""
        rows = [
            OutboxMessage(
                message_id=message.message_id,
                sender=message.header("From"),
                recipients=message.recipient,
                subject=message.subject,
                content=message.data.decode("ascii"),
            )
            for message in messages
        ]
        async with in_transaction() as connection:
            await insert_many(connection, rows, returning=())
        if report is not None:
            for index in range(len(messages)):
                report(index, None)
        return [None] * len(messages)


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
    sender = await senders.current()
    message = compose(
        sender=sender.from_header,
        to=to,
        subject=subject,
        text=text,
        html=html,
        reply_to=sender.reply_to or None,
        attachments=attachments,
    )
    senders.sign_message(message, sender)
    await get_mailer().send(message)
