"""The video state machine on SQLite and PostgreSQL: transitions, claims, cancel and retry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.models import Video, VideoState
from app.services import videos
from app.settings import Settings
from media.storage import LocalStorage, S3Storage

NOW = datetime(2030, 5, 6, 12, 0, tzinfo=UTC)
STALE = timedelta(seconds=60)


async def make_video(title: str = "Talk", **fields: Any) -> Video:
    return await Video.create(title=title, source_key=f"uploads/{title}.mp4", **fields)


async def claim(now: datetime = NOW, *, max_attempts: int = 3) -> Video | None:
    return await videos.claim_next(now, stale_after=STALE, max_attempts=max_attempts)


async def test_transition_moves_only_from_the_expected_state(database: Settings) -> None:
    video = await make_video()
    moved = await videos.transition(
        video.id, source=VideoState.UPLOADED, target=VideoState.TRANSCODING, stage="queued"
    )
    assert moved
    await video.refresh_from_db()
    assert video.state == VideoState.TRANSCODING
    assert video.stage == "queued"

    # The row is no longer `uploaded`: a second mover (a racing worker) changes nothing.
    again = await videos.transition(
        video.id, source=VideoState.UPLOADED, target=VideoState.TRANSCODING, stage="other"
    )
    assert not again
    await video.refresh_from_db()
    assert video.stage == "queued"

    # Extra conditions (the claiming attempt) must hold too.
    assert not await videos.transition(
        video.id,
        source=VideoState.TRANSCODING,
        target=VideoState.READY,
        only_if={"attempts": 7},
    )
    assert (await Video.get(id=video.id)).state == VideoState.TRANSCODING


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (VideoState.READY, VideoState.UPLOADED),
        (VideoState.READY, VideoState.TRANSCODING),
        (VideoState.UPLOADED, VideoState.READY),
        (VideoState.FAILED, VideoState.READY),
        (VideoState.FAILED, VideoState.TRANSCODING),
    ],
)
async def test_transition_refuses_moves_the_machine_does_not_have(
    database: Settings, source: VideoState, target: VideoState
) -> None:
    video = await make_video(state=source)
    with pytest.raises(videos.TransitionError, match="cannot go from"):
        await videos.transition(video.id, source=source, target=target)
    assert (await Video.get(id=video.id)).state == source


async def test_claim_takes_the_oldest_upload_and_counts_the_attempt(database: Settings) -> None:
    first = await make_video("first")
    second = await make_video("second")
    await make_video("done", state=VideoState.READY)
    await make_video("broken", state=VideoState.FAILED)

    claimed = await claim()
    assert claimed is not None
    assert claimed.id == first.id
    assert claimed.state == VideoState.TRANSCODING
    assert claimed.attempts == 1
    assert claimed.claimed_at == NOW
    assert claimed.heartbeat_at == NOW
    assert claimed.stage == "queued"

    following = await claim()
    assert following is not None
    assert following.id == second.id
    assert await claim() is None


async def test_two_concurrent_claims_never_get_the_same_video(database: Settings) -> None:
    only = await make_video("only")
    results = await asyncio.gather(claim(), claim())
    winners = [r for r in results if r is not None]
    assert [w.id for w in winners] == [only.id]
    assert (await Video.get(id=only.id)).attempts == 1

    a, b = await make_video("a"), await make_video("b")
    three = await asyncio.gather(claim(), claim(), claim())
    claimed = sorted(r.id for r in three if r is not None)
    assert claimed == sorted([a.id, b.id])
    assert [v.attempts for v in await Video.filter(id__in=claimed)] == [1, 1]


async def test_a_stalled_job_is_taken_over_and_fails_after_too_many_attempts(
    database: Settings,
) -> None:
    video = await make_video()
    assert (await claim(NOW)) is not None

    # Still beating: nobody else may take it.
    assert await claim(NOW + STALE - timedelta(seconds=1)) is None

    later = NOW + STALE + timedelta(seconds=1)
    taken = await claim(later, max_attempts=2)
    assert taken is not None
    assert taken.id == video.id
    assert taken.state == VideoState.TRANSCODING
    assert taken.attempts == 2
    assert taken.heartbeat_at == later

    # Stalled again with two attempts used: failed with a clear reason instead of a third try.
    much_later = later + STALE + timedelta(seconds=1)
    await Video.filter(id=video.id).update(playable=True, hls_key="videos/1/v1-preview/x.m3u8")
    assert await claim(much_later, max_attempts=2) is None
    failed = await Video.get(id=video.id)
    assert failed.state == VideoState.FAILED
    assert failed.error_reason == "crashed"
    assert failed.error is not None
    assert "stopped unexpectedly 2 times" in failed.error
    assert not failed.playable
    assert failed.hls_key is None


async def test_a_stalled_job_that_was_cancelled_fails_as_cancelled(database: Settings) -> None:
    video = await make_video()
    await claim(NOW)
    assert await videos.request_cancel(video.id, actor_name="Eddie Editor") is False
    assert await claim(NOW + STALE * 2) is None
    row = await Video.get(id=video.id)
    assert row.state == VideoState.FAILED
    assert row.error_reason == "cancelled"
    assert row.error == "Cancelled by Eddie Editor"
    assert not row.cancel_requested


async def test_cancel_a_waiting_video_fails_it_at_once(database: Settings) -> None:
    video = await make_video()
    assert await videos.request_cancel(video.id, actor_name="Olivia Owner") is True
    row = await Video.get(id=video.id)
    assert row.state == VideoState.FAILED
    assert row.error_reason == "cancelled"
    assert row.error == "Cancelled by Olivia Owner"
    assert await claim() is None

    # Nothing left to cancel.
    with pytest.raises(videos.TransitionError, match="can be cancelled"):
        await videos.request_cancel(video.id, actor_name="Olivia Owner")


async def test_cancel_a_running_video_asks_the_worker(database: Settings) -> None:
    video = await make_video()
    await claim()
    assert await videos.request_cancel(video.id, actor_name="Olivia Owner") is False
    row = await Video.get(id=video.id)
    assert row.state == VideoState.TRANSCODING
    assert row.cancel_requested
    assert videos.status(row)["error"] is None, "the message shows once the job stopped"
    with pytest.raises(videos.TransitionError):
        await videos.request_cancel(video.id, actor_name="Someone Else")


async def test_retry_queues_a_failed_video_again_with_a_clean_slate(database: Settings) -> None:
    video = await make_video()
    await claim()
    await videos.transition(
        video.id,
        source=VideoState.TRANSCODING,
        target=VideoState.FAILED,
        error="Transcoding failed: boom",
        error_reason="transcode_failed",
        progress=42.0,
        stage="transcoding",
    )
    await videos.retry(video.id)
    row = await Video.get(id=video.id)
    assert row.state == VideoState.UPLOADED
    assert row.error is None
    assert row.error_reason is None
    assert row.progress == 0
    assert row.stage == ""
    assert row.attempts == 0
    again = await claim()
    assert again is not None
    assert again.attempts == 1

    ready = await make_video("ready", state=VideoState.READY)
    with pytest.raises(videos.TransitionError, match="can be retried"):
        await videos.retry(ready.id)


async def test_status_is_plain_json(database: Settings) -> None:
    video = await make_video(
        state=VideoState.FAILED, error="The file is empty.", error_reason="empty"
    )
    status = videos.status(video)
    assert status == {
        "id": video.id,
        "state": "failed",
        "stage": "",
        "stage_label": "",
        "progress": 0.0,
        "eta_seconds": None,
        "playable": False,
        "cancel_requested": False,
        "error": "The file is empty.",
        "error_reason": "empty",
        "duration_seconds": None,
        "attempts": 0,
    }


def test_published_version_and_version_names(tmp_path: Path) -> None:
    video = Video(id=5, title="x", source_key="uploads/x", hls_key="videos/5/v2/master.m3u8")
    version = videos.published_version(video)
    assert version == videos.PublishedVersion(
        video_id=5, prefix="videos/5/v2", master_key="videos/5/v2/master.m3u8"
    )
    assert version.name == "v2"
    assert videos.published_version(Video(id=5, title="x", source_key="s")) is None
    assert videos.version_for(5, 3, preview=True).master_key == "videos/5/v3-preview/master.m3u8"

    storage = LocalStorage(root=tmp_path)
    source = tmp_path / "f.txt"
    source.write_text("x")
    for key in (
        "videos/5/v1-preview/master.m3u8",
        "videos/5/v2/master.m3u8",
        "videos/5/v3/360p/seg_00000.ts",
        "videos/5/captions/en.vtt",  # not a version: never touched
        "videos/55/v1/master.m3u8",  # another video
    ):
        storage.put_file(key, source, content_type="text/plain")
    assert videos.version_names(storage, 5) == {"v1-preview", "v2", "v3"}

    assert videos.discard_versions(storage, 5, keep="v2", attempt=3) == ["v3"]
    assert videos.discard_versions(storage, 5, keep="v2") == ["v1-preview"]
    assert storage.list_keys("videos/5") == ["videos/5/captions/en.vtt", "videos/5/v2/master.m3u8"]
    assert storage.exists("videos/55/v1/master.m3u8")


def test_playback_urls_per_backend(tmp_path: Path) -> None:
    local = LocalStorage(root=tmp_path)
    assert videos.playback_url(local, "videos/1/v1/master.m3u8") == "/media/videos/1/v1/master.m3u8"

    private = S3Storage(
        bucket="media",
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:9",
        access_key_id="key",
        secret_access_key="secret",
    )
    # Files naming others relatively come through the app, which signs what they name.
    assert videos.playback_url(private, "videos/1/v1/master.m3u8") == (
        "/media/videos/1/v1/master.m3u8"
    )
    assert videos.playback_url(private, "videos/1/v1/thumbnails.vtt") == (
        "/media/videos/1/v1/thumbnails.vtt"
    )
    poster = videos.playback_url(private, "videos/1/v1/poster.jpg", expires_in=60)
    assert poster.startswith("http://127.0.0.1:9/media/videos/1/v1/poster.jpg?")
    assert "Expires=60" in poster or "X-Amz-Expires=60" in poster

    cdn = S3Storage(bucket="media", public_base_url="https://cdn.example/")
    assert videos.playback_url(cdn, "videos/1/v1/master.m3u8") == (
        "https://cdn.example/videos/1/v1/master.m3u8"
    )
