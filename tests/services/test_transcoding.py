"""The transcode job end to end with real ffmpeg on tiny clips, local storage and S3 (moto)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from tortoise.expressions import F

from app.models import Video, VideoState
from app.services import transcoding, videos
from app.settings import Settings
from app.web.media_files import signed_playlist
from media.playlist import resolve, uris
from media.storage import LocalStorage, S3Storage, Storage
from tests import s3 as moto
from tests.media.clips import h264_mp4, vp9_webm
from tests.published import assert_complete

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

STALE = timedelta(seconds=60)
JOB_TIMEOUT = 120.0
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass(frozen=True)
class Snapshot:
    """The row as the admin would have seen it at one moment."""

    state: VideoState
    stage: str
    progress: float
    eta: float | None
    playable: bool
    hls_key: str | None


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("transcode-clips")
    # Copyable as it is (H.264/AAC, keyframes every 2 s, modest rate): remuxed first.
    h264_mp4(
        folder / "copyable.mp4",
        size="854x480",
        seconds=8,
        gop=50,
        extra=("-b:v", "900k", "-maxrate", "1M", "-bufsize", "1M"),
    )
    # A browser recording: a 360p first pass, then the ladder.
    vp9_webm(folder / "browser.webm", size="640x480", seconds=4)
    # One keyframe only, so it cannot be copied: the slow path, long enough to interrupt.
    h264_mp4(folder / "slow.mp4", size="1280x720", seconds=10, gop=600)
    (folder / "playlist.mp4").write_text("#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n")
    (folder / "noise.mp4").write_bytes(bytes(range(256)) * 64)
    return folder


def local_storage(settings: Settings) -> LocalStorage:
    return LocalStorage(root=settings.resolved_media_dir)


async def add_video(storage: Storage, source: Path, *, title: str = "Talk") -> Video:
    video = await Video.create(title=title, source_key="pending")
    key = f"uploads/{video.id}/{source.name}"
    await asyncio.to_thread(storage.put_file, key, source, content_type="video/mp4")
    video.source_key = key
    await video.save()
    return video


async def claim_and_start(
    video: Video, storage: Storage, settings: Settings
) -> asyncio.Task[Video]:
    claimed = await videos.claim_next(videos.utcnow(), stale_after=STALE, max_attempts=3)
    assert claimed is not None
    assert claimed.id == video.id
    return asyncio.create_task(
        transcoding.run_transcode(
            video.id, storage=storage, workdir=settings.var_dir / "work", beat_interval=0.1
        )
    )


async def watch(task: asyncio.Task[Video], video_id: int) -> tuple[Video, list[Snapshot]]:
    """Poll the row (as the admin page does, faster) until the job ends."""
    seen: list[Snapshot] = []
    async with asyncio.timeout(JOB_TIMEOUT):
        while not task.done():
            row = await Video.get(id=video_id)
            seen.append(
                Snapshot(
                    row.state, row.stage, row.progress, row.eta_seconds, row.playable, row.hls_key
                )
            )
            await asyncio.sleep(0.05)
        return await task, seen


async def wait_for(video_id: int, stage: str) -> None:
    async with asyncio.timeout(JOB_TIMEOUT):
        while True:
            row = await Video.get(id=video_id)
            if row.stage == stage and row.progress > 0:
                return
            assert row.state == VideoState.TRANSCODING, (row.state, row.error)
            await asyncio.sleep(0.05)


def work_folder(settings: Settings, video: Video) -> Path:
    return settings.var_dir / "work" / str(video.id)


async def test_a_copyable_upload_is_playable_first_then_ready_with_the_full_ladder(
    database: Settings, clips: Path
) -> None:
    storage = local_storage(database)
    video = await add_video(storage, clips / "copyable.mp4")
    task = await claim_and_start(video, storage, database)
    done, seen = await watch(task, video.id)

    assert done.state == VideoState.READY, done.error
    assert done.error is None
    prefix = f"videos/{video.id}/v1"
    assert done.hls_key == f"{prefix}/master.m3u8"
    assert done.poster_key == f"{prefix}/poster.jpg"
    assert done.thumbnails_key == f"{prefix}/thumbnails.vtt"
    assert done.playable
    assert done.progress == 100
    assert done.stage == ""
    assert done.ready_at is not None
    assert done.duration_seconds == pytest.approx(8.0, abs=0.1)
    assert (done.width, done.height) == (854, 480)
    assert [(r["name"], r["passthrough"]) for r in done.renditions] == [
        ("480p", True),
        ("360p", False),
    ]
    assert done.probe["video"]["codec"] == "h264"

    # The remuxed preview was published (and playable) before the ladder was done.
    preview_key = f"videos/{video.id}/v1-preview/master.m3u8"
    early = [s for s in seen if s.state == VideoState.TRANSCODING and s.playable]
    assert early, seen
    assert {s.hls_key for s in early} == {preview_key}
    # Progress went forward inside the ladder stage, as the admin shows it.
    ladder = [s for s in seen if s.stage == "transcoding"]
    assert any(0 < s.progress < 100 and s.eta is not None for s in ladder), seen
    assert [s.progress for s in ladder] == sorted(s.progress for s in ladder)
    assert "transcoding" in {s.stage for s in seen}

    # Only the final version remains, complete; the preview was deleted after the switch.
    keys = storage.list_keys(f"videos/{video.id}")
    assert all(key.startswith(f"{prefix}/") for key in keys), keys
    files = assert_complete(storage, prefix + "/master.m3u8")
    assert f"{prefix}/480p/index.m3u8" in files
    assert f"{prefix}/360p/index.m3u8" in files
    for key in (done.poster_key, done.thumbnails_key, f"{prefix}/sprite-001.jpg"):
        assert storage.exists(key), key
    vtt = storage.read_bytes(done.thumbnails_key).decode()
    assert "sprite-001.jpg#xywh=" in vtt
    assert not work_folder(database, video).exists()
    assert storage.exists(video.source_key), "the upload is kept"


@SQLITE_ONLY
async def test_a_browser_recording_gets_a_quick_first_pass(database: Settings, clips: Path) -> None:
    storage = local_storage(database)
    video = await add_video(storage, clips / "browser.webm")
    task = await claim_and_start(video, storage, database)
    done, seen = await watch(task, video.id)

    assert done.state == VideoState.READY, done.error
    assert [r["name"] for r in done.renditions] == ["480p", "360p"]
    assert not any(r["passthrough"] for r in done.renditions)
    assert "first_pass" in {s.stage for s in seen}
    assert assert_complete(storage, f"videos/{video.id}/v1/master.m3u8")


@pytest.mark.parametrize(
    ("clip", "reason", "message"),
    [
        ("playlist.mp4", "playlist", "playlist or a list of other files"),
        ("noise.mp4", "not_media", "not a video or audio file"),
    ],
)
async def test_a_bad_source_fails_with_a_clear_reason_and_can_be_retried(
    database: Settings, clips: Path, clip: str, reason: str, message: str
) -> None:
    storage = local_storage(database)
    video = await add_video(storage, clips / clip)
    task = await claim_and_start(video, storage, database)
    failed = await asyncio.wait_for(task, JOB_TIMEOUT)

    assert failed.state == VideoState.FAILED
    assert failed.error_reason == reason
    assert failed.error is not None
    assert message in failed.error
    assert not failed.playable
    assert failed.hls_key is None
    assert storage.list_keys(f"videos/{video.id}") == []
    assert not work_folder(database, video).exists()
    status = videos.status(failed)
    assert status["error"] == failed.error
    assert status["error_reason"] == reason

    # The editor replaces the file and retries: the same row goes through again.
    await asyncio.to_thread(
        storage.put_file, video.source_key, clips / "copyable.mp4", content_type="video/mp4"
    )
    await videos.retry(video.id)
    task = await claim_and_start(video, storage, database)
    done = await asyncio.wait_for(task, JOB_TIMEOUT)
    assert done.state == VideoState.READY, done.error
    assert done.attempts == 1
    assert done.error is None


@SQLITE_ONLY
async def test_a_missing_upload_fails_with_a_storage_reason(database: Settings) -> None:
    storage = local_storage(database)
    video = await Video.create(title="Gone", source_key="uploads/9/gone.mp4")
    task = await claim_and_start(video, storage, database)
    failed = await asyncio.wait_for(task, JOB_TIMEOUT)
    assert failed.state == VideoState.FAILED
    assert failed.error_reason == "storage"
    assert failed.error == "The uploaded file is missing from storage. Upload the recording again."


async def test_cancel_stops_ffmpeg_and_unpublishes(database: Settings, clips: Path) -> None:
    storage = local_storage(database)
    video = await add_video(storage, clips / "slow.mp4")
    task = await claim_and_start(video, storage, database)
    await wait_for(video.id, "transcoding")
    assert (await Video.get(id=video.id)).playable, "the first pass is published by now"

    assert await videos.request_cancel(video.id, actor_name="Eddie Editor") is False
    cancelled = await asyncio.wait_for(task, 15)

    assert cancelled.state == VideoState.FAILED
    assert cancelled.error_reason == "cancelled"
    assert cancelled.error == "Cancelled by Eddie Editor"
    assert not cancelled.cancel_requested
    assert not cancelled.playable
    assert cancelled.hls_key is None
    assert storage.list_keys(f"videos/{video.id}") == []
    assert not work_folder(database, video).exists()


@SQLITE_ONLY
async def test_a_job_taken_over_by_another_worker_stops_and_touches_nothing(
    database: Settings, clips: Path
) -> None:
    storage = local_storage(database)
    video = await add_video(storage, clips / "slow.mp4")
    task = await claim_and_start(video, storage, database)
    await wait_for(video.id, "transcoding")
    # Another worker took the (apparently stalled) job over: the attempt number moved on.
    await Video.filter(id=video.id).update(attempts=F("attempts") + 1, stage="queued")
    stopped = await asyncio.wait_for(task, 15)

    assert stopped.state == VideoState.TRANSCODING
    assert stopped.attempts == 2
    assert stopped.stage == "queued", "the old job wrote nothing after losing its claim"
    # Its published preview stays (the row points at it); nothing else of attempt 1 remains.
    assert stopped.hls_key == f"videos/{video.id}/v1-preview/master.m3u8"
    assert videos.version_names(storage, video.id) == {"v1-preview"}
    assert_complete(storage, stopped.hls_key)


@SQLITE_ONLY
async def test_shutdown_gives_the_video_back(database: Settings, clips: Path) -> None:
    storage = local_storage(database)
    video = await add_video(storage, clips / "slow.mp4")
    await videos.claim_next(videos.utcnow(), stale_after=STALE, max_attempts=3)
    shutdown = threading.Event()
    task = asyncio.create_task(
        transcoding.run_transcode(
            video.id,
            storage=storage,
            workdir=database.var_dir / "work",
            beat_interval=0.1,
            shutdown=shutdown,
        )
    )
    await wait_for(video.id, "transcoding")
    shutdown.set()
    released = await asyncio.wait_for(task, 15)
    assert released.state == VideoState.UPLOADED
    assert released.heartbeat_at is None
    # The published first pass stays playable until the next run replaces it.
    assert released.playable
    again = await videos.claim_next(videos.utcnow(), stale_after=STALE, max_attempts=3)
    assert again is not None
    assert again.attempts == 2


# --- S3 ---------------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_publish_to_s3_with_content_types_and_signed_playlists(
    database: Settings, clips: Path, s3_endpoint: str, s3: S3Client
) -> None:
    bucket = moto.new_bucket(s3)
    storage = moto.storage(s3_endpoint, bucket, prefix="encore")
    video = await add_video(storage, clips / "copyable.mp4")
    # Leftovers of a killed worker: an unpublished version in the bucket, partial local files.
    leftover = clips / "noise.mp4"
    storage.put_file(f"videos/{video.id}/v7/master.m3u8", leftover, content_type="text/plain")
    storage.put_file(f"videos/{video.id}/captions/en.vtt", leftover, content_type="text/vtt")
    junk = work_folder(database, video) / ".hls.partial-deadbeef"
    junk.mkdir(parents=True)
    (junk / "seg_00000.ts").write_bytes(b"half")

    task = await claim_and_start(video, storage, database)
    done = await asyncio.wait_for(task, JOB_TIMEOUT)
    assert done.state == VideoState.READY, done.error
    assert isinstance(storage, S3Storage)

    prefix = f"videos/{video.id}/v1"
    keys = storage.list_keys(f"videos/{video.id}")
    assert f"videos/{video.id}/captions/en.vtt" in keys, "only version folders are cleaned"
    assert [k for k in keys if not k.startswith(prefix + "/")] == [
        f"videos/{video.id}/captions/en.vtt"
    ]
    assert not work_folder(database, video).exists()
    assert_complete(storage, f"{prefix}/master.m3u8")

    def content_type(key: str) -> str:
        return s3.head_object(Bucket=bucket, Key=f"encore/{key}")["ContentType"]

    assert content_type(f"{prefix}/master.m3u8") == "application/vnd.apple.mpegurl"
    assert content_type(f"{prefix}/360p/index.m3u8") == "application/vnd.apple.mpegurl"
    assert content_type(f"{prefix}/360p/seg_00000.ts") == "video/mp2t"
    assert content_type(f"{prefix}/poster.jpg") == "image/jpeg"
    assert content_type(f"{prefix}/thumbnails.vtt") == "text/vtt"

    # Signed for a private bucket: playlists stay relative, every segment URL works as it is.
    master = storage.read_bytes(f"{prefix}/master.m3u8").decode()
    signed_master = signed_playlist(storage, f"{prefix}/master.m3u8", master, expires_in=600)
    assert signed_master == master
    variant_key = f"{prefix}/360p/index.m3u8"
    variant = storage.read_bytes(variant_key).decode()
    signed = signed_playlist(storage, variant_key, variant, expires_in=600)
    segment_urls = uris(signed)
    assert segment_urls
    assert len(segment_urls) == len(uris(variant))
    async with httpx.AsyncClient(timeout=10) as http:
        for url in segment_urls:
            assert url.startswith(f"{s3_endpoint}/{bucket}/encore/{prefix}/360p/seg_")
            assert "Signature=" in url or "X-Amz-Signature=" in url
            response = await http.get(url)
            assert response.status_code == 200
            assert response.content[:1] == b"\x47", "an MPEG-TS packet"
    assert resolve(variant_key, uris(variant)[0]) == f"{prefix}/360p/seg_00000.ts"
