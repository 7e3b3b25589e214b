"""Group commit for new registrations: many forms, one transaction.

A crowd registering at once (a webinar announced in a newsletter) would otherwise cost about
nine statements and a commit per person. Here each web process keeps one queue: the first
valid form starts a writer, forms that arrive while it writes wait for the next batch, and a
batch stores every new person in a handful of statements in one transaction, whatever its
size. Each request is answered when its batch has committed, so nothing is acknowledged that
is not stored.

Only the plain case goes this way: an address this database has never seen, registering for a
scheduled session without a capacity that the current rules still offer (checked again in the
batch against the database: the form was checked against rules read a moment earlier).
Everything else (a returning address, the same address twice in one batch, a session with
seats to count, watching on demand, an edit in between, a batch that fails) is answered
`FALLBACK`, and the caller takes the careful one-by-one path, which handles it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from app.models import (
    Contact,
    PlannedEmail,
    Registrant,
    RegistrationAttempt,
    Schedule,
    WebinarSession,
    WebinarStatus,
)
from app.schedule import ScheduleRuleError, ScheduleRules, slot_exists
from app.services import analytics_events, delivery, rows, sessions

log = logging.getLogger("encore.intake")

MAX_BATCH = 256


class Outcome(Enum):
    """What became of one submitted registration."""

    STORED = "stored"
    LIMITED = "limited"  # the client has used up its registrations for now
    FALLBACK = "fallback"  # not stored here: take the one-by-one path


@dataclass
class NewRegistration:
    """A valid form for a new person, as unsaved rows; ids are filled in when stored."""

    client_hash: str
    limit: int
    window_start: datetime
    now: datetime
    contact: Contact
    registrant: Registrant  # everything but contact_id and session_id
    webinar_id: int
    starts_at: datetime
    session_kind: str
    viewer_zone: ZoneInfo
    email_kind: str
    session: WebinarSession | None = None


class Intake:
    """One queue per event loop; the writer drains it in batches."""

    def __init__(self) -> None:
        self._waiting: list[tuple[NewRegistration, asyncio.Future[Outcome]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: NewRegistration) -> Outcome:
        """Queue one registration and wait until its batch is written."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        # Shielded: a visitor who closes the tab does not undo a registration being written.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            items = [item for item, _ in batch]
            try:
                outcomes = await store(items)
            except Exception:
                log.exception("a batch of registrations failed", extra={"size": len(items)})
                outcomes = [Outcome.FALLBACK] * len(items)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)


_intakes: dict[asyncio.AbstractEventLoop, Intake] = {}


def intake() -> Intake:
    """The queue of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _intakes.get(loop)
    if found is None:
        for other in [known for known in _intakes if known.is_closed()]:
            del _intakes[other]
        found = _intakes[loop] = Intake()
    return found


async def store(batch: list[NewRegistration]) -> list[Outcome]:
    """Write a batch in one transaction; the outcome of each item, in order."""
    outcomes = [Outcome.FALLBACK] * len(batch)
    first_of_address: dict[str, int] = {}
    for index, item in enumerate(batch):
        first_of_address.setdefault(item.contact.email, index)
    domain = await delivery.message_domain()
    async with in_transaction() as connection:
        known: set[Any] = set(
            await Contact.filter(email__in=list(first_of_address)).values_list("email", flat=True)
        )
        fresh = [index for email, index in first_of_address.items() if email not in known]
        fresh = await _still_offered(batch, fresh)
        admitted = await _admit(connection, batch, fresh, outcomes)
        if not admitted:
            return outcomes
        await _attach_sessions(connection, [batch[index] for index in admitted])
        # A conflict means the address registered in another process meanwhile: that
        # item is left out here and goes the one-by-one way.
        contact_ids = {
            row["email"]: row["id"]
            for row in await rows.insert_many(
                connection,
                [batch[i].contact for i in admitted],
                returning=("id", "email"),
                ignore_conflicts=True,
            )
        }
        admitted = [i for i in admitted if batch[i].contact.email in contact_ids]
        for index in admitted:
            item = batch[index]
            item.contact.id = contact_ids[item.contact.email]
            item.contact._saved_in_db = True
            item.registrant.contact_id = item.contact.id
            assert item.session is not None
            item.registrant.session_id = item.session.id
        registrant_ids = {
            row["join_token_hash"]: row["id"]
            for row in await rows.insert_many(
                connection,
                [batch[i].registrant for i in admitted],
                returning=("id", "join_token_hash"),
                ignore_conflicts=True,
            )
        }
        stored = [i for i in admitted if batch[i].registrant.join_token_hash in registrant_ids]
        emails = []
        for index in stored:
            item = batch[index]
            item.registrant.id = registrant_ids[item.registrant.join_token_hash]
            item.registrant._saved_in_db = True
            emails.append(
                PlannedEmail(
                    kind=item.email_kind,
                    to_email=item.contact.email,
                    registrant_id=item.registrant.id,
                    due_at=item.now,
                    message_id=delivery.new_message_id(domain),
                    context={"new": True},
                )
            )
            outcomes[index] = Outcome.STORED
        await rows.insert_many(connection, emails, returning=())
        events = [
            analytics_events.registration_event(batch[i].registrant, batch[i].now) for i in stored
        ]
        await rows.insert_many(connection, events, returning=())
    return outcomes


async def _still_offered(batch: list[NewRegistration], fresh: list[int]) -> list[int]:
    """The items whose session is still offered as the database says now.

    The form was checked against rules that may be a few seconds old; an edit or an
    unpublish since then sends the item the one-by-one way, which reads everything afresh.
    """
    ids = {batch[index].webinar_id for index in fresh}
    rules: dict[int, ScheduleRules] = {}
    for schedule in await Schedule.filter(
        webinar_id__in=ids, webinar__status=WebinarStatus.PUBLISHED
    ):
        try:
            rules[schedule.webinar_id] = sessions.rules_of(schedule)
        except ScheduleRuleError:
            continue
    kept = []
    for index in fresh:
        item = batch[index]
        current = rules.get(item.webinar_id)
        if (
            current is not None
            and current.capacity is None
            and item.starts_at - current.cutoff > item.now
            and slot_exists(current, item.starts_at, viewer_zone=item.viewer_zone)
        ):
            kept.append(index)
    return kept


async def _admit(
    connection: BaseDBAsyncClient,
    batch: list[NewRegistration],
    fresh: list[int],
    outcomes: list[Outcome],
) -> list[int]:
    """Apply the per-client limits in arrival order; record the attempts let through."""
    if not fresh:
        return []
    hashes = sorted({batch[i].client_hash for i in fresh})
    since = min(batch[i].window_start for i in fresh)
    counts: list[dict[str, Any]] = (
        await RegistrationAttempt.filter(client_hash__in=hashes, at__gt=since)
        .annotate(attempts=Count("id"))
        .group_by("client_hash")
        .values("client_hash", "attempts")
    )
    used = {row["client_hash"]: int(row["attempts"]) for row in counts}
    admitted = []
    for index in fresh:
        item = batch[index]
        if used.get(item.client_hash, 0) >= item.limit:
            outcomes[index] = Outcome.LIMITED
            continue
        used[item.client_hash] = used.get(item.client_hash, 0) + 1
        admitted.append(index)
    await rows.insert_many(
        connection,
        [RegistrationAttempt(client_hash=batch[i].client_hash, at=batch[i].now) for i in admitted],
        returning=(),
    )
    return admitted


async def _attach_sessions(connection: BaseDBAsyncClient, items: list[NewRegistration]) -> None:
    """The stored session of each item's slot, created for the first registrant."""
    wanted = {(item.webinar_id, item.starts_at, item.session_kind) for item in items}

    async def load() -> dict[tuple[int, datetime, str], WebinarSession]:
        found: dict[tuple[int, datetime, str], WebinarSession] = {}
        for webinar_id in {key[0] for key in wanted}:
            starts = [key[1] for key in wanted if key[0] == webinar_id]
            for row in await WebinarSession.filter(webinar_id=webinar_id, starts_at__in=starts):
                found[(webinar_id, row.starts_at, row.kind)] = row
        return found

    sessions = await load()
    missing = wanted - sessions.keys()
    if missing:
        await rows.insert_many(
            connection,
            [
                WebinarSession(webinar_id=webinar_id, starts_at=starts_at, kind=kind)
                for webinar_id, starts_at, kind in sorted(missing)
            ],
            returning=(),
            ignore_conflicts=True,
        )
        sessions = await load()
    for item in items:
        item.session = sessions[(item.webinar_id, item.starts_at, item.session_kind)]
