"""Group commit for new registrations: many forms, one transaction.

A crowd registering at once (a webinar announced in a newsletter) would otherwise cost about
nine statements and a commit per person. Here each web process keeps one queue: the first
valid form starts a writer, forms that arrive while it writes wait for the next batch, and a
batch stores every new person in a handful of statements in one transaction, whatever its
size. Each request is answered when its batch has committed, so nothing is acknowledged that
is not stored. A form reaches the queue as plain values and the batch writes plain tuples with
hand-written SQL (`rows.insert_rows`): no ORM query or model object per person.

Only the plain case goes this way: an address this database has never seen, registering for a
scheduled session without a capacity that the current rules still offer (checked again in the
batch against the database: the form was checked against rules read a moment earlier).
Everything else (a returning address, the same address twice in one batch, a session with
seats to count, watching on demand, an edit in between, a batch that fails) is answered
`FALLBACK`, and the caller takes the careful one-by-one path, which handles it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from tortoise import connections, timezone
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.transactions import in_transaction

from app.models import (
    AnalyticsEvent,
    Contact,
    PlannedEmail,
    Registrant,
    RegistrationAttempt,
    Schedule,
    Webinar,
    WebinarSession,
    WebinarStatus,
)
from app.schedule import ScheduleRuleError, ScheduleRules, parse_schedule, slot_exists
from app.services import analytics_events, delivery, rows

log = logging.getLogger("encore.intake")

MAX_BATCH = 256
# Parsed schedule rules by their stored text: a batch reads the rules every time, but they
# rarely change, and parsing them costs more than the read.
RULES_CACHE_SIZE = 64


class Outcome(Enum):
    """What became of one submitted registration."""

    STORED = "stored"
    LIMITED = "limited"  # the client has used up its registrations for now
    FALLBACK = "fallback"  # not stored here: take the one-by-one path


@dataclass(slots=True, eq=False)
class NewRegistration:
    """A valid form for a new person as plain values; the ids are filled in when stored."""

    client_hash: str
    limit: int
    window_start: datetime
    now: datetime
    email: str
    name: str
    phone: str
    company_domain: str
    webinar_id: int
    starts_at: datetime
    session_kind: str
    viewer_zone: ZoneInfo
    join_token_hash: str
    join_token_sealed: str
    timezone: str
    language: str
    answers: dict[str, Any]
    utm: dict[str, str]
    referrer: str
    email_kind: str
    contact_id: int = 0
    registrant_id: int = 0
    created_at: datetime | None = None
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


_CONTACT_FIELDS = ("email", "name", "phone", "company_domain", "created_at")
_REGISTRANT_FIELDS = (
    "contact_id",
    "webinar_id",
    "session_id",
    "join_token_hash",
    "join_token_sealed",
    "timezone",
    "language",
    "answers",
    "utm",
    "referrer",
    "link_sent_at",
    "link_sends",
    "created_at",
)
_EMAIL_FIELDS = (
    "kind",
    "to_email",
    "registrant_id",
    "due_at",
    "message_id",
    "context",
    "created_at",
)
_EVENT_FIELDS = ("kind", "at", "webinar_id", "session_id", "registrant_id", "contact_id")

# A batch is written as a plan: a generator that yields each statement (SQL and parameters)
# and is sent the rows it returned. On PostgreSQL each statement is awaited in turn. On
# SQLite, whose driver runs every statement in its own thread and hands each result back
# through the event loop, the whole plan runs in that thread in one go, from BEGIN to
# COMMIT: the event loop stays free for requests meanwhile, and a batch does not wait for a
# busy loop to come round once per statement.
Rows = list[dict[str, Any]]
Plan = Generator[rows.Statement, Rows, list[Outcome]]


async def store(batch: list[NewRegistration]) -> list[Outcome]:
    """Write a batch in one transaction; the outcome of each item, in order."""
    domain = await delivery.message_domain()
    client = connections.get("default")
    if isinstance(client, SqliteClient) and not isinstance(client, TransactionalDBClient):
        # The connection's lock (the one its transactions take) is held meanwhile, and the
        # driver's `_execute` runs a function in its thread (it has no public call for that).
        async with client.acquire_connection() as connection:
            written: list[Outcome] = await connection._execute(
                _run_sqlite, connection._conn, batch, domain
            )
            return written
    async with in_transaction() as connection:
        plan = _plan(connection.capabilities.dialect, batch, domain)
        try:
            sql, parameters = next(plan)
            while True:
                answer = await connection.execute_query_dict(sql, parameters)
                sql, parameters = plan.send(answer)
        except StopIteration as done:
            outcomes: list[Outcome] = done.value
            return outcomes


def _run_sqlite(
    connection: sqlite3.Connection, batch: list[NewRegistration], domain: str
) -> list[Outcome]:
    """Run a batch's plan in one transaction, in the thread of the SQLite connection."""
    connection.execute("BEGIN")
    try:
        plan = _plan("sqlite", batch, domain)
        try:
            sql, parameters = next(plan)
            while True:
                answer = [dict(row) for row in connection.execute(sql, parameters).fetchall()]
                sql, parameters = plan.send(answer)
        except StopIteration as done:
            outcomes: list[Outcome] = done.value
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return outcomes


def _insert(
    dialect: str,
    model: Any,
    names: tuple[str, ...],
    values: list[tuple[Any, ...]],
    *,
    returning: tuple[str, ...] = (),
    ignore_conflicts: bool = False,
) -> Generator[rows.Statement, Rows, Rows]:
    """Yield the statements of a multi-row insert; the rows they returned."""
    found: Rows = []
    statements = rows.insert_statements(
        dialect, model, names, values, returning=returning, ignore_conflicts=ignore_conflicts
    )
    for statement in statements:
        found.extend((yield statement))
    return found


def _plan(dialect: str, batch: list[NewRegistration], domain: str) -> Plan:
    """The statements of one batch, each given the rows of the one before; the outcomes."""
    outcomes = [Outcome.FALLBACK] * len(batch)
    first_of_address: dict[str, int] = {}
    for index, item in enumerate(batch):
        first_of_address.setdefault(item.email, index)
    known = yield from _known_addresses(dialect, list(first_of_address))
    fresh = [index for email, index in first_of_address.items() if email not in known]
    fresh = yield from _still_offered(dialect, batch, fresh)
    admitted = yield from _admit(dialect, batch, fresh, outcomes)
    if not admitted:
        return outcomes
    yield from _attach_sessions(dialect, [batch[index] for index in admitted])
    # The moment the ORM would have stamped on each row: the same for the whole batch.
    stamp = timezone.now()
    # A conflict means the address registered in another process meanwhile: that item is
    # left out here and goes the one-by-one way.
    stored_contacts = yield from _insert(
        dialect,
        Contact,
        _CONTACT_FIELDS,
        [
            (item.email, item.name, item.phone, item.company_domain, stamp)
            for item in (batch[index] for index in admitted)
        ],
        returning=("id", "email"),
        ignore_conflicts=True,
    )
    contact_ids = {row["email"]: row["id"] for row in stored_contacts}
    admitted = [index for index in admitted if batch[index].email in contact_ids]
    registrants = []
    for index in admitted:
        item = batch[index]
        item.contact_id = contact_ids[item.email]
        assert item.session is not None
        registrants.append(
            (
                item.contact_id,
                item.webinar_id,
                item.session.id,
                item.join_token_hash,
                item.join_token_sealed,
                item.timezone,
                item.language,
                item.answers,
                item.utm,
                item.referrer,
                item.now,
                1,
                stamp,
            )
        )
    stored_registrants = yield from _insert(
        dialect,
        Registrant,
        _REGISTRANT_FIELDS,
        registrants,
        returning=("id", "join_token_hash"),
        ignore_conflicts=True,
    )
    registrant_ids = {row["join_token_hash"]: row["id"] for row in stored_registrants}
    stored = [index for index in admitted if batch[index].join_token_hash in registrant_ids]
    message_ids = _message_ids(domain, len(stored))
    emails = []
    events = []
    for index, message_id in zip(stored, message_ids, strict=True):
        item = batch[index]
        item.registrant_id = registrant_ids[item.join_token_hash]
        item.created_at = stamp
        assert item.session is not None
        emails.append(
            (
                item.email_kind,
                item.email,
                item.registrant_id,
                item.now,
                message_id,
                {"new": True},
                stamp,
            )
        )
        events.append(
            (
                analytics_events.REGISTRATION,
                item.now,
                item.webinar_id,
                item.session.id,
                item.registrant_id,
                item.contact_id,
            )
        )
        outcomes[index] = Outcome.STORED
    yield from _insert(dialect, PlannedEmail, _EMAIL_FIELDS, emails)
    yield from _insert(dialect, AnalyticsEvent, _EVENT_FIELDS, events)
    return outcomes


def _message_ids(domain: str, count: int) -> list[str]:
    """Message-IDs as `delivery.new_message_id` makes them, from one read of the random source."""
    digits = secrets.token_hex(16 * count)
    return [f"<{digits[32 * i : 32 * (i + 1)]}@{domain}>" for i in range(count)]


def _known_addresses(dialect: str, emails: list[str]) -> Generator[rows.Statement, Rows, set[str]]:
    """The addresses among these that already have a contact."""
    matches, values = rows.any_of(dialect, 0, emails)
    sql = f'SELECT "email" FROM "{Contact._meta.db_table}" WHERE "email" {matches}'  # noqa: S608
    return {row["email"] for row in (yield sql, values)}


_rules_cache: OrderedDict[tuple[Any, ...], ScheduleRules | None] = OrderedDict()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _parsed_rules(row: dict[str, Any]) -> ScheduleRules | None:
    """The rules of a stored schedule row (None when invalid), parsed once per distinct row."""
    key = tuple(
        row[column] for column in ("kind", "timezone", "attendee_local", "rules", "blackout_dates")
    )
    if key in _rules_cache:
        _rules_cache.move_to_end(key)
        return _rules_cache[key]
    try:
        rules: ScheduleRules | None = parse_schedule(
            _json(row["rules"]),
            kind=row["kind"],
            timezone=row["timezone"],
            attendee_local=bool(row["attendee_local"]),
            blackout_dates=_json(row["blackout_dates"]),
        )
    except ScheduleRuleError:
        rules = None
    _rules_cache[key] = rules
    while len(_rules_cache) > RULES_CACHE_SIZE:
        _rules_cache.popitem(last=False)
    return rules


def _still_offered(
    dialect: str, batch: list[NewRegistration], fresh: list[int]
) -> Generator[rows.Statement, Rows, list[int]]:
    """The items whose session is still offered as the database says now.

    The form was checked against rules that may be a few seconds old; an edit or an
    unpublish since then sends the item the one-by-one way, which reads everything afresh.
    """
    if not fresh:
        return []
    ids = sorted({batch[index].webinar_id for index in fresh})
    schedule = Schedule._meta.db_table
    webinar = Webinar._meta.db_table
    matches, values = rows.any_of(dialect, 1, ids)
    sql = (
        'SELECT s."webinar_id", s."kind", s."timezone", s."attendee_local", s."rules", '  # noqa: S608
        f's."blackout_dates" FROM "{schedule}" s JOIN "{webinar}" w ON w."id" = s."webinar_id" '
        f'WHERE w."status" = {rows.marks(dialect, 0, 1)} AND s."webinar_id" {matches}'
    )
    rules: dict[int, ScheduleRules] = {}
    for row in (yield sql, [WebinarStatus.PUBLISHED.value, *values]):
        parsed = _parsed_rules(row)
        if parsed is not None:
            rules[row["webinar_id"]] = parsed
    kept = []
    exists: dict[tuple[int, datetime, ZoneInfo], bool] = {}
    for index in fresh:
        item = batch[index]
        current = rules.get(item.webinar_id)
        if current is None or current.capacity is not None:
            continue
        if not item.starts_at - current.cutoff > item.now:
            continue
        key = (item.webinar_id, item.starts_at, item.viewer_zone)
        if key not in exists:
            exists[key] = slot_exists(current, item.starts_at, viewer_zone=item.viewer_zone)
        if exists[key]:
            kept.append(index)
    return kept


def _admit(
    dialect: str, batch: list[NewRegistration], fresh: list[int], outcomes: list[Outcome]
) -> Generator[rows.Statement, Rows, list[int]]:
    """Apply the per-client limits in arrival order; record the attempts let through."""
    if not fresh:
        return []
    hashes = sorted({batch[i].client_hash for i in fresh})
    since = min(batch[i].window_start for i in fresh)
    at = RegistrationAttempt._meta.fields_map["at"]
    matches, values = rows.any_of(dialect, 1, hashes)
    sql = (
        'SELECT "client_hash", COUNT(*) AS "attempts" '  # noqa: S608
        f'FROM "{RegistrationAttempt._meta.db_table}" '
        f'WHERE "at" > {rows.marks(dialect, 0, 1)} '
        f'AND "client_hash" {matches} GROUP BY "client_hash"'
    )
    counts = yield sql, [at.to_db_value(since, RegistrationAttempt), *values]
    used = {row["client_hash"]: int(row["attempts"]) for row in counts}
    admitted = []
    for index in fresh:
        item = batch[index]
        if used.get(item.client_hash, 0) >= item.limit:
            outcomes[index] = Outcome.LIMITED
            continue
        used[item.client_hash] = used.get(item.client_hash, 0) + 1
        admitted.append(index)
    attempts = [(batch[i].client_hash, batch[i].now) for i in admitted]
    yield from _insert(dialect, RegistrationAttempt, ("client_hash", "at"), attempts)
    return admitted


def _attach_sessions(
    dialect: str, items: list[NewRegistration]
) -> Generator[rows.Statement, Rows, None]:
    """The stored session of each item's slot, created for the first registrant."""
    wanted = {(item.webinar_id, item.starts_at, item.session_kind) for item in items}
    starts_at = WebinarSession._meta.fields_map["starts_at"]
    table = WebinarSession._meta.db_table

    def load() -> Generator[rows.Statement, Rows, dict[tuple[int, datetime, str], WebinarSession]]:
        found: dict[tuple[int, datetime, str], WebinarSession] = {}
        for webinar_id in sorted({key[0] for key in wanted}):
            starts = sorted({key[1] for key in wanted if key[0] == webinar_id})
            matches, values = rows.any_of(
                dialect, 1, [starts_at.to_db_value(s, WebinarSession) for s in starts]
            )
            sql = (
                f'SELECT * FROM "{table}" WHERE "webinar_id" = '  # noqa: S608
                f'{rows.marks(dialect, 0, 1)} AND "starts_at" {matches}'
            )
            for row in (yield sql, [webinar_id, *values]):
                session = WebinarSession._init_from_db(**row)
                found[(webinar_id, session.starts_at, session.kind)] = session
        return found

    sessions = yield from load()
    missing = sorted(wanted - sessions.keys())
    if missing:
        yield from _insert(
            dialect,
            WebinarSession,
            ("webinar_id", "starts_at", "kind"),
            missing,
            ignore_conflicts=True,
        )
        sessions = yield from load()
    for item in items:
        item.session = sessions[(item.webinar_id, item.starts_at, item.session_kind)]
