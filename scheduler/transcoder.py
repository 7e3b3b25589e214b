"""The in-process transcode worker the clock wakes: one video at a time, until none is waiting."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta

from app.services import captions, transcoding
from app.services.storage import build_storage
from app.settings import Settings

log = logging.getLogger("encore.scheduler")


class TranscodeWorker:
    """Transcodes waiting videos one after another in a background task of this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Each published version lists the video's caption tracks before players switch to it.
        transcoding.add_publish_hook(captions.add_to_version)
        self.stopping = threading.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether a drain is running."""
        return self._task is not None and not self._task.done()

    async def tick(self) -> None:
        """The clock's job: start draining the queue unless a drain is already running."""
        if self.busy or self.stopping.is_set():
            return
        self._task = asyncio.create_task(self._drain(), name="encore-transcode")

    async def _drain(self) -> None:
        settings = self.settings
        storage = build_storage(settings)
        while not self.stopping.is_set():
            try:
                video = await transcoding.transcode_next(
                    storage=storage,
                    workdir=settings.var_dir / "work",
                    stale_after=timedelta(seconds=settings.transcode_stale_seconds),
                    max_attempts=settings.transcode_max_attempts,
                    shutdown=self.stopping,
                )
            except Exception:
                # The row keeps the truth: a stale claim is taken over at a later tick.
                log.exception("transcode worker failed")
                return
            if video is None:
                return
            log.info("transcode finished", extra={"video_id": video.id, "state": video.state.value})

    def request_stop(self) -> None:
        """Ask the running job to stop at its next progress report (safe from any thread)."""
        self.stopping.set()

    async def join(self, *, grace: float = 20.0) -> None:
        """Stop and wait until the running job has given its video back (at most `grace` s)."""
        self.request_stop()
        if self._task is None:
            return
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(self._task)
        except TimeoutError:
            log.warning("the transcode job did not stop in time; it will be taken over later")
