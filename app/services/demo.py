"""The demo webinar: a generated sample recording, a published landing page and a schedule.

It also gets a poll, an offer and one past session of clearly labelled sample history
(`app.services.demo_history`), so that its analytics, contacts and accounts show something.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime
from pathlib import Path

from app.models import Presenter, Schedule, Video, VideoState, Webinar, WebinarStatus
from app.services import auth, demo_history
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
        description=(
            "A short demo webinar: a generated test recording that runs as a live session, "
            "with the team answering in chat."
        ),
        status=WebinarStatus.PUBLISHED,
        published_at=now,
        video=video,
        theme={"template": "classic", "primary": "#4338ca"},
        landing=DEMO_LANDING,
        registration_fields=[
            {"key": "company", "label": "Company", "type": "text"},
            {
                "key": "role",
                "label": "Your role",
                "type": "select",
                "options": ["Customer success", "Onboarding", "Sales", "Other"],
            },
        ],
    )
    await Presenter.create(
        webinar=webinar,
        name="Alex Moreau",
        title="Head of Customer Success",
        bio="Has onboarded hundreds of teams and still enjoys the first call with each one.",
    )
    # Weekdays at 10:00 and 16:00 New York time, a just-in-time session every 15 minutes in
    # working hours and "watch now", so that a visitor always has something to register for.
    await Schedule.create(
        webinar=webinar,
        kind="recurring",
        timezone="America/New_York",
        rules={
            "repeat": "weekdays",
            "times": ["10:00", "16:00"],
            "jit": {"every_minutes": 15, "lead_minutes": 5},
            "hours": {"opens": "08:00", "closes": "20:00"},
            "watch_now": True,
            "replay_hours": 72,
            "upcoming_count": 4,
        },
    )
    await demo_history.add(webinar, now=now, duration=seconds)
    return webinar


DEMO_LANDING = {
    "headline": "See how Encore runs your best presentation on repeat",
    "subheadline": "Twenty minutes that show a complete onboarding webinar, start to finish.",
    "agenda": [
        "Upload a recording once",
        "Schedule sessions in every time zone",
        "Answer questions live in chat",
    ],
    "faq": [
        {
            "question": "Is the presentation live?",
            "answer": "The presentation is recorded; the team is live in chat and answers you.",
        }
    ],
    "thank_you_headline": "You are registered",
}
