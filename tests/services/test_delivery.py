"""Planned emails on SQLite and PostgreSQL: claimed once, retried, failed, skipped, recovered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from app.models import AnalyticsEvent, Contact, EmailState, PlannedEmail
from app.services import delivery, mail
from app.settings import Settings
from emails import MemoryMailer, SendError

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
KIND = "test_note"
BULK_KIND = "test_bulk_note"
rendered_for: list[int] = []


@delivery.renderer(KIND)
async def _render(row: PlannedEmail, now: datetime) -> delivery.Rendered:
    rendered_for.append(row.id)
    if row.context.get("skip"):
        return delivery.Rendered(skip="not wanted any more")
    if row.context.get("explode"):
        raise RuntimeError("template broke")
    return delivery.Rendered(to=row.to_email, subject="Note", text=f"note {row.id}\n")


@delivery.bulk_renderer(BULK_KIND)
async def _render_many(rows: list[delivery.Claimed], now: datetime) -> list[delivery.Rendered]:
    return [
        delivery.Rendered(to=row.to_email, to_name="Ada", subject="Bulk", text=f"{row.id}\n")
        for row in rows
    ]


async def plan(to: str = "ada@example.com", due: datetime = NOW, **context: bool) -> PlannedEmail:
    return await delivery.plan(KIND, to_email=to, due_at=due, context=dict(context))


class SlowMailer(MemoryMailer):
    """Takes a moment per message, so that concurrent deliveries overlap."""

    async def send(self, message: EmailMessage) -> None:
        """Keep the message after a short pause."""
        await asyncio.sleep(0.01)
        await super().send(message)


class RefusingMailer:
    """A server that answers every message with one failure."""

    def __init__(self, error: SendError) -> None:
        self.error = error

    async def send(self, message: EmailMessage) -> None:
        """Refuse."""
        raise self.error


async def test_due_rows_are_sent_once_with_their_message_id(
    database: Settings, mailer: MemoryMailer
) -> None:
    due = await plan()
    later = await plan(due=NOW + timedelta(hours=1))
    outcome = await delivery.deliver_due(NOW)
    assert outcome == {EmailState.SENT: 1}
    [message] = mailer.sent
    assert message["Message-ID"] == due.message_id
    assert message["To"] == "ada@example.com"
    await due.refresh_from_db()
    assert due.state == EmailState.SENT
    assert due.sent_at == NOW
    await later.refresh_from_db()
    assert later.state == EmailState.SCHEDULED
    # Nothing is sent twice.
    assert await delivery.deliver_due(NOW) == {}
    assert len(mailer.sent) == 1


async def test_two_deliverers_never_send_a_row_twice(database: Settings) -> None:
    slow = SlowMailer()
    mail.use_mailer(slow)
    try:
        rows = [await plan(to=f"p{n}@example.com") for n in range(30)]
        outcomes = await asyncio.gather(*(delivery.deliver_due(NOW) for _ in range(3)))
    finally:
        mail.use_mailer(None)
    assert sum(outcome.get(EmailState.SENT, 0) for outcome in outcomes) == len(rows)
    ids = [str(message["Message-ID"]) for message in slow.sent]
    assert sorted(ids) == sorted(row.message_id for row in rows)


async def test_transient_failures_back_off_then_fail(database: Settings) -> None:
    row = await plan()
    mail.use_mailer(RefusingMailer(SendError("451 later", permanent=False)))
    try:
        moment = NOW
        waits = []
        for _ in range(delivery.MAX_ATTEMPTS):
            await delivery.deliver_due(moment)
            await row.refresh_from_db()
            if row.state != EmailState.SCHEDULED:
                break
            waits.append(row.due_at - moment)
            moment = row.due_at
    finally:
        mail.use_mailer(None)
    # Each wait doubles; after the last attempt the row fails and stays failed.
    assert waits == [delivery.FIRST_RETRY * 2**n for n in range(delivery.MAX_ATTEMPTS - 1)]
    assert row.state == EmailState.FAILED
    assert row.attempts == delivery.MAX_ATTEMPTS
    assert "451" in (row.error or "")


async def test_a_permanent_refusal_fails_the_row_and_suppresses_the_address(
    database: Settings,
) -> None:
    await Contact.create(email="ada@example.com", name="Ada")
    row = await plan()
    mail.use_mailer(RefusingMailer(SendError("550 no such user", permanent=True)))
    try:
        assert await delivery.deliver_due(NOW) == {EmailState.FAILED: 1}
    finally:
        mail.use_mailer(None)
    await row.refresh_from_db()
    assert row.state == EmailState.FAILED
    contact = await Contact.get(email="ada@example.com")
    assert contact.suppressed_at == NOW


async def test_skipped_and_broken_renders_are_recorded_not_sent(
    database: Settings, mailer: MemoryMailer
) -> None:
    skipped = await plan(skip=True)
    broken = await plan(explode=True)
    outcome = await delivery.deliver_due(NOW)
    assert outcome == {EmailState.CANCELLED: 1, EmailState.FAILED: 1}
    assert mailer.sent == []
    await skipped.refresh_from_db()
    await broken.refresh_from_db()
    assert (skipped.state, skipped.error) == (EmailState.CANCELLED, "not wanted any more")
    assert broken.state == EmailState.FAILED
    assert "template broke" in (broken.error or "")


async def test_a_row_left_sending_by_a_dead_process_is_sent_later(
    database: Settings, mailer: MemoryMailer
) -> None:
    row = await plan()
    # As if a scheduler claimed it and was killed before it could finish.
    await PlannedEmail.filter(id=row.id).update(state=EmailState.SENDING, claimed_at=NOW)
    assert await delivery.deliver_due(NOW + timedelta(minutes=1)) == {}
    assert await delivery.deliver_due(NOW + delivery.STALE_CLAIM + timedelta(seconds=1)) == {
        EmailState.SENT: 1
    }
    [message] = mailer.sent
    assert message["Message-ID"] == row.message_id


async def test_a_batch_goes_out_oldest_first_and_each_sent_row_is_marked_once(
    database: Settings, mailer: MemoryMailer
) -> None:
    # Planned newest first, with microseconds on some: the claim's rows come back in any
    # order, and the batch is sent by due moment, then id.
    moments = [NOW - timedelta(minutes=n, microseconds=n % 3 * 1500) for n in range(12)]
    rows = [
        await delivery.plan(BULK_KIND, to_email=f"p{n}@example.com", due_at=moment)
        for n, moment in enumerate(moments)
    ]
    rows.append(await delivery.plan(BULK_KIND, to_email="same@example.com", due_at=moments[0]))
    assert await delivery.deliver_due(NOW) == {EmailState.SENT: len(rows)}
    expected = sorted(rows, key=lambda row: (row.due_at, row.id))
    assert [m["Message-ID"] for m in mailer.sent] == [row.message_id for row in expected]
    stored = await PlannedEmail.filter(state=EmailState.SENT).values_list("sent_at", "error")
    assert stored == [(NOW, None)] * len(rows)
    events = await AnalyticsEvent.filter(kind="email_sent")
    assert sorted(event.data["email_id"] for event in events) == sorted(row.id for row in rows)


async def test_unknown_kinds_are_refused_when_planned(database: Settings) -> None:
    with pytest.raises(ValueError, match="no renderer"):
        await delivery.plan("nonsense", to_email="a@example.com", due_at=NOW)
    assert await PlannedEmail.all().count() == 0
