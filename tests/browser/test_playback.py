"""hls.js in headless Chromium plays what the pipeline published, from local disk and from S3."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, Request, expect

from tests import s3 as moto
from tests.browser.conftest import DESKTOP, EncoreServer, open_page

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

pytestmark = pytest.mark.browser

EMAIL = "olivia@example.com"
PASSWORD = "violet staple orbit lantern"
JOURNEY_TIMEOUT_S = 180

# Runs with the web process's settings: a tiny recording, uploaded and transcoded for real.
_TRANSCODE_SCRIPT = """
import asyncio, sys, tempfile
from datetime import timedelta
from pathlib import Path
from app import db
from app.models import Video
from app.services import transcoding
from app.services.storage import build_storage
from app.settings import load_or_exit
from tests.media.clips import h264_mp4

async def main() -> None:
    settings = load_or_exit()
    storage = build_storage(settings)
    await db.init_db(settings)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            clip = h264_mp4(Path(tmp) / "talk.mp4", size="640x360", seconds=6, gop=50,
                            extra=("-b:v", "600k", "-maxrate", "700k", "-bufsize", "700k"))
            storage.put_file("uploads/1/talk.mp4", clip, content_type="video/mp4")
        await Video.create(title="Product tour", source_key="uploads/1/talk.mp4")
        video = await transcoding.transcode_next(
            storage=storage, workdir=settings.var_dir / "work",
            stale_after=timedelta(minutes=5), max_attempts=1,
        )
        assert video is not None
        print(video.id, video.state.value, video.hls_key, video.error or "")
    finally:
        await db.close_db()

asyncio.run(main())
"""


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bucket(backend: str, s3: S3Client) -> str:
    return moto.new_bucket(s3) if backend == "s3" else ""


@pytest.fixture
def server_env(backend: str, bucket: str, s3_endpoint: str) -> dict[str, str]:
    """The web process on local disk, or on a private bucket of the moto server."""
    return moto.settings_env(s3_endpoint, bucket) if backend == "s3" else {}


def transcode(server: EncoreServer) -> tuple[int, str]:
    out = server.run("-c", _TRANSCODE_SCRIPT).split()
    video_id, state, hls_key = int(out[0]), out[1], out[2]
    assert state == "ready", out
    return video_id, hls_key


async def test_published_hls_plays_in_chromium(
    browser: Browser,
    server: EncoreServer,
    backend: str,
    bucket: str,
    s3: S3Client,
    s3_endpoint: str,
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        if backend == "s3":
            # Players fetch segments straight from the bucket: it must allow the app's origin.
            s3.put_bucket_cors(
                Bucket=bucket,
                CORSConfiguration={
                    "CORSRules": [
                        {
                            "AllowedOrigins": [server.base_url],
                            "AllowedMethods": ["GET", "HEAD"],
                            "AllowedHeaders": ["*"],
                        }
                    ]
                },
            )
        video_id, hls_key = await asyncio.to_thread(transcode, server)
        assert hls_key == f"videos/{video_id}/v1/master.m3u8"
        await asyncio.to_thread(
            server.create_owner, email=EMAIL, name="Olivia Owner", password=PASSWORD
        )

        page, console = await open_page(browser, viewport=DESKTOP)
        segments: list[str] = []

        def on_request(request: Request) -> None:
            if ".ts" in request.url.split("?")[0]:
                segments.append(request.url)

        page.on("request", on_request)
        await page.goto(f"{server.base_url}/login")
        await page.get_by_label("Email address").fill(EMAIL)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(f"{server.base_url}/admin")

        await page.goto(f"{server.base_url}/admin/media/{video_id}")
        player = page.locator("video[data-hls]")
        await expect(player).to_have_attribute("data-player", "hls.js")
        await expect(player).to_have_attribute("data-hls", f"/media/{hls_key}")
        await page.evaluate(
            """() => {
                const video = document.querySelector("video[data-hls]");
                window.__played = false;
                video.addEventListener("playing", () => { window.__played = true; });
                video.muted = true;
                return video.play();
            }"""
        )
        await page.wait_for_function("() => window.__played === true", timeout=30_000)
        start = await player.evaluate("(video) => video.currentTime")
        await page.wait_for_function(
            f"""() => {{
                const video = document.querySelector("video[data-hls]");
                return !video.paused && video.currentTime > {start} + 1.0;
            }}""",
            timeout=30_000,
        )
        assert await player.get_attribute("data-player-error") is None
        assert segments, "hls.js fetched no segments"
        if backend == "s3":
            assert all(url.startswith(f"{s3_endpoint}/{bucket}/videos/") for url in segments)
            assert all("Signature=" in url for url in segments), segments[0]
        else:
            assert all(url.startswith(f"{server.base_url}/media/videos/") for url in segments)
        assert console.errors == [], console.errors
