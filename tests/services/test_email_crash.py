"""Real scheduler processes and a real SMTP server: kill -9 mid-batch, and two schedulers at once.

No email is lost and none is sent twice: a scheduler killed while sending a batch of 1,000 leaves
only the few messages that were accepted but not yet recorded to go out again (with the same
Message-ID), and two schedulers running together never send one row twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from tortoise.transactions import in_transaction

from app.models import (
    Contact,
    EmailState,
    EmailStep,
    PlannedEmail,
    Registrant,
    StepKind,
    Webinar,
    WebinarSession,
)
from app.services import crypto, delivery, mail, rows, sequences
from app.settings import ROOT, Settings
from emails import SmtpMailer
from tests.emails.test_smtp import HOST, start_controller

COUNT = 1000
SETTLE_TIMEOUT = 120


@dataclass
class SlowSink:
    """Accepts every message a little slowly and keeps its Message-ID."""

    delay: float = 0.004
    ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        message = message_from_bytes(
            envelope.original_content or envelope.content, policy=policy.default
        )
        with self.lock:
            self.ids.append(str(message["Message-ID"]))
        return "250 2.0.0 queued"

    def count(self) -> int:
        with self.lock:
            return len(self.ids)


@pytest.fixture(autouse=True)
def configured_mailer() -> Iterator[None]:
    """The settings' mailer before and after: a test that picks an SMTP server drops it."""
    mail.use_mailer(None)
    yield
    mail.use_mailer(None)


@pytest.fixture
def sink() -> Iterator[tuple[SlowSink, Controller]]:
    handler = SlowSink()
    controller = start_controller(handler)
    yield handler, controller
    controller.stop()


def scheduler_env(settings: Settings, port: int) -> dict[str, str]:
    values = {
        key: value
        for key, value in os.environ.items()
        if key in {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}
    }
    values.update(
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
        VAR_DIR=str(settings.var_dir),
        DATABASE_URL=settings.resolved_database_url,
        SECRET_KEY=settings.resolved_secret_key,
        PUBLIC_BASE_URL=settings.public_base_url,
        SMTP_URL=f"smtp://{HOST}:{port}?connections=2",
        EMAIL_INTERVAL_SECONDS="0.2",
        TRANSCODE_INTERVAL_SECONDS="60",
        LOG_FORMAT="text",
    )
    return values


def start_scheduler(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler"],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def seed_due_reminders(now: datetime) -> list[str]:
    """COUNT registrants whose day-before reminder is due now; the Message-IDs planned."""
    webinar = await Webinar.create(slug="crash", title="Crash test")
    await sequences.ensure_steps(webinar)
    step = await EmailStep.get(webinar_id=webinar.id, kind=StepKind.REMINDER, minutes=24 * 60)
    start = now + timedelta(days=1, minutes=-1)  # the reminder fell due a minute ago
    session = await WebinarSession.create(webinar=webinar, starts_at=start)
    async with in_transaction() as connection:
        contacts = await rows.insert_many(
            connection,
            [Contact(email=f"p{n}@example.com", name=f"Person {n}") for n in range(COUNT)],
            returning=("id", "email"),
        )
        registrants = []
        for row in contacts:
            token = crypto.new_token()
            registrants.append(
                Registrant(
                    contact_id=row["id"],
                    webinar_id=webinar.id,
                    session_id=session.id,
                    join_token_hash=crypto.hash_token(token),
                    join_token_sealed=crypto.seal(token),
                    plan_state=sequences.PLANNED,
                )
            )
        stored = await rows.insert_many(connection, registrants, returning=("id",))
        domain = await delivery.message_domain()
        emails = [
            PlannedEmail(
                kind=sequences.STEP_EMAIL,
                to_email="",
                registrant_id=row["id"],
                due_at=start - timedelta(days=1),
                message_id=delivery.new_message_id(domain),
                context={"step_id": step.id, "session_id": session.id},
            )
            for row in stored
        ]
        await rows.insert_many(connection, emails, returning=())
    return [email.message_id for email in emails]


async def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def until_quiet(handler: SlowSink, quiet: float = 0.3) -> None:
    """Wait until the sink has accepted nothing new for `quiet` seconds."""
    seen = -1
    while handler.count() != seen:
        seen = handler.count()
        await asyncio.sleep(quiet)


async def test_a_scheduler_killed_mid_batch_loses_nothing_and_resends_only_in_flight_mail(
    database: Settings, sink: tuple[SlowSink, Controller], tmp_path: Path
) -> None:
    handler, controller = sink
    planned = await seed_due_reminders(datetime.now(UTC))
    process = start_scheduler(scheduler_env(database, controller.port), tmp_path / "one.log")
    try:

        async def some_sent() -> bool:
            return handler.count() >= 300

        await wait_for(some_sent, SETTLE_TIMEOUT, "300 messages at the server")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        stop(process)
    # A message whose data reached the server just before the kill is still being accepted there.
    await until_quiet(handler)
    received_at_kill = Counter(handler.ids)
    assert COUNT > len(received_at_kill) >= 300, "killed mid-batch"
    sending = set(
        await PlannedEmail.filter(state=EmailState.SENDING).values_list("message_id", flat=True)
    )
    recorded = set(
        await PlannedEmail.filter(state=EmailState.SENT).values_list("message_id", flat=True)
    )
    # Everything recorded as sent did arrive; what arrived but is not recorded was in flight.
    assert recorded <= set(received_at_kill)
    in_flight = set(received_at_kill) - recorded
    assert in_flight <= sending
    assert len(in_flight) <= 20, f"{len(in_flight)} accepted but unrecorded"

    # Another scheduler takes the abandoned claims over once they are stale.
    mail.use_mailer(SmtpMailer(hostname=HOST, port=controller.port, timeout=10, connections=2))
    later = datetime.now(UTC) + delivery.STALE_CLAIM + timedelta(seconds=1)
    while await delivery.deliver_due(later):
        pass
    received = Counter(handler.ids)
    assert set(received) == set(planned), "every email arrived"
    twice = {message_id for message_id, times in received.items() if times > 1}
    assert twice == in_flight, "only the in-flight ones went out again"
    assert all(times <= 2 for times in received.values())
    assert await PlannedEmail.filter(state=EmailState.SENT).count() == COUNT


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_schedulers_at_once_send_every_row_exactly_once(
    database: Settings, sink: tuple[SlowSink, Controller], tmp_path: Path
) -> None:
    handler, controller = sink
    handler.delay = 0.001
    planned = await seed_due_reminders(datetime.now(UTC))
    env = scheduler_env(database, controller.port)
    first = start_scheduler(env, tmp_path / "first.log")
    second = start_scheduler(env, tmp_path / "second.log")
    try:

        async def all_sent() -> bool:
            done = await PlannedEmail.filter(state=EmailState.SENT).count()
            return done == COUNT

        await wait_for(all_sent, SETTLE_TIMEOUT, "every row sent")
    finally:
        stop(first)
        stop(second)
    received = Counter(handler.ids)
    assert set(received) == set(planned)
    assert max(received.values()) == 1, "a row was sent twice"
