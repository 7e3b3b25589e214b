"""APScheduler (3.x) jobs; each job calls one service function. Truth lives in rows."""

from __future__ import annotations

import asyncio
import logging
import signal

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app import db
from app.services import analytics_events, auth, delivery, sequences, uploads
from app.settings import Settings, get_settings
from scheduler.transcoder import TranscodeWorker

log = logging.getLogger("encore.scheduler")


async def purge_expired_sessions() -> None:
    """Drop expired staff sessions and stale sign-in failure records."""
    removed = await auth.purge_expired()
    if removed:
        log.info("purged expired sign-in records", extra={"removed": removed})


async def expire_uploads() -> None:
    """Drop uploads abandoned for a day, with their partial bytes and S3 parts."""
    removed = await uploads.expire_uploads()
    if removed:
        log.info("dropped abandoned uploads", extra={"removed": removed})


async def send_due_emails() -> None:
    """Plan new registrants' sequences, then send the emails that are due."""
    planned = await sequences.plan_pending(auth.utcnow())
    if planned:
        log.info("email sequences planned", extra={"registrants": planned})
    # A full batch means more may be due: keep going until the backlog is sent.
    while True:
        outcome = await delivery.deliver_due(auth.utcnow())
        if outcome:
            counts = {str(k): v for k, v in outcome.items()}
            log.info("emails delivered", extra={"outcome": counts})
        if sum(outcome.values()) < delivery.BATCH:
            break


async def purge_old_events() -> None:
    """Delete engagement events older than the workspace's retention period."""
    removed = await analytics_events.purge_expired(auth.utcnow())
    if removed:
        log.info("deleted engagement events past retention", extra={"removed": removed})


def build_scheduler(
    settings: Settings | None = None, *, worker: TranscodeWorker | None = None
) -> AsyncIOScheduler:
    """A scheduler with every periodic job; jobs never pile up and late ones still run."""
    settings = settings or get_settings()
    worker = worker or TranscodeWorker(settings)
    scheduler = AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    scheduler.add_job(purge_expired_sessions, "interval", minutes=10, id="purge_expired_sessions")
    scheduler.add_job(expire_uploads, "interval", minutes=15, id="expire_uploads")
    scheduler.add_job(purge_old_events, "interval", hours=1, id="purge_old_events")
    scheduler.add_job(
        send_due_emails,
        "interval",
        seconds=settings.email_interval_seconds,
        id="send_due_emails",
        next_run_time=auth.utcnow(),
    )
    # The tick only starts a background drain; the transcode itself outlives it.
    scheduler.add_job(
        worker.tick,
        "interval",
        seconds=settings.transcode_interval_seconds,
        id="transcode",
        next_run_time=auth.utcnow(),
    )
    # Whoever shuts the scheduler down also stops ffmpeg at its next progress report.
    scheduler.add_listener(lambda event: worker.request_stop(), EVENT_SCHEDULER_SHUTDOWN)
    return scheduler


async def run(settings: Settings, *, manage_db: bool = True) -> None:
    """Run the clock until SIGINT or SIGTERM."""
    if manage_db:
        await db.init_db(settings)
    worker = TranscodeWorker(settings)
    scheduler = build_scheduler(settings, worker=worker)
    scheduler.start()
    log.info("scheduler started", extra={"jobs": [job.id for job in scheduler.get_jobs()]})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        await worker.join()
        if manage_db:
            await db.close_db()
