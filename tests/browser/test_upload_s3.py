"""Uploading with MEDIA_BACKEND=s3 in a real browser: parts go straight to a moto S3 server."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, Request, Response, expect

from tests import s3 as moto
from tests.browser.conftest import DESKTOP, EncoreServer, open_page
from tests.browser.test_upload import JOURNEY_TIMEOUT_S, _sign_in
from tests.media.clips import H264, ffmpeg, picture

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

pytestmark = pytest.mark.browser


@pytest.fixture
def server_env(s3_endpoint: str, bucket: str) -> dict[str, str]:
    """The web process keeps its media in the bucket."""
    return moto.settings_env(s3_endpoint, bucket)


def _allow_browser_uploads(s3: S3Client, bucket: str, origin: str) -> None:
    """The CORS rule the README asks for: PUT from the app's origin, ETag exposed."""
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [origin],
                    "AllowedMethods": ["GET", "HEAD", "PUT"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 600,
                }
            ]
        },
    )


def moto_endpoint(s3: S3Client) -> str:
    """The base URL the boto3 client talks to."""
    return str(s3.meta.endpoint_url)


def _two_part_recording(path: Path) -> Path:
    """A real 110 s recording of about 21 MB (uncompressed sound): one 16 MiB part and a rest."""
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=110"]
    ffmpeg(*picture("160x90", 110, 5), *sound, "-ac", "2", *H264, "-c:a", "pcm_s16le",
           "-shortest", str(path))  # fmt: skip
    return path


async def test_parts_go_to_the_bucket_and_resume_after_a_reload(
    browser: Browser, server: EncoreServer, s3: S3Client, bucket: str, tmp_path: Path
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        _allow_browser_uploads(s3, bucket, server.base_url)
        clip = _two_part_recording(tmp_path / "Town hall.mov")
        data = clip.read_bytes()
        page, console = await open_page(browser, viewport=DESKTOP)
        await _sign_in(page, server)
        await page.goto(f"{server.base_url}/admin/media")
        await expect(page.locator("[data-upload]")).to_have_attribute("data-backend", "s3")

        puts: list[str] = []
        to_app: list[str] = []

        def on_request(request: Request) -> None:
            if request.method == "PUT":
                puts.append(request.url)
            if request.url.startswith(server.base_url) and request.method in {"PUT", "PATCH"}:
                to_app.append(request.url)

        page.on("request", on_request)
        # A slow line: the small last part lands first, then the page is reloaded.
        cdp = await page.context.new_cdp_session(page)
        line = {"latency": 20, "downloadThroughput": -1, "uploadThroughput": 3_000_000}
        await cdp.send("Network.emulateNetworkConditions", {"offline": False, **line})
        async with page.expect_response(
            lambda r: r.request.method == "PUT" and "partNumber=2" in r.url
        ) as second:
            await page.get_by_label("Choose a file…").set_input_files(clip)
        answer: Response = await second.value
        assert answer.ok
        assert all(url.startswith(moto_endpoint(s3)) for url in puts), puts
        await page.reload()
        await expect(page.get_by_text("Unfinished uploads")).to_be_visible()
        await expect(page.locator("[data-upload-pending-list]")).to_contain_text("Town hall.mov")
        uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert len(uploads) == 1

        # Choosing the same file again sends only the part S3 does not have yet.
        puts.clear()
        await page.get_by_label("Choose a file…").set_input_files(clip)
        done = page.get_by_role("status").filter(has_text="is uploaded")
        await expect(done).to_contain_text("“Town hall” is uploaded", timeout=60_000)
        numbers = [re.findall(r"partNumber=(\d+)", url) for url in puts]
        assert numbers == [["1"]], puts
        assert to_app == [], "bytes were sent to the app"

        key = uploads[0]["Key"]
        stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        await expect(page.get_by_role("cell", name=re.compile("Town hall"))).to_be_visible()
        assert await page.evaluate("Object.keys(localStorage).length") == 0
        # The upload cut by the reload is the only console message.
        assert all("partNumber=1" in e or "ERR_ABORTED" in e for e in console.errors), (
            console.errors
        )
        await page.context.close()
