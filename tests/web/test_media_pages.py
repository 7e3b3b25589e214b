"""`/media` serving (ranges, types, only published files) and the admin media pages and status."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.models import AuditEvent, Role, Video, VideoState
from app.services import videos
from app.settings import Settings, load_settings, use_settings
from tests import s3 as moto
from tests.conftest import csrf_token, login, make_user

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MASTER = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"
360p/index.m3u8
"""
VARIANT = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:4
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:4.000000,
seg_00000.ts
#EXTINF:2.000000,
seg_00001.ts
#EXT-X-ENDLIST
"""
THUMBNAILS = "WEBVTT\n\n00:00:00.000 --> 00:00:06.000\nsprite-001.jpg#xywh=0,0,160,90\n"
SEGMENT = bytes([0x47]) + bytes(range(1, 188)) * 10


def publish_sample(root: Path, prefix: str = "videos/1/v1") -> None:
    """A small published version written straight into a local media folder."""
    folder = root / prefix
    (folder / "360p").mkdir(parents=True)
    (folder / "master.m3u8").write_text(MASTER)
    (folder / "360p" / "index.m3u8").write_text(VARIANT)
    (folder / "360p" / "seg_00000.ts").write_bytes(SEGMENT)
    (folder / "360p" / "seg_00001.ts").write_bytes(SEGMENT[:376])
    (folder / "poster.jpg").write_bytes(b"\xff\xd8\xff\xe0poster")
    (folder / "thumbnails.vtt").write_text(THUMBNAILS)
    (folder / "sprite-001.jpg").write_bytes(b"\xff\xd8\xff\xe0sprite")


# --- /media from local storage ----------------------------------------------------------------


async def test_media_serves_published_files_with_types_and_ranges(
    client: httpx.AsyncClient, database: Settings
) -> None:
    root = database.resolved_media_dir
    publish_sample(root)

    master = await client.get("/media/videos/1/v1/master.m3u8")
    assert master.status_code == 200
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert master.headers["cache-control"] == "no-cache"
    assert master.text == MASTER

    segment = await client.get("/media/videos/1/v1/360p/seg_00000.ts")
    assert segment.status_code == 200
    assert segment.headers["content-type"] == "video/mp2t"
    assert segment.headers["accept-ranges"] == "bytes"
    assert segment.content == SEGMENT

    part = await client.get("/media/videos/1/v1/360p/seg_00000.ts", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 0-9/{len(SEGMENT)}"
    assert part.content == SEGMENT[:10]
    tail = await client.get("/media/videos/1/v1/360p/seg_00000.ts", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206
    assert tail.content == SEGMENT[-5:]
    beyond = await client.get(
        "/media/videos/1/v1/360p/seg_00000.ts", headers={"Range": f"bytes={len(SEGMENT) + 10}-"}
    )
    assert beyond.status_code == 416

    head = await client.head("/media/videos/1/v1/poster.jpg")
    assert head.status_code == 200
    assert head.headers["content-type"] == "image/jpeg"
    assert head.headers["content-length"] == str(len(b"\xff\xd8\xff\xe0poster"))
    vtt = await client.get("/media/videos/1/v1/thumbnails.vtt")
    assert vtt.headers["content-type"].startswith("text/vtt")


@pytest.mark.parametrize(
    "path",
    [
        "/media/uploads/1/talk.mp4",  # the private source, even though it is stored
        "/media/uploads/1/talk.m3u8",
        "/media/videos/1/v1/secret.txt",  # not a media type we publish
        "/media/videos/1/v1/missing.ts",
        "/media/videos/1/.v2.partial-1234/master.m3u8",  # hidden work in progress
        "/media/videos/1/v1/master.m3u8.partial",
        "/media/videos/1/v1/%2e%2e/%2e%2e/%2e%2e/uploads/1/talk.mp4",
        "/media/videos/..%2f..%2fuploads/1/talk.mp4",
        "/media/videos//1/v1/master.m3u8",
        "/media/secret_key",
        "/media/",
    ],
)
async def test_media_refuses_everything_but_published_outputs(
    client: httpx.AsyncClient, database: Settings, path: str
) -> None:
    root = database.resolved_media_dir
    publish_sample(root)
    uploads = root / "uploads" / "1"
    uploads.mkdir(parents=True)
    (uploads / "talk.mp4").write_bytes(b"private source")
    (uploads / "talk.m3u8").write_text("#EXTM3U\n")
    (root / "videos" / "1" / "v1" / "secret.txt").write_text("x")
    hidden = root / "videos" / "1" / ".v2.partial-1234"
    hidden.mkdir()
    (hidden / "master.m3u8").write_text(MASTER)
    (root / "videos" / "1" / "v1" / "master.m3u8.partial").write_text(MASTER)

    response = await client.get(path)
    assert response.status_code == 404, (path, response.status_code)
    assert b"private source" not in response.content


# --- /media from a private S3 bucket ------------------------------------------------------------


@pytest.fixture(params=["presigned", "public"])
async def s3_app(
    request: pytest.FixtureRequest, database: Settings, s3_endpoint: str, s3: S3Client
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """The app on an S3 bucket holding the sample version: (client, bucket, mode)."""
    from app.main import create_app

    bucket = moto.new_bucket(s3)
    public = f"{s3_endpoint}/{bucket}" if request.param == "public" else ""
    settings = load_settings(
        **{k.lower(): v for k, v in moto.settings_env(s3_endpoint, bucket).items()},
        s3_prefix="media",
        s3_public_base_url=public,
        var_dir=database.var_dir,
        database_url=database.resolved_database_url,
        public_base_url="http://testserver",
        secret_key=database.secret_key,
    )
    use_settings(settings)
    publish_sample(database.var_dir / "staging")
    storage = moto.storage(s3_endpoint, bucket, prefix="media")
    storage.put_tree("videos/1/v1", database.var_dir / "staging" / "videos" / "1" / "v1")
    storage.put_file(
        "uploads/1/talk.mp4", database.var_dir / "staging" / "videos" / "1" / "v1" / "poster.jpg",
        content_type="video/mp4",
    )  # fmt: skip
    app = create_app(settings, manage_db=False)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as c,
    ):
        yield c, bucket, request.param


async def test_media_on_s3_signs_segments_or_points_to_the_public_base(
    s3_app: tuple[httpx.AsyncClient, str, str], s3_endpoint: str
) -> None:
    client, bucket, mode = s3_app
    base = f"{s3_endpoint}/{bucket}/media/videos/1/v1"

    master = await client.get("/media/videos/1/v1/master.m3u8")
    if mode == "public":
        # A CDN serves everything; relative URIs then resolve there too.
        assert master.status_code == 302
        assert master.headers["location"] == f"{base}/master.m3u8"
        poster = await client.get("/media/videos/1/v1/poster.jpg")
        assert poster.headers["location"] == f"{base}/poster.jpg"
        return

    assert master.status_code == 200
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert master.text == MASTER, "playlist URIs stay relative and come back here"
    variant = await client.get("/media/videos/1/v1/360p/index.m3u8")
    assert variant.status_code == 200
    assert variant.headers["cache-control"].startswith("private")
    lines = [line for line in variant.text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 2
    async with httpx.AsyncClient(timeout=10) as outside:
        for number, url in enumerate(lines):
            assert url.startswith(f"{base}/360p/seg_0000{number}.ts?")
            fetched = await outside.get(url)
            assert fetched.status_code == 200
            assert fetched.content[:1] == b"\x47"
        unsigned = await outside.get(f"{base}/360p/seg_00000.ts")
        assert unsigned.status_code == 403, "the bucket is private"

    poster = await client.get("/media/videos/1/v1/poster.jpg")
    assert poster.status_code == 302
    assert poster.headers["location"].startswith(f"{base}/poster.jpg?")
    # The thumbnail map names its sprite sheets relatively too: they are presigned here.
    thumbnails = await client.get("/media/videos/1/v1/thumbnails.vtt")
    assert thumbnails.status_code == 200
    assert thumbnails.headers["content-type"].startswith("text/vtt")
    sprite = thumbnails.text.splitlines()[3]
    assert sprite.startswith(f"{base}/sprite-001.jpg?")
    assert sprite.endswith("#xywh=0,0,160,90")
    async with httpx.AsyncClient(timeout=10) as outside:
        assert (await outside.get(sprite.split("#")[0])).content == b"\xff\xd8\xff\xe0sprite"
    assert (await client.get("/media/videos/1/v1/nothing.m3u8")).status_code == 404
    assert (await client.get("/media/uploads/1/talk.mp4")).status_code == 404


# --- admin pages ------------------------------------------------------------------------------


async def sign_in(client: httpx.AsyncClient, role: Role = Role.EDITOR) -> None:
    await make_user(Role.OWNER, name="Olivia Owner")
    user = await make_user(role, name="Eddie Editor")
    response = await login(client, user.email)
    assert response.status_code == 303


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


async def test_media_list_shows_live_state(client: httpx.AsyncClient, database: Settings) -> None:
    await sign_in(client)
    running = await Video.create(
        title="Quarterly review",
        original_filename="review.mov",
        source_key="uploads/1/review.mov",
        size_bytes=1_500_000_000,
        state=VideoState.TRANSCODING,
        stage="transcoding",
        progress=42.4,
        eta_seconds=300,
        playable=True,
        duration_seconds=3725,
    )
    await Video.create(
        title="Broken",
        source_key="uploads/2/x.mp4",
        state=VideoState.FAILED,
        error="The file is damaged or incomplete; was the upload or the export cut short?",
        error_reason="corrupt",
    )
    page = await client.get("/admin/media")
    assert page.status_code == 200
    body = page.text
    assert f'href="/admin/media/{running.id}"' in body
    assert 'data-video-status data-video-id="' in body
    assert '<progress max="100" value="42.4"' in body
    words = text_of(body)
    assert "Encoding every size · 42% · about 5 min left" in words
    assert "playable now" in words
    assert "1:02:05" in words
    assert "1.50 GB" in words
    assert "The file is damaged or incomplete" in words
    assert "/static/js/media.js" in body
    assert "admin/_upload.html" not in body


async def test_video_page_plays_the_published_version(
    client: httpx.AsyncClient, database: Settings
) -> None:
    await sign_in(client)
    publish_sample(database.resolved_media_dir)
    video = await Video.create(
        title="Launch",
        source_key="uploads/1/launch.mp4",
        state=VideoState.READY,
        playable=True,
        hls_key="videos/1/v1/master.m3u8",
        poster_key="videos/1/v1/poster.jpg",
        thumbnails_key="videos/1/v1/thumbnails.vtt",
        duration_seconds=65.2,
        width=1280,
        height=720,
        renditions=[
            {"name": "720p", "width": 1280, "height": 720, "video_bitrate": 2500000,
             "audio_bitrate": 128000, "passthrough": True, "playlist": "x"},
            {"name": "360p", "width": 640, "height": 360, "video_bitrate": 870000,
             "audio_bitrate": 96000, "passthrough": False, "playlist": "y"},
        ],
    )  # fmt: skip
    page = await client.get(f"/admin/media/{video.id}")
    assert page.status_code == 200
    body = page.text
    assert 'data-hls="/media/videos/1/v1/master.m3u8"' in body
    assert 'poster="/media/videos/1/v1/poster.jpg"' in body
    assert "/static/vendor/hls.min.js" in body
    assert "/static/js/player.js" in body
    words = text_of(body)
    assert "1:05" in words
    assert "1280 x 720" in words
    assert "720p 1280 x 720 2500 kbit/s 128 kbit/s copied from the upload" in words
    assert "360p 640 x 360 870 kbit/s 96 kbit/s encoded" in words
    assert "Cancel processing" not in words
    assert "Retry" not in words
    # Everything the page points the player at is served.
    for url in ("/media/videos/1/v1/master.m3u8", "/media/videos/1/v1/poster.jpg"):
        assert (await client.get(url)).status_code == 200

    assert (await client.get("/admin/media/999999")).status_code == 404


async def test_cancel_and_retry_from_the_video_page(
    client: httpx.AsyncClient, database: Settings
) -> None:
    await sign_in(client)
    video = await Video.create(title="Demo", source_key="uploads/1/demo.mp4")
    page = await client.get(f"/admin/media/{video.id}")
    assert "Cancel processing" in page.text
    assert "Waiting for the transcoder" in text_of(page.text)
    token = await csrf_token(client, f"/admin/media/{video.id}")

    cancelled = await client.post(f"/admin/media/{video.id}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == f"/admin/media/{video.id}?done=cancelled"
    page = await client.get(cancelled.headers["location"])
    words = text_of(page.text)
    assert "Cancelled by Eddie Editor" in words
    assert "Reason: cancelled (<code>cancelled</code>)" in page.text
    assert "Retry" in words
    assert await AuditEvent.filter(action="video.cancel", target=f"video:{video.id}").exists()

    # Cancelling twice is refused with the reason, and changes nothing.
    again = await client.post(f"/admin/media/{video.id}/cancel", data={"csrf_token": token})
    assert again.status_code == 409
    assert "can be cancelled" in again.text

    retried = await client.post(f"/admin/media/{video.id}/retry", data={"csrf_token": token})
    assert retried.status_code == 303
    assert (await Video.get(id=video.id)).state == VideoState.UPLOADED
    page = await client.get(retried.headers["location"])
    assert "Queued again" in page.text
    refused = await client.post(f"/admin/media/{video.id}/retry", data={"csrf_token": token})
    assert refused.status_code == 409
    assert "can be retried" in refused.text

    # A running job is asked to stop.
    await videos.claim_next(videos.utcnow(), stale_after=timedelta(minutes=1), max_attempts=3)
    stopping = await client.post(f"/admin/media/{video.id}/cancel", data={"csrf_token": token})
    assert stopping.headers["location"] == f"/admin/media/{video.id}?done=cancelling"
    assert (await Video.get(id=video.id)).cancel_requested


async def test_status_json_for_polling(client: httpx.AsyncClient, database: Settings) -> None:
    await sign_in(client)
    a = await Video.create(
        title="A", source_key="uploads/a", state=VideoState.TRANSCODING, stage="first_pass",
        progress=12.25, eta_seconds=61.4,
    )  # fmt: skip
    b = await Video.create(title="B", source_key="uploads/b")
    response = await client.get(
        f"/admin/media/status?ids={a.id},{b.id},999,x,{a.id}",
        headers={"accept": "application/json"},
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    data = response.json()["videos"]
    assert [v["id"] for v in data] == [a.id, b.id]
    assert data[0]["state"] == "transcoding"
    assert data[0]["stage_label"] == "Making a quick version"
    assert data[0]["progress"] == 12.2
    assert data[0]["eta_seconds"] == 61
    assert data[1]["state"] == "uploaded"
    empty = await client.get("/admin/media/status", headers={"accept": "application/json"})
    assert empty.json() == {"videos": []}

    # Signed out: no data, the browser is sent to sign in.
    client.cookies.clear()
    anonymous = await client.get(f"/admin/media/status?ids={a.id}")
    assert anonymous.status_code == 303
    assert urlsplit(anonymous.headers["location"]).path == "/login"
