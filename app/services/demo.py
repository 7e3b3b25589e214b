"""The demo webinar: a generated sample recording and a published webinar with sessions."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from app.models import Video, VideoState, Webinar, WebinarSession, WebinarStatus
from app.services import auth
from media.ffmpeg import generate_sample
from media.storage import Storage

DEMO_SLUG = "demo-onboarding"


async def ensure_demo(
    *, storage: Storage, now: datetime | None = None, seconds: float = 60.0
) -> Webinar:
    """Create the demo webinar once (idempotent); returns the existing one when present."""
    existing = await Webinar.get_or_none(slug=DEMO_SLUG)
    if existing is not None:
        return existing
    now = now or auth.utcnow()
    key = "uploads/demo/sample.mp4"
    if not storage.exists(key):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sample.mp4"
            # ffmpeg is a blocking subprocess: keep the event loop free while it runs.
            await asyncio.to_thread(generate_sample, path, seconds=seconds)
            size = path.stat().st_size
            await asyncio.to_thread(storage.put_file, key, path, content_type="video/mp4")
    else:
        size = 0
    video = await Video.create(
        title="Encore sample recording",
        original_filename="sample.mp4",
        source_key=key,
        size_bytes=size,
        state=VideoState.UPLOADED,
        duration_seconds=seconds,
        width=1280,
        height=720,
    )
    webinar = await Webinar.create(
        slug=DEMO_SLUG,
        title="Getting started with Encore",
        description="A short demo webinar: a generated test recording that runs as a live session.",
        status=WebinarStatus.PUBLISHED,
        video=video,
        landing={"headline": "See how Encore runs your best presentation on repeat"},
    )
    start = (now + timedelta(days=1)).replace(hour=15, minute=0, second=0, microsecond=0)
    for day in range(3):
        await WebinarSession.create(webinar=webinar, starts_at=start + timedelta(days=day))
    return webinar
