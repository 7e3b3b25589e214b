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
import contextlib
import dataclasses
import importlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from tortoise import connections

from app.models import Contact, EmailState, PlannedEmail
from app.services import analytics_events, rows
from app.services import sender as senders
from app.services.sender import Sender
from emails import SendError, compose
from emails.mailers import send_each
from emails.message import Attachment, HeaderInjectionError, address
from emails.raw import RawMessage, Writer

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


@dataclass(slots=True)
class Claimed:
    """A planned email as claimed for sending: what delivery and bulk renderers read of its row."""

    id: int
    kind: str
    to_email: str
    registrant_id: int | None
    message_id: str
    attempts: int  # counting the attempt of this claim
    context: dict[str, Any]

    @classmethod
    def of(cls, row: PlannedEmail) -> Claimed:
        """The claimed view of a row read as a model."""
        return cls(
            row.id,
            row.kind,
            row.to_email,
            row.registrant_id,
            row.message_id,
            row.attempts,
            row.context or {},
        )


Row = PlannedEmail | Claimed
Renderer = Callable[[PlannedEmail, datetime], Awaitable[Rendered]]
BulkRenderer = Callable[[list[Claimed], datetime], Awaitable[list[Rendered]]]
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
            (rendered,) = await function([Claimed.of(row)], now)
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


async def _finish(row: Row, state: EmailState, now: datetime, error: str | None) -> None:
    if state is EmailState.SENT:
        await _mark_sent([row.id], now)
        return
    await PlannedEmail.filter(id=row.id, state=EmailState.SENDING).update(
        state=state, sent_at=None, error=error[:ERROR_MAX] if error else None
    )


async def _retry_later(row: Row, now: datetime, error: str) -> None:
    attempts = row.attempts  # read after the claim, which counted this attempt
    if attempts >= MAX_ATTEMPTS:
        await _finish(row, EmailState.FAILED, now, error)
        return
    await PlannedEmail.filter(id=row.id, state=EmailState.SENDING).update(
        state=EmailState.SCHEDULED,
        due_at=now + FIRST_RETRY * 2 ** (attempts - 1),
        error=error[:ERROR_MAX],
    )


async def _suppress(row: Row, now: datetime) -> None:
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


async def _send_one(row: Row, message: EmailMessage, now: datetime) -> EmailState:
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


async def _settle(row: Row, failure: SendError, now: datetime) -> EmailState:
    """A refused row: failed with its address suppressed (5xx), or tried again later."""
    if failure.permanent:
        await _finish(row, EmailState.FAILED, now, str(failure))
        await _suppress(row, now)
        await analytics_events.email_bounced(row.id, now, str(failure))
        return EmailState.FAILED
    await _retry_later(row, now, str(failure))
    return EmailState.SCHEDULED


async def _claim_due(now: datetime, limit: int) -> list[Claimed]:
    """Claim up to `limit` due rows in one statement (`scheduled -> sending`), oldest first.

    The inner SELECT skips rows another scheduler has locked (PostgreSQL), and the outer
    UPDATE checks the state again, so two schedulers never claim the same row. The rows come
    back from the UPDATE itself, as read after the claim, without building model objects.
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
        f"ORDER BY due_at, id LIMIT {marks[2]}{lock}) "
        "RETURNING id, kind, to_email, registrant_id, due_at, message_id, attempts, context",
        [at, due, limit],
    )
    context = fields["context"]
    return [
        Claimed(
            id=int(row["id"]),
            kind=str(row["kind"]),
            to_email=str(row["to_email"]),
            registrant_id=None if row["registrant_id"] is None else int(row["registrant_id"]),
            message_id=str(row["message_id"]),
            attempts=int(row["attempts"]),
            context=context.to_python_value(row["context"]) or {},
        )
        for row in sorted(claimed, key=_due_order)
    ]


def _due_order(row: Mapping[str, Any]) -> tuple[datetime, int]:
    """Oldest first, as claimed (RETURNING keeps no order): the due moment, then the id."""
    due = row["due_at"]
    moment = due if isinstance(due, datetime) else datetime.fromisoformat(str(due))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, int(row["id"])


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
    by_kind: dict[str, list[Claimed]] = {}
    for row in rows:
        by_kind.setdefault(row.kind, []).append(row)
    for kind, group in by_kind.items():
        if kind in _bulk_renderers:
            states = await _deliver_bulk(_bulk_renderers[kind], group, now, sender)
        else:
            # Renderers of one row at a time take the model, read after the claim.
            models = await PlannedEmail.filter(id__in=[row.id for row in group]).order_by(
                "due_at", "id"
            )
            states = [await deliver(row, now, sender) for row in models]
        for state in states:
            outcome[state] = outcome.get(state, 0) + 1
    return outcome


async def _deliver_bulk(
    render: BulkRenderer, rows: list[Claimed], now: datetime, sender: Sender
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
    writer = _writer(sender)
    for index, (row, message) in enumerate(zip(rows, rendered, strict=True)):
        if message.skip is not None:
            skipped.setdefault(message.skip, []).append(row.id)
            states[index] = EmailState.CANCELLED
            continue
        try:
            if writer is None or message.to_name is None or message.attachments:
                raise ValueError("needs the careful composer")
            raw = writer.write(
                to_name=message.to_name,
                to_address=message.to,
                subject=message.subject,
                text=message.text,
                html=message.html,
                message_id=row.message_id,
                headers=message.headers,
            )
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
    task = asyncio.get_running_loop().create_task(recorder.run())

    def report(position: int, failure: SendError | None) -> None:
        if failure is None:
            recorder.add(rows[ready[position][0]].id)

    try:
        results = await send_each(mail.get_mailer(), [m for _, m in ready], report)
    finally:
        await recorder.close(task)
    for (index, _), failure in zip(ready, results, strict=True):
        # Sent rows were recorded as they went; the others are settled here.
        states[index] = await _settle(rows[index], failure, now) if failure else EmailState.SENT
    return states


def _writer(sender: Sender) -> Writer | None:
    """The batch's message writer (None: the sender cannot be written on the fast path)."""
    shared = {"Reply-To": sender.reply_to} if sender.reply_to else {}
    try:
        return Writer(
            sender=sender.from_header,
            sender_address=sender.address,
            date=formatdate(localtime=False, usegmt=True),
            headers=shared,
        )
    except (ValueError, HeaderInjectionError):
        return None


# The least time between two writes of the recorder: at a thousand messages a second, each
# write marks a few dozen rows instead of one or two, and a process killed mid-batch leaves
# only the messages accepted in the last few milliseconds unrecorded.
RECORD_GAP = 0.01


class _SentRecorder:
    """Marks rows sent in the background, as many per statement as have piled up."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.ids: list[int] = []
        self.wake = asyncio.Event()
        self.closed = asyncio.Event()
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
                await _mark_sent(batch, self.now)
                if not self.closing:
                    # Let the next ones pile up a little (a closing batch cuts this short).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.closed.wait(), RECORD_GAP)
            if self.closing:
                return

    async def close(self, writer: asyncio.Task[None]) -> None:
        """Let the writer finish what is left."""
        self.closing = True
        self.closed.set()
        self.wake.set()
        await writer


async def _send_composed(
    row: Row, rendered: Rendered, now: datetime, sender: Sender, why: str = ""
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
    if state is EmailState.SENT:
        await _mark_sent(ids, now)
        return
    await PlannedEmail.filter(id__in=ids, state=EmailState.SENDING).update(
        state=state, sent_at=None, error=error[:ERROR_MAX] if error else None
    )


# Bind parameters per statement, well under both databases' limits.
_IDS_PER_STATEMENT = 10_000


async def _mark_sent(ids: list[int], now: datetime) -> None:
    """Mark claimed rows sent, then have the database write their `email_sent` events.

    Two statements for any number of rows, and nothing read back: the events are made from
    the rows this call marked (state sent at `now`), so a row claimed again meanwhile by
    another scheduler gets none from here. A failure to write the events is logged, never
    raised: the emails went out whatever happens to their events.
    """
    connection = connections.get("default")
    postgres = connection.capabilities.dialect == "postgres"
    at = PlannedEmail._meta.fields_map["sent_at"].to_db_value(now, PlannedEmail)
    first = "$1" if postgres else "?"
    data = "jsonb_build_object" if postgres else "json_object"
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = ids[start : start + _IDS_PER_STATEMENT]
        among, values = rows.any_of(connection.capabilities.dialect, 1, chunk, sql_type="bigint")
        await connection.execute_query(
            f"UPDATE planned_email SET state = 'sent', sent_at = {first}, error = NULL "  # noqa: S608
            f"WHERE state = 'sending' AND id {among}",
            [at, *values],
        )
        try:
            await connection.execute_query(
                "INSERT INTO analytics_event "  # noqa: S608
                "(kind, at, webinar_id, session_id, registrant_id, contact_id, data) "
                f"SELECT '{analytics_events.EMAIL_SENT}', {first}, r.webinar_id, r.session_id, "
                f"p.registrant_id, COALESCE(r.contact_id, c.id), "
                f"{data}('email_id', p.id, 'email_kind', p.kind) "
                "FROM planned_email p LEFT JOIN registrant r ON r.id = p.registrant_id "
                "LEFT JOIN contact c ON r.id IS NULL AND p.to_email <> '' AND c.email = p.to_email "
                f"WHERE p.id {among} AND p.state = 'sent' AND p.sent_at = {first}",
                [at, *values] if postgres else [at, *values, at],
            )
        except Exception:
            log.exception("recording email events failed", extra={"count": len(chunk)})
