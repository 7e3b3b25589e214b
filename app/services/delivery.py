"""Planned emails as rows: planned in the request, delivered by the scheduler, never twice.

A request that wants an email sent (a registration confirmation, the join link again) only
inserts a `PlannedEmail` row due now; the scheduler process claims due rows and sends them.
So a registration costs one INSERT instead of composing and sending a message while the
visitor waits, a slow or unreachable mail server never slows the form down, and nothing is
lost when a process dies: the row stays until it is sent.

Claiming is one conditional UPDATE (`scheduled -> sending`), so two scheduler processes never
send the same row. A row left in `sending` by a process that died is offered again after
`STALE_CLAIM`; it may then go out twice, with the same Message-ID, which receiving servers and
clients use to recognise the copy. Transient failures are retried with exponential backoff;
a permanent refusal (5xx) fails the row and suppresses the address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from tortoise import connections

from app.models import Contact, EmailState, PlannedEmail
from app.services import analytics_events
from app.services import sender as senders
from app.services.sender import Sender
from emails import SendError, compose
from emails.mailers import send_each
from emails.message import Attachment, HeaderInjectionError, address
from emails.raw import RawMessage
from emails.raw import build as build_raw

log = logging.getLogger("encore.delivery")

BATCH = 500
MAX_ATTEMPTS = 6
FIRST_RETRY = timedelta(seconds=30)
STALE_CLAIM = timedelta(minutes=10)
ERROR_MAX = 2000


@dataclass(frozen=True)
class Rendered:
    """A message ready to send, or why it must not be sent (`skip`)."""

    to: str = ""  # the To header; with `to_name`, the bare address and the name apart
    to_name: str | None = None
    subject: str = ""
    text: str = ""
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # such as List-Unsubscribe
    skip: str | None = None


Renderer = Callable[[PlannedEmail, datetime], Awaitable[Rendered]]
BulkRenderer = Callable[[list[PlannedEmail], datetime], Awaitable[list[Rendered]]]
_renderers: dict[str, Renderer] = {}
_bulk_renderers: dict[str, BulkRenderer] = {}


# The modules that register renderers; imported before the first delivery, so that a process
# that only delivers (the scheduler) knows every kind.
RENDERER_MODULES = (
    "app.services.chat",
    "app.services.registration",
    "app.services.schedules",
    "app.services.sequences",
)


def _load_renderers() -> None:
    for module in RENDERER_MODULES:
        importlib.import_module(module)


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    """Register the function that renders planned emails of one kind."""

    def register(function: Renderer) -> Renderer:
        _renderers[kind] = function
        return function

    return register


def bulk_renderer(kind: str) -> Callable[[BulkRenderer], BulkRenderer]:
    """Register the function that renders many planned emails of one kind at once.

    It reads what the rows need in a few queries and answers one `Rendered` per row, in
    order; such rows are built without `EmailMessage` and sent over reused connections.
    """

    def register(function: BulkRenderer) -> BulkRenderer:
        _bulk_renderers[kind] = function

        async def one(row: PlannedEmail, now: datetime) -> Rendered:
            (rendered,) = await function([row], now)
            return rendered

        _renderers.setdefault(kind, one)
        return function

    return register


# The sender's domain, read at most once per MESSAGE_DOMAIN_TTL seconds: planning makes many ids.
MESSAGE_DOMAIN_TTL = 60.0
_message_domain: tuple[float, str] = (float("-inf"), "")


async def message_domain() -> str:
    """The domain of new Message-IDs: the sender address's (Admin > Settings, or MAIL_FROM)."""
    global _message_domain
    checked, domain = _message_domain
    if time.monotonic() - checked < MESSAGE_DOMAIN_TTL:
        return domain
    sender = await senders.current()
    domain = sender.address.rsplit("@", 1)[-1].strip(" <>").lower() or "localhost"
    _message_domain = (time.monotonic(), domain)
    return domain


def forget_message_domain() -> None:
    """Read the sender's domain afresh for the next id (the sender settings changed)."""
    global _message_domain
    _message_domain = (float("-inf"), "")


def new_message_id(domain: str) -> str:
    """A Message-ID for a planned row, fixed at planning so that a re-send keeps it."""
    return f"<{secrets.token_hex(16)}@{domain}>"


async def plan(
    kind: str,
    *,
    to_email: str,
    due_at: datetime,
    registrant_id: int | None = None,
    context: dict[str, Any] | None = None,
) -> PlannedEmail:
    """Plan one email; the scheduler sends it when due."""
    _load_renderers()
    if kind not in _renderers:
        raise ValueError(f"no renderer for emails of kind {kind!r}")
    return await PlannedEmail.create(
        kind=kind,
        to_email=to_email,
        registrant_id=registrant_id,
        due_at=due_at,
        message_id=new_message_id(await message_domain()),
        context=context or {},
    )


async def _release_stale(now: datetime) -> int:
    """Offer again the rows whose claimant died while sending them."""
    return await PlannedEmail.filter(
        state=EmailState.SENDING, claimed_at__lt=now - STALE_CLAIM
    ).update(state=EmailState.SCHEDULED)


async def _finish(row: PlannedEmail, state: EmailState, now: datetime, error: str | None) -> None:
    await PlannedEmail.filter(id=row.id, state=EmailState.SENDING).update(
        state=state,
        sent_at=now if state is EmailState.SENT else None,
        error=error[:ERROR_MAX] if error else None,
    )
    if state is EmailState.SENT:
        await analytics_events.emails_sent([row.id], now)


async def _retry_later(row: PlannedEmail, now: datetime, error: str) -> None:
    attempts = row.attempts  # read after the claim, which counted this attempt
    if attempts >= MAX_ATTEMPTS:
        await _finish(row, EmailState.FAILED, now, error)
        return
    await PlannedEmail.filter(id=row.id, state=EmailState.SENDING).update(
        state=EmailState.SCHEDULED,
        due_at=now + FIRST_RETRY * 2 ** (attempts - 1),
        error=error[:ERROR_MAX],
    )


async def _suppress(row: PlannedEmail, now: datetime) -> None:
    await Contact.filter(email=row.to_email, suppressed_at__isnull=True).update(suppressed_at=now)


async def deliver(row: PlannedEmail, now: datetime, sender: Sender | None = None) -> EmailState:
    """Render and send one row as read after its claim; its new state."""
    if sender is None:
        sender = await senders.current()
    render = _renderers.get(row.kind)
    if render is None:
        await _finish(row, EmailState.FAILED, now, f"no renderer for kind {row.kind!r}")
        return EmailState.FAILED
    try:
        rendered = await render(row, now)
    except Exception as error:
        log.exception("rendering a planned email failed", extra={"email_id": row.id})
        await _finish(row, EmailState.FAILED, now, f"rendering failed: {error}")
        return EmailState.FAILED
    if rendered.skip is not None:
        await _finish(row, EmailState.CANCELLED, now, rendered.skip)
        return EmailState.CANCELLED
    return await _send_composed(row, rendered, now, sender)


async def _send_one(row: PlannedEmail, message: EmailMessage, now: datetime) -> EmailState:
    """Send one composed message and record how it went."""
    from app.services import mail

    try:
        await mail.get_mailer().send(message)
    except SendError as error:
        return await _settle(row, error, now)
    except Exception as error:
        log.exception("sending a planned email failed", extra={"email_id": row.id})
        failure = SendError(f"{type(error).__name__}: {error}", permanent=False)
        return await _settle(row, failure, now)
    await _finish(row, EmailState.SENT, now, None)
    return EmailState.SENT


async def _settle(row: PlannedEmail, failure: SendError, now: datetime) -> EmailState:
    """A refused row: failed with its address suppressed (5xx), or tried again later."""
    if failure.permanent:
        await _finish(row, EmailState.FAILED, now, str(failure))
        await _suppress(row, now)
        await analytics_events.email_bounced(row.id, now, str(failure))
        return EmailState.FAILED
    await _retry_later(row, now, str(failure))
    return EmailState.SCHEDULED


async def _claim_due(now: datetime, limit: int) -> list[PlannedEmail]:
    """Claim up to `limit` due rows in one statement (`scheduled -> sending`), oldest first.

    The inner SELECT skips rows another scheduler has locked (PostgreSQL), and the outer
    UPDATE checks the state again, so two schedulers never claim the same row.
    """
    connection = connections.get("default")
    postgres = connection.capabilities.dialect == "postgres"
    fields = PlannedEmail._meta.fields_map
    at = fields["claimed_at"].to_db_value(now, PlannedEmail)
    due = fields["due_at"].to_db_value(now, PlannedEmail)
    marks = ["$1", "$2", "$3"] if postgres else ["?", "?", "?"]
    lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
    claimed = await connection.execute_query_dict(
        "UPDATE planned_email SET state = 'sending', attempts = attempts + 1, "  # noqa: S608
        f"claimed_at = {marks[0]} WHERE state = 'scheduled' AND id IN ("
        f"SELECT id FROM planned_email WHERE state = 'scheduled' AND due_at <= {marks[1]} "
        f"ORDER BY due_at, id LIMIT {marks[2]}{lock}) RETURNING id",
        [at, due, limit],
    )
    ids = [int(row["id"]) for row in claimed]
    if not ids:
        return []
    return list(await PlannedEmail.filter(id__in=ids).order_by("due_at", "id"))


async def deliver_due(now: datetime, *, limit: int = BATCH) -> dict[EmailState, int]:
    """Claim and send the rows due at `now` (oldest first); how many ended in each state."""
    _load_renderers()
    await _release_stale(now)
    outcome: dict[EmailState, int] = {}
    rows = await _claim_due(now, limit)
    if not rows:
        return outcome
    # One sender for every message of this call: a change in the admin applies to the next.
    sender = await senders.current()
    by_kind: dict[str, list[PlannedEmail]] = {}
    for row in rows:
        by_kind.setdefault(row.kind, []).append(row)
    for kind, group in by_kind.items():
        if kind in _bulk_renderers:
            states = await _deliver_bulk(_bulk_renderers[kind], group, now, sender)
        else:
            states = [await deliver(row, now, sender) for row in group]
        for state in states:
            outcome[state] = outcome.get(state, 0) + 1
    return outcome


async def _deliver_bulk(
    render: BulkRenderer, rows: list[PlannedEmail], now: datetime, sender: Sender
) -> list[EmailState]:
    """Render claimed rows together, build them as bytes, send them over reused connections."""
    from app.services import mail

    try:
        rendered = await render(rows, now)
    except Exception as error:
        log.exception("rendering planned emails failed", extra={"count": len(rows)})
        for row in rows:
            await _finish(row, EmailState.FAILED, now, f"rendering failed: {error}")
        return [EmailState.FAILED] * len(rows)
    states: list[EmailState] = [EmailState.SENDING] * len(rows)
    skipped: dict[str, list[int]] = {}
    ready: list[tuple[int, RawMessage]] = []
    date = formatdate(localtime=False, usegmt=True)
    for index, (row, message) in enumerate(zip(rows, rendered, strict=True)):
        if message.skip is not None:
            skipped.setdefault(message.skip, []).append(row.id)
            states[index] = EmailState.CANCELLED
            continue
        try:
            raw = _raw(row, message, sender, date)
        except (ValueError, HeaderInjectionError) as error:
            # Not writable on the fast path (an address with non-ASCII characters, a header
            # with a line break): the careful composer decides, one message on its own.
            states[index] = await _send_composed(row, message, now, sender, str(error))
            continue
        if sender.dkim is not None:
            raw = dataclasses.replace(raw, data=senders.signed(raw.data, sender))
        ready.append((index, raw))
    for reason, ids in skipped.items():
        await _finish_many(ids, EmailState.CANCELLED, now, reason)
    # Each accepted message is recorded as soon as possible (many per statement) while the
    # rest are still being sent: a process killed mid-batch leaves only the few accepted since
    # the last statement in `sending`, to be sent again with the same Message-ID.
    recorder = _SentRecorder(now)
    writer = asyncio.get_running_loop().create_task(recorder.run())

    def report(position: int, failure: SendError | None) -> None:
        if failure is None:
            recorder.add(rows[ready[position][0]].id)

    try:
        results = await send_each(mail.get_mailer(), [m for _, m in ready], report)
    finally:
        await recorder.close(writer)
    for (index, _), failure in zip(ready, results, strict=True):
        # Sent rows were recorded as they went; the others are settled here.
        states[index] = await _settle(rows[index], failure, now) if failure else EmailState.SENT
    return states


class _SentRecorder:
    """Marks rows sent in the background, as many per statement as have piled up."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.ids: list[int] = []
        self.wake = asyncio.Event()
        self.closing = False

    def add(self, row_id: int) -> None:
        """One more row whose message the server accepted."""
        self.ids.append(row_id)
        self.wake.set()

    async def run(self) -> None:
        """Write until closed and nothing is left."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.ids:
                batch, self.ids = self.ids, []
                await _finish_many(batch, EmailState.SENT, self.now, None)
            if self.closing:
                return

    async def close(self, writer: asyncio.Task[None]) -> None:
        """Let the writer finish what is left."""
        self.closing = True
        self.wake.set()
        await writer


def _raw(row: PlannedEmail, message: Rendered, sender: Sender, date: str) -> RawMessage:
    if message.to_name is None or message.attachments:
        raise ValueError("needs the careful composer")
    headers = dict(message.headers)
    if sender.reply_to:
        headers["Reply-To"] = sender.reply_to
    return build_raw(
        sender=sender.from_header,
        sender_address=sender.address,
        to_name=message.to_name,
        to_address=message.to,
        subject=message.subject,
        text=message.text,
        html=message.html,
        message_id=row.message_id,
        date=date,
        headers=headers,
    )


async def _send_composed(
    row: PlannedEmail, rendered: Rendered, now: datetime, sender: Sender, why: str = ""
) -> EmailState:
    """Compose one message with the standard library, sign it if the sender signs, send it."""
    try:
        to = rendered.to
        if rendered.to_name:
            to = address(rendered.to_name, rendered.to)
        message = compose(
            sender=sender.from_header,
            to=to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            reply_to=sender.reply_to or None,
            message_id=row.message_id,
            headers=dict(rendered.headers),
            attachments=rendered.attachments,
        )
    except (ValueError, HeaderInjectionError) as error:
        reason = f"cannot be composed: {error}" + (f" ({why})" if why else "")
        await _finish(row, EmailState.FAILED, now, reason)
        return EmailState.FAILED
    senders.sign_message(message, sender)
    return await _send_one(row, message, now)


async def _finish_many(ids: list[int], state: EmailState, now: datetime, error: str | None) -> None:
    if not ids:
        return
    await PlannedEmail.filter(id__in=ids, state=EmailState.SENDING).update(
        state=state,
        sent_at=now if state is EmailState.SENT else None,
        error=error[:ERROR_MAX] if error else None,
    )
    if state is EmailState.SENT:
        await analytics_events.emails_sent(ids, now)
