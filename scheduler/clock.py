"""APScheduler (3.x) jobs; each job calls one service function. Truth lives in rows."""

from __future__ import annotations

import asyncio
import logging
import signal

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app import db
from app.services import auth
from app.settings import Settings

log = logging.getLogger("encore.scheduler")


async def purge_expired_sessions() -> None:
    """Drop expired staff sessions and stale sign-in failure records."""
    removed = await auth.purge_expired()
    if removed:
        log.info("purged expired sign-in records", extra={"removed": removed})


def build_scheduler() -> AsyncIOScheduler:
    """A scheduler with every periodic job; jobs never pile up and late ones still run."""
    scheduler = AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    scheduler.add_job(purge_expired_sessions, "interval", minutes=10, id="purge_expired_sessions")
    return scheduler


async def run(settings: Settings, *, manage_db: bool = True) -> None:
    """Run the clock until SIGINT or SIGTERM."""
    if manage_db:
        await db.init_db(settings)
    scheduler = build_scheduler()
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
        if manage_db:
            await db.close_db()
