"""Events from outside the room: landing-page views, registrations, emails; and their retention.

Landing-page views come at the rate of a crowd reading a newsletter, so they are buffered per
process and written together about once a second (one multi-row INSERT for the events, one for
the daily visitor rows), like the room's heartbeats. A visitor is the random id of a long-lived
first-party cookie; `DailyVisitor` keeps each visitor once per webinar and UTC day, so counting
distinct visitors never reads the views themselves.

Events older than the workspace's retention period are deleted by the scheduler; the rows
derived from them (Attendance, DailyVisitor) are kept, so the dashboards' figures stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app.models import (
    AnalyticsEvent,
    Contact,
    DailyVisitor,
    PlannedEmail,
    Registrant,
)
from app.services import workspace
from app.services.rows import insert_many

log = logging.getLogger("encore.analytics")

LANDING_VIEW = "landing_view"
REGISTRATION = "registration"
EMAIL_SENT = "email_sent"
EMAIL_BOUNCED = "email_bounced"
# Written by app.services.unsubscribe when a contact unsubscribes.
UNSUBSCRIBED = "unsubscribed"

FLUSH_SECONDS = 1.0
MAX_PENDING = 50_000
MIN_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 3650
_PURGE_CHUNK = 10_000
_VISITOR = re.compile(r"[0-9a-f]{16}")


# --- visitors -----------------------------------------------------------------------------------


def new_visitor_id() -> str:
    """A new random visitor id (64 bits, as 16 hex digits) for the visitor cookie."""
    return secrets.token_hex(8)


def parse_visitor_id(raw: str) -> str | None:
    """The visitor id a cookie holds, or None when it is not one of ours."""
    return raw if _VISITOR.fullmatch(raw) else None


def visitor_number(visitor: str) -> int:
    """The visitor id as a signed 64-bit number (how DailyVisitor stores it)."""
    return int(visitor, 16) - 2**63


@dataclass
class _LandingViews:
    """Views waiting to be written, and the task that writes them."""

    events: list[AnalyticsEvent] = field(default_factory=list)
    visitors: set[tuple[int, date, int]] = field(default_factory=set)
    writer: asyncio.Task[None] | None = None

    def add(self, webinar_id: int, visitor: str, at: datetime, data: dict[str, Any]) -> None:
        if len(self.events) >= MAX_PENDING:
            return  # the database is away for long: drop rather than grow without limit
        self.events.append(
            AnalyticsEvent(
                kind=LANDING_VIEW, at=at, webinar_id=webinar_id, data={"visitor": visitor, **data}
            )
        )
        self.visitors.add((webinar_id, at.date(), visitor_number(visitor)))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.get_running_loop().create_task(self._write_soon())

    async def _write_soon(self) -> None:
        while self.events:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:
                log.exception("writing landing-page views failed; kept for the next try")

    async def flush(self) -> int:
        events, visitors = self.events, self.visitors
        if not events:
            return 0
        self.events, self.visitors = [], set()
        try:
            async with in_transaction() as connection:
                await insert_many(connection, events, returning=())
                await _add_visitors(connection, visitors)
        except BaseException:
            # Cancelled or failed: nothing was committed, so everything is kept for later.
            self.events = (events + self.events)[-MAX_PENDING:]
            self.visitors |= visitors
            raise
        return len(events)


async def _add_visitors(
    connection: BaseDBAsyncClient, visitors: Iterable[tuple[int, date, int]]
) -> None:
    rows = [
        DailyVisitor(webinar_id=webinar_id, day=day, visitor=number)
        for webinar_id, day, number in sorted(visitors)
    ]
    await insert_many(connection, rows, returning=(), ignore_conflicts=True)


_views: dict[asyncio.AbstractEventLoop, _LandingViews] = {}


def _landing_views() -> _LandingViews:
    loop = asyncio.get_running_loop()
    found = _views.get(loop)
    if found is None:
        for other in [known for known in _views if known.is_closed()]:
            del _views[other]
        found = _views[loop] = _LandingViews()
    return found


def landing_view(
    *, webinar_id: int, visitor: str, at: datetime, utm: dict[str, str], referrer: str
) -> None:
    """Count one person's view of a landing page (written within about a second)."""
    data: dict[str, Any] = {}
    if utm:
        data["utm"] = utm
    if referrer:
        data["referrer"] = referrer
    _landing_views().add(webinar_id, visitor, at, data)


async def flush_landing_views() -> int:
    """Write the views this process still holds now (at shutdown, and in tests); how many."""
    views = _landing_views()
    writer = views.writer
    if writer is not None and not writer.done():
        # Stopped rather than left to sleep: the process may be about to close its loop.
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    return await views.flush()


async def rebuild_visitors() -> int:
    """Recount DailyVisitor rows from the landing-page views kept; how many rows there are."""
    found = await AnalyticsEvent.filter(kind=LANDING_VIEW, webinar_id__isnull=False).values_list(
        "webinar_id", "at", "data"
    )
    visitors: set[tuple[int, date, int]] = set()
    for webinar_id, at, data in found:
        visitor = parse_visitor_id(str((data or {}).get("visitor", "")))
        if visitor is not None:
            visitors.add((int(webinar_id), at.date(), visitor_number(visitor)))
    days = sorted({day for _, day, _ in visitors})
    async with in_transaction() as connection:
        # Days whose views passed the retention period keep their rows.
        for first in range(0, len(days), 500):
            await (
                DailyVisitor.filter(day__in=days[first : first + 500]).using_db(connection).delete()
            )
        await _add_visitors(connection, visitors)
    return len(visitors)


# --- registrations and emails -------------------------------------------------------------------


def registration_event(registrant: Registrant, at: datetime) -> AnalyticsEvent:
    """The unsaved event of a new registration (the group commit writes many at once)."""
    return AnalyticsEvent(
        kind=REGISTRATION,
        at=at,
        webinar_id=registrant.webinar_id,
        session_id=registrant.session_id,
        registrant_id=registrant.id,
        contact_id=registrant.contact_id,
    )


async def record_registration(registrant: Registrant, at: datetime) -> None:
    """Write the event of one new registration."""
    await registration_event(registrant, at).save()


async def email_bounced(email_id: int, at: datetime, reason: str) -> None:
    """Write an `email_bounced` event: the receiving server refused the email for good."""
    await _email_events(EMAIL_BOUNCED, [email_id], at, {"reason": reason[:200]})


async def _email_events(
    kind: str, email_ids: Sequence[int], at: datetime, extra: dict[str, Any]
) -> None:
    # The email already went out (or failed) whatever happens here: a lost event is logged,
    # never raised into the delivery that called.
    if not email_ids:
        return
    query = PlannedEmail.filter(id__in=list(email_ids))
    try:
        rows = await query.values(
            "id",
            "kind",
            "to_email",
            "registrant_id",
            webinar_id="registrant__webinar_id",
            session_id="registrant__session_id",
            contact_id="registrant__contact_id",
        )
        addresses = {row["to_email"] for row in rows if row["contact_id"] is None}
        contacts: dict[str, int] = {}
        if addresses:
            contacts = dict(
                await Contact.filter(email__in=addresses - {""}).values_list("email", "id")
            )
        events = [
            AnalyticsEvent(
                kind=kind,
                at=at,
                webinar_id=row["webinar_id"],
                session_id=row["session_id"],
                registrant_id=row["registrant_id"],
                contact_id=row["contact_id"] or contacts.get(row["to_email"]),
                data={"email_id": row["id"], "email_kind": row["kind"], **extra},
            )
            for row in rows
        ]
        await insert_many(connections.get("default"), events, returning=())
    except Exception:
        log.exception("recording email events failed", extra={"kind": kind})


# --- retention ----------------------------------------------------------------------------------


def parse_retention(raw: str) -> int:
    """Days to keep events from a form value; raises ValueError with a message for the field."""
    text = raw.strip()
    if not text.isdigit():
        raise ValueError("Enter a whole number of days (0 keeps events forever).")
    days = int(text)
    if days != 0 and not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise ValueError(
            f"Enter 0 (keep forever) or between {MIN_RETENTION_DAYS} and "
            f"{MAX_RETENTION_DAYS:,} days."
        )
    return days


async def purge_expired(now: datetime) -> int:
    """Delete the events older than the retention period (never derived rows); how many."""
    days = (await workspace.load()).analytics_retention_days
    if not days:
        return 0
    cutoff = now - timedelta(days=days)
    removed = 0
    while True:
        # In chunks: one huge DELETE would hold the table (and SQLite's writer) for long.
        ids = (
            await AnalyticsEvent.filter(at__lt=cutoff)
            .limit(_PURGE_CHUNK)
            .values_list("id", flat=True)
        )
        if not ids:
            return removed
        removed += await AnalyticsEvent.filter(id__in=list(ids)).delete()
