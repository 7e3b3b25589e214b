"""What the browser tests of the room share: running a script with the web process's settings,
a recording transcoded for real and registrants with their join tokens (for those scripts), and
waits on the room's player measured against the session's clock."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.async_api import Locator, Page

from app import db
from app.models import Contact, Registrant, Video, WebinarSession
from app.services import crypto, transcoding
from app.services.storage import build_storage
from app.settings import Settings, load_or_exit
from tests.media.clips import h264_mp4

if TYPE_CHECKING:
    from tests.browser.conftest import EncoreServer

VIDEO = "[data-room-player] video"
STEP_TIMEOUT_S = 10
# How far a player may be from where the session's clock says it is (start-up, segment
# boundaries, a busy test machine).
TOLERANCE_S = 2.0


def run_script(main: Callable[[Settings], Awaitable[object]]) -> None:
    """Run `main` with the web process's settings and its database; print its result as JSON.

    The scripts a test runs with `EncoreServer.run` end with this; `run_json` reads the result.
    """

    async def run() -> None:
        settings = load_or_exit()
        await db.init_db(settings)
        try:
            result = await main(settings)
        finally:
            await db.close_db()
        print(json.dumps(result))

    asyncio.run(run())


async def transcoded_video(settings: Settings, seconds: float) -> Video:
    """A recording of `seconds`, uploaded and transcoded for real; ready to be shown."""
    storage = build_storage(settings)
    with tempfile.TemporaryDirectory() as tmp:
        clip = h264_mp4(Path(tmp) / "talk.mp4", size="320x180", seconds=seconds, gop=50)
        storage.put_file("uploads/1/talk.mp4", clip, content_type="video/mp4")
    await Video.create(title="Talk", source_key="uploads/1/talk.mp4")
    video = await transcoding.transcode_next(
        storage=storage,
        workdir=settings.var_dir / "work",
        stale_after=timedelta(minutes=5),
        max_attempts=1,
    )
    assert video is not None
    assert video.state.value == "ready", video
    return video


async def registrant_with_token(
    contact: Contact, *, webinar_id: int, session: WebinarSession, timezone: str
) -> tuple[Registrant, str]:
    """A registrant of the session and the join token of their personal link."""
    token = crypto.new_token()
    registrant = await Registrant.create(
        contact=contact,
        webinar_id=webinar_id,
        session=session,
        join_token_hash=crypto.hash_token(token),
        join_token_sealed=crypto.seal(token),
        timezone=timezone,
    )
    return registrant, token


async def run_json(server: EncoreServer, script: str, *args: object) -> Any:
    """Run a script with the web process's settings; the JSON of its last line of output."""
    out = await asyncio.to_thread(server.run, "-c", script, *(str(arg) for arg in args))
    return json.loads(out.strip().splitlines()[-1])


async def playing(page: Page) -> None:
    """Wait until the room's player is really playing."""
    await page.wait_for_function(
        f"""() => {{
            const video = document.querySelector("{VIDEO}");
            return video && !video.paused && video.readyState >= 3 && video.currentTime > 0;
        }}""",
        timeout=30_000,
    )


async def behind_live(page: Page, start_ms: int) -> float:
    """How far the player is behind the session's clock (negative: ahead of it)."""
    value = await page.evaluate(
        f"""() => (Date.now() - {start_ms}) / 1000
                 - document.querySelector("{VIDEO}").currentTime"""
    )
    assert isinstance(value, int | float)
    return float(value)


async def wait_near_live(page: Page, start_ms: int) -> None:
    """Wait until the player is within the tolerance of the session's clock."""
    await page.wait_for_function(
        f"""() => {{
            const video = document.querySelector("{VIDEO}");
            const live = (Date.now() - {start_ms}) / 1000;
            return video && !video.seeking && Math.abs(live - video.currentTime) < {TOLERANCE_S};
        }}""",
        timeout=STEP_TIMEOUT_S * 1000,
    )


def card(page: Page, title: str) -> Locator:
    """The room's card of the interaction with this title."""
    return page.locator("[data-interaction]").filter(
        has=page.get_by_role("heading", name=title, exact=True)
    )
