"""A running transcode as both sides see it: the worker thread and the monitor on the event loop.

The thread reports progress into a `Job` and checks, at every report, whether it must stop;
the monitor task writes that progress and the heartbeat to the row and sets the stop reason
(cancelled, taken over by another worker, shutting down) from what it reads back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field

from tortoise.queryset import QuerySet

from app.models import Video
from app.services.videos import TRANSCODING, utcnow

log = logging.getLogger("encore.transcode")


class Stopped(Exception):
    """The job was told to stop: cancelled, taken over by another worker, or shutting down."""


@dataclass
class Job:
    """One running transcode, shared between the worker thread and the monitor task."""

    video_id: int
    attempt: int
    shutdown: threading.Event | None = None
    stage: str = "preparing"
    percent: float = 0.0
    eta: float | None = None
    reason: str = ""
    stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self, reason: str) -> None:
        """Record why the job must stop (the first reason wins)."""
        if not self.stopped.is_set():
            self.reason = reason
            self.stopped.set()

    def check(self) -> None:
        """Raise Stopped once the job has been told to stop (called from both sides)."""
        if self.shutdown is not None and self.shutdown.is_set():
            self.stop("shutdown")
        if self.stopped.is_set():
            raise Stopped(self.reason)

    def on_progress(self, percent: float, eta: float | None) -> None:
        """The progress callback of ffmpeg (worker thread): raising here stops ffmpeg."""
        self.percent, self.eta = percent, eta
        self.check()

    def begin(self, stage: str) -> None:
        """Enter a stage (its percent starts again from zero), unless told to stop."""
        self.check()
        self.stage, self.percent, self.eta = stage, 0.0, None

    def claimed(self) -> QuerySet[Video]:
        """The row, only while this job still holds the claim."""
        return Video.filter(id=self.video_id, state=TRANSCODING, attempts=self.attempt)


async def beat(job: Job) -> None:
    """Write progress and heartbeat while the claim holds; else find out why it does not."""
    if job.shutdown is not None and job.shutdown.is_set():
        job.stop("shutdown")
    written = (
        await job.claimed()
        .filter(cancel_requested=False)
        .update(
            stage=job.stage,
            progress=job.percent,
            eta_seconds=job.eta,
            heartbeat_at=utcnow(),
        )
    )
    if not written:
        await find_why(job)


async def find_why(job: Job) -> None:
    """Set the stop reason when the row no longer takes this job's writes."""
    row = await Video.get_or_none(id=job.video_id)
    if row is None or row.state != TRANSCODING or row.attempts != job.attempt:
        job.stop("lost")
    elif row.cancel_requested:
        job.stop("cancelled")


async def monitor(job: Job, interval: float) -> None:
    """Beat every `interval` seconds until cancelled (when the job ends)."""
    while True:
        try:
            await beat(job)
        except Exception:
            # A database hiccup must not end the job; the next beat tries again.
            log.warning("transcode heartbeat failed", exc_info=True)
        await asyncio.sleep(interval)
