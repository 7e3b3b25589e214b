"""Due reminders delivered per second, and due-to-sent latency, against a bare SMTP floor.

Usage (from the repository root):
    .venv/bin/python bench/email_send.py [--backends sqlite,postgres] [--count 10000]
                                    [--connections 4] [--stream-rate 500]

A minimal asyncio SMTP sink runs in a separate process on loopback (it answers each command
with a canned reply and counts messages; aiosmtpd's own server costs about 1.5 ms of CPU per
message and would measure itself). Then, for each database:

* setup: a fresh database with a webinar, its default sequence and `--count` registrants of
  one session; the scheduler's planner plans their emails (not timed);
* throughput: every registrant's one-hour reminder is due; the benchmark's process calls
  `delivery.deliver_due` in a loop, exactly as the scheduler's job does, over `--connections`
  reused SMTP connections, until all are sent; messages per second;
* floor, in the same run: the same number of pre-serialised messages of the same size sent over
  the same number of reused connections with aiosmtplib, nothing else; goal: Encore at least
  0.6 of the floor and over 1,000 messages per second;
* latency: reminders falling due at an even `--stream-rate` per second for a few seconds while
  the scheduler's job ticks every `EMAIL_INTERVAL_SECONDS` (1 s by default); due-to-sent
  p50/p99 from the rows (`sent_at - due_at`); goal: p99 under 2 s.

PostgreSQL runs need a server (default postgres://postgres@127.0.0.1:5432, database
encore_bench_email, created and emptied by the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from register import fresh_postgres  # noqa: E402  (the register benchmark, beside this file)

HOST = "127.0.0.1"
STREAM_SECONDS = 6


# --- a minimal SMTP sink -----------------------------------------------------------------------


def _sink_main(port_pipe: object) -> None:
    """Serve SMTP on loopback: canned replies, messages counted, nothing stored."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb in {b"EHLO", b"HELO"}:
                    writer.write(b"250-sink\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SIZE 0\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await reader.readuntil(b"\r\n.\r\n")
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"250 OK\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, HOST, 0, limit=1 << 20)
        port_pipe.send(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextmanager
def smtp_sink() -> Iterator[int]:
    """The sink in its own process; its port."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_sink_main, args=(child,), daemon=True)
    process.start()
    try:
        yield int(parent.recv())
    finally:
        process.terminate()
        process.join()


# --- the floor: pre-serialised messages over reused connections --------------------------------


async def floor(port: int, payloads: list[bytes], connections: int) -> float:
    """Messages per second of aiosmtplib alone, sending bytes made beforehand."""
    import aiosmtplib

    pending = list(range(len(payloads)))

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname=HOST, port=port, timeout=30, start_tls=False)
        await client.connect()
        while pending:
            index = pending.pop()
            await client.sendmail("encore@example.com", [f"p{index}@example.com"], payloads[index])
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return len(payloads) / (time.perf_counter() - started)


# --- Encore -------------------------------------------------------------------------------------


async def _setup(database_url: str, folder: Path, count: int, start: datetime) -> None:
    """A webinar, its default sequence, `count` registrants of one session, their plans."""
    from tortoise.backends.base.executor import EXECUTOR_CACHE
    from tortoise.transactions import in_transaction

    from app import db
    from app.models import Contact, Registrant, Webinar, WebinarSession
    from app.services import crypto, rows, sequences
    from app.settings import Settings, use_settings

    # Tortoise caches SQL per connection name; this process switches dialects between runs.
    EXECUTOR_CACHE.clear()
    settings = Settings(var_dir=folder, database_url=database_url, public_base_url="https://e.x")
    use_settings(settings)
    await db.migrate(settings)
    await db.init_db(settings)
    webinar = await Webinar.create(slug="bench", title="Bench webinar for everyone")
    await sequences.ensure_steps(webinar)
    session = await WebinarSession.create(webinar=webinar, starts_at=start)
    for first in range(0, count, 1000):
        numbers = range(first, min(count, first + 1000))
        async with in_transaction() as connection:
            found = await rows.insert_many(
                connection,
                [Contact(email=f"p{n}@example.com", name=f"Person {n}") for n in numbers],
                returning=("id", "email"),
            )
            ids = {row["email"]: row["id"] for row in found}
            registrants = []
            for n in numbers:
                token = secrets.token_urlsafe(32)
                registrants.append(
                    Registrant(
                        contact_id=ids[f"p{n}@example.com"],
                        webinar_id=webinar.id,
                        session_id=session.id,
                        join_token_hash=crypto.hash_token(token),
                        join_token_sealed=crypto.seal(token),
                        timezone="Europe/Berlin" if n % 2 else "America/New_York",
                    )
                )
            await rows.insert_many(connection, registrants, returning=())
    planned_at = start - timedelta(days=2)
    while await sequences.plan_pending(planned_at, limit=1000):
        pass


async def _drain(until_sent: int, now: datetime) -> float:
    """Call the scheduler's delivery until `until_sent` rows are sent; seconds taken."""
    from app.models import EmailState
    from app.services import delivery

    sent = 0
    started = time.perf_counter()
    while sent < until_sent:
        outcome = await delivery.deliver_due(now)
        if not outcome:
            break
        sent += outcome.get(EmailState.SENT, 0)
    return time.perf_counter() - started


async def _sample_payload() -> bytes:
    """One reminder as Encore builds it, for the floor's message size."""
    from app.models import PlannedEmail
    from app.services import delivery, sequences

    row = await PlannedEmail.filter(kind=sequences.STEP_EMAIL).first()
    assert row is not None
    (rendered,) = await sequences._render_steps([delivery.Claimed.of(row)], datetime.now(UTC))
    from emails.raw import build

    return build(
        sender="Encore <encore@example.com>",
        sender_address="encore@example.com",
        to_name=rendered.to_name or "",
        to_address=rendered.to,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=row.message_id,
        date="Thu, 03 Dec 2026 15:00:00 GMT",
        headers=rendered.headers,
    ).data


async def _stream(rate: int, connections: int) -> list[float]:
    """Reminders due at an even pace, the scheduler's job ticking; due-to-sent seconds."""
    from tortoise.transactions import in_transaction

    from app.models import EmailState, EmailStep, PlannedEmail, Registrant, StepKind
    from app.services import auth, delivery, rows, sequences
    from app.settings import get_settings

    interval = get_settings().email_interval_seconds
    step = await EmailStep.filter(kind=StepKind.REMINDER, minutes=10).first()
    assert step is not None
    registrants = (
        await Registrant.all()
        .limit(rate * STREAM_SECONDS)
        .values_list("id", "session_id", "contact__email")
    )
    begin = auth.utcnow() + timedelta(seconds=1)
    emails = [
        PlannedEmail(
            kind=sequences.STEP_EMAIL,
            to_email=str(email),
            registrant_id=int(rid),
            due_at=begin + timedelta(seconds=index / rate),
            message_id=f"<stream-{index}@e.x>",
            context={"step_id": step.id, "session_id": int(sid)},
        )
        for index, (rid, sid, email) in enumerate(registrants)
    ]
    await PlannedEmail.filter(state=EmailState.SCHEDULED).update(state=EmailState.CANCELLED)
    async with in_transaction() as connection:
        await rows.insert_many(connection, emails, returning=())
    deadline = time.monotonic() + STREAM_SECONDS + 4 * interval + 5
    while time.monotonic() < deadline:
        tick = time.monotonic()
        await delivery.deliver_due(auth.utcnow())
        if not await PlannedEmail.filter(state=EmailState.SCHEDULED).exists():
            break
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - tick)))
    sent = await PlannedEmail.filter(message_id__startswith="<stream-", state=EmailState.SENT)
    return [(row.sent_at - row.due_at).total_seconds() for row in sent if row.sent_at]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def run_backend(name: str, database_url: str, port: int, args: argparse.Namespace) -> None:
    """Every measurement on one database."""
    from app import db
    from app.models import EmailState, PlannedEmail
    from app.services import mail
    from app.settings import get_settings
    from emails import SmtpMailer

    print(f"\n{name}")
    with tempfile.TemporaryDirectory(prefix="encore-bench-email-") as tmp:
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        t0 = time.perf_counter()
        await _setup(database_url, Path(tmp), args.count, start)
        print(f"  setup: {args.count} registrants planned in {time.perf_counter() - t0:.1f} s")
        mailer = SmtpMailer(hostname=HOST, port=port, timeout=30, connections=args.connections)
        mail.use_mailer(mailer)
        due_at = start - timedelta(hours=1)
        payload = await _sample_payload()
        cpu0 = time.process_time()
        seconds = await _drain(args.count, due_at)
        cpu = time.process_time() - cpu0
        sent = await PlannedEmail.filter(state=EmailState.SENT).count()
        rate = sent / seconds
        floor_cpu0 = time.process_time()
        bare = await floor(port, [payload] * args.count, args.connections)
        floor_cpu = (time.process_time() - floor_cpu0) / args.count
        print(
            f"  Encore: {sent} reminders in {seconds:.2f} s = {rate:,.0f} msgs/s "
            f"({cpu / max(sent, 1) * 1e6:.0f} us CPU each in this process)"
        )
        print(
            f"  floor (pre-serialised, {args.connections} connections): {bare:,.0f} msgs/s "
            f"({floor_cpu * 1e6:.0f} us CPU each)"
        )
        ratio = rate / bare
        ok = ratio >= 0.6 and rate > 1000
        print(f"  Encore / floor: {ratio:.2f}  (goal >= 0.6 and > 1,000/s: {_verdict(ok)})")
        tick = get_settings().email_interval_seconds
        delays = await _stream(args.stream_rate, args.connections)
        p50, p99 = _percentile(delays, 0.5), _percentile(delays, 0.99)
        print(
            f"  stream of {args.stream_rate}/s for {STREAM_SECONDS} s, ticks every {tick:g} s: "
            f"{len(delays)} sent, due-to-sent p50 {p50:.2f} s, p99 {p99:.2f} s "
            f"(goal p99 < 2 s: {_verdict(p99 < 2)})"
        )
        await db.close_db()


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


async def main(port: int) -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--stream-rate", type=int, default=500)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--postgres-db", default="encore_bench_email")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}, sink on port {port}")
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                await run_backend("SQLite", f"sqlite://{tmp}/encore.sqlite3", port, args)
        elif backend == "postgres":
            url = await fresh_postgres(args.postgres, args.postgres_db)
            await run_backend("PostgreSQL", url, port, args)


if __name__ == "__main__":
    with smtp_sink() as sink_port:
        asyncio.run(main(sink_port))
