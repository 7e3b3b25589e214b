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

import importlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import F

from app.models import Contact, EmailState, PlannedEmail
from app.settings import get_settings
from emails import SendError, compose
from emails.message import Attachment

log = logging.getLogger("encore.delivery")

BATCH = 200
MAX_ATTEMPTS = 6
FIRST_RETRY = timedelta(seconds=30)
STALE_CLAIM = timedelta(minutes=10)
ERROR_MAX = 2000


@dataclass(frozen=True)
class Rendered:
    """A message ready to send, or why it must not be sent (`skip`)."""

    to: str = ""
    subject: str = ""
    text: str = ""
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    skip: str | None = None


Renderer = Callable[[PlannedEmail, datetime], Awaitable[Rendered]]
_renderers: dict[str, Renderer] = {}


# The modules that register renderers; imported before the first delivery, so that a process
# that only delivers (the scheduler) knows every kind.
RENDERER_MODULES = ("app.services.registration", "app.services.schedules")


def _load_renderers() -> None:
    for module in RENDERER_MODULES:
        importlib.import_module(module)


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    """Register the function that renders planned emails of one kind."""

    def register(function: Renderer) -> Renderer:
        _renderers[kind] = function
        return function

    return register


def new_message_id() -> str:
    """A Message-ID for a planned row, fixed at planning so that a re-send keeps it."""
    sender = get_settings().mail_from
    domain = sender.rsplit("@", 1)[-1].strip(" >") or "localhost"
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
        message_id=new_message_id(),
        context=context or {},
    )


async def _claim(row_id: int, now: datetime) -> bool:
    claimed = await PlannedEmail.filter(id=row_id, state=EmailState.SCHEDULED).update(
        state=EmailState.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )
    return claimed == 1


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


async def deliver(row: PlannedEmail, now: datetime) -> EmailState:
    """Render and send one row as read after its claim; its new state."""
    from app.services import mail

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
    message = compose(
        sender=get_settings().mail_from,
        to=rendered.to,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=row.message_id,
        attachments=rendered.attachments,
    )
    try:
        await mail.get_mailer().send(message)
    except SendError as error:
        if error.permanent:
            await _finish(row, EmailState.FAILED, now, str(error))
            await _suppress(row, now)
            return EmailState.FAILED
        await _retry_later(row, now, str(error))
        return EmailState.SCHEDULED
    except Exception as error:
        log.exception("sending a planned email failed", extra={"email_id": row.id})
        await _retry_later(row, now, f"{type(error).__name__}: {error}")
        return EmailState.SCHEDULED
    await _finish(row, EmailState.SENT, now, None)
    return EmailState.SENT


async def deliver_due(now: datetime, *, limit: int = BATCH) -> dict[EmailState, int]:
    """Claim and send the rows due at `now` (oldest first); how many ended in each state."""
    _load_renderers()
    await _release_stale(now)
    ids: list[Any] = (
        await PlannedEmail.filter(state=EmailState.SCHEDULED, due_at__lte=now)
        .order_by("due_at", "id")
        .limit(limit)
        .values_list("id", flat=True)
    )
    outcome: dict[EmailState, int] = {}
    for row_id in ids:
        if not await _claim(int(row_id), now):
            continue  # another scheduler took it
        row = await PlannedEmail.get(id=row_id)
        state = await deliver(row, now)
        outcome[state] = outcome.get(state, 0) + 1
    return outcome
