"""The transcode job: fetch, probe, publish a quick version, then the whole ladder, then `ready`.

One job runs per claimed video (see app.services.videos for the states and the claim). The
blocking work (ffmpeg, ffprobe, uploads) runs in a worker thread; a monitor task on the event
loop writes the job's stage, percent and ETA to the row about once a second together with the
heartbeat, and reads back whether someone cancelled the job or another worker took it over.
The thread notices at its next progress report and stops ffmpeg (app.services.transcode_job).

Everything temporary lives in `<workdir>/<video id>/`, which is emptied when the job starts
(whatever a killed worker left there) and removed when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from app.models import Video
from app.services.transcode_job import Job, Stopped, find_why, monitor
from app.services.videos import (
    FAILED,
    READY,
    TRANSCODING,
    UPLOADED,
    FailReason,
    PublishedVersion,
    TransitionError,
    claim_next,
    discard_versions,
    published_version,
    transition,
    utcnow,
    version_for,
    video_prefix,
)
from app.settings import get_settings
from media.ffmpeg import FfmpegError
from media.hls import HlsOutput, passthrough_rendition, remux, transcode, transcode_first_pass
from media.ladder import renditions_for
from media.probe import ProbeError, ProbeResult, probe
from media.progress import FfmpegTimeout
from media.storage import KeyNotFound, LocalStorage, Storage, StorageError

log = logging.getLogger("encore.transcode")

PublishHook = Callable[[PublishedVersion, Storage], Awaitable[None]]
"""Called after a version's files are stored and before players are switched to it."""

_hooks: list[PublishHook] = []


def add_publish_hook(hook: PublishHook) -> None:
    """Run `hook` for every version published from now on (for example to add subtitles)."""
    if hook not in _hooks:
        _hooks.append(hook)


def remove_publish_hook(hook: PublishHook) -> None:
    """Stop running a publish hook."""
    if hook in _hooks:
        _hooks.remove(hook)


def _fresh_folder(folder: Path) -> None:
    """Empty the job's folder: partial outputs and downloads of killed attempts go."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def _fetch(storage: Storage, key: str, work: Path) -> Path:
    if isinstance(storage, LocalStorage):
        path = storage.path(key)
        if not path.is_file():
            raise KeyNotFound(f"{key} is not stored")
        return path
    dest = work / "source"
    storage.get_file(key, dest)
    return dest


def _facts(source: ProbeResult) -> dict[str, Any]:
    return {
        "container": source.container,
        "size": source.size,
        "duration": source.duration,
        "bit_rate": source.bit_rate,
        "keyframe_interval": source.keyframe_interval,
        "video": asdict(source.video) if source.video else None,
        "audio": asdict(source.audio) if source.audio else None,
    }


def _renditions(output: HlsOutput, version: PublishedVersion) -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "width": r.width,
            "height": r.height,
            "video_bitrate": r.video_bitrate,
            "audio_bitrate": r.audio_bitrate,
            "passthrough": r.passthrough,
            "playlist": f"{version.prefix}/{output.playlist(r)}",
        }
        for r in output.renditions
    ]


async def _publish(
    job: Job, storage: Storage, output: HlsOutput, version: PublishedVersion, *, final: bool
) -> None:
    """Store a finished folder as a version, then point the row at it; drop the one it replaces."""
    before = published_version(await Video.get(id=job.video_id))
    await asyncio.to_thread(storage.put_tree, version.prefix, output.folder)
    for hook in list(_hooks):
        await hook(version, storage)
    job.check()
    fields: dict[str, Any] = {
        "playable": True,
        "hls_key": version.master_key,
        "renditions": _renditions(output, version),
    }
    if final:
        now = utcnow()
        fields |= {
            "poster_key": f"{version.prefix}/{output.poster}" if output.poster else None,
            "thumbnails_key": f"{version.prefix}/{output.thumbnails}"
            if output.thumbnails
            else None,
            "stage": "",
            "progress": 100.0,
            "eta_seconds": None,
            "ready_at": now,
            "heartbeat_at": now,
        }
        switched = await transition(
            job.video_id,
            source=TRANSCODING,
            target=READY,
            only_if={"attempts": job.attempt, "cancel_requested": False},
            now=now,
            **fields,
        )
    else:
        switched = await job.claimed().filter(cancel_requested=False).update(**fields) == 1
    if not switched:
        await find_why(job)
        job.stop(job.reason or "lost")
        job.check()
    log.info(
        "published",
        extra={"video_id": job.video_id, "version": version.name, "final": final},
    )
    if before is not None and before.prefix != version.prefix:
        await _tidy(storage, job.video_id, drop=before.name)


async def _pipeline(
    job: Job,
    video: Video,
    storage: Storage,
    work: Path,
    *,
    max_duration: float,
    max_size: int,
) -> None:
    await asyncio.to_thread(_fresh_folder, work)
    current = published_version(video)
    await asyncio.to_thread(
        discard_versions, storage, video.id, keep=current.name if current else None
    )
    job.begin("fetching")
    path = await asyncio.to_thread(_fetch, storage, video.source_key, work)
    job.begin("probing")
    source = await asyncio.to_thread(probe, path, max_duration=max_duration, max_size=max_size)
    job.check()
    shown = source.video
    await job.claimed().update(
        duration_seconds=source.duration,
        width=shown.display_width if shown else None,
        height=shown.display_height if shown else None,
        audio_only=source.audio_only,
        probe=_facts(source),
    )
    ladder = renditions_for(source)
    quick = passthrough_rendition(source) is not None
    # A one-rung ladder that must be encoded anyway gains nothing from a preview of itself.
    if quick or len(ladder) > 1:
        job.begin("remuxing" if quick else "first_pass")
        fast = remux if quick else transcode_first_pass
        preview = await asyncio.to_thread(
            fast, source, work / "preview", on_progress=job.on_progress
        )
        job.begin("publishing_preview")
        version = version_for(video.id, job.attempt, preview=True)
        await _publish(job, storage, preview, version, final=False)
        await asyncio.to_thread(shutil.rmtree, preview.folder, True)
    job.begin("transcoding")
    full = await asyncio.to_thread(
        transcode, source, work / "hls", renditions=ladder, on_progress=job.on_progress
    )
    job.begin("publishing")
    await _publish(job, storage, full, version_for(video.id, job.attempt), final=True)


async def _fail(job: Job, storage: Storage, reason: str, message: str) -> None:
    failed = await transition(
        job.video_id,
        source=TRANSCODING,
        target=FAILED,
        only_if={"attempts": job.attempt},
        error_reason=reason,
        error=message,
        cancel_requested=False,
        stage="",
        progress=0.0,
        eta_seconds=None,
        playable=False,
        hls_key=None,
        poster_key=None,
        thumbnails_key=None,
        renditions=[],
    )
    if failed:
        log.info("transcode failed", extra={"video_id": job.video_id, "reason": reason})
        await _tidy(storage, job.video_id, keep=None)
    else:
        await _drop_own_versions(job, storage)


async def _tidy(
    storage: Storage,
    video_id: int,
    *,
    keep: str | None = None,
    attempt: int | None = None,
    drop: str | None = None,
) -> None:
    """Delete unpublished versions (or the one named `drop`); a failure waits for the next claim."""
    try:
        if drop is not None:
            await asyncio.to_thread(storage.delete_prefix, f"{video_prefix(video_id)}/{drop}")
        else:
            await asyncio.to_thread(discard_versions, storage, video_id, keep=keep, attempt=attempt)
    except StorageError:
        log.warning("could not delete old media files", extra={"video_id": video_id}, exc_info=True)


async def _drop_own_versions(job: Job, storage: Storage) -> None:
    """Delete what this attempt stored but did not get published."""
    row = await Video.get_or_none(id=job.video_id)
    current = published_version(row) if row is not None else None
    await _tidy(storage, job.video_id, keep=current.name if current else None, attempt=job.attempt)


async def _stopped(job: Job, storage: Storage) -> None:
    if job.reason == "cancelled":
        row = await Video.get(id=job.video_id)
        await _fail(job, storage, FailReason.CANCELLED.value, row.error or "Cancelled.")
    elif job.reason == "shutdown":
        # Given back at once, so the next start need not wait for the heartbeat to go stale.
        await transition(
            job.video_id,
            source=TRANSCODING,
            target=UPLOADED,
            only_if={"attempts": job.attempt},
            stage="",
            progress=0.0,
            eta_seconds=None,
            claimed_at=None,
            heartbeat_at=None,
        )
        await _drop_own_versions(job, storage)
    else:
        log.warning("transcode taken over by another worker", extra={"video_id": job.video_id})
        await _drop_own_versions(job, storage)


def _short(exc: Exception, limit: int = 600) -> str:
    text = str(exc).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def run_transcode(
    video_id: int,
    *,
    storage: Storage,
    workdir: Path,
    max_duration: float | None = None,
    max_size: int | None = None,
    beat_interval: float = 1.0,
    shutdown: threading.Event | None = None,
) -> Video:
    """Transcode a claimed video and publish it; the row as it ends (ready, failed, given back)."""
    video = await Video.get(id=video_id)
    if video.state != TRANSCODING:
        raise TransitionError("claim the video (claim_next) before transcoding it")
    settings = get_settings()
    job = Job(video_id=video_id, attempt=video.attempts, shutdown=shutdown)
    work = workdir / str(video_id)
    log.info("transcode started", extra={"video_id": video_id, "attempt": job.attempt})
    watcher = asyncio.create_task(monitor(job, beat_interval))
    try:
        await _pipeline(
            job,
            video,
            storage,
            work,
            max_duration=max_duration or settings.max_video_seconds,
            max_size=max_size or settings.max_upload_bytes,
        )
    except Stopped:
        await _stopped(job, storage)
    except ProbeError as exc:
        await _fail(job, storage, exc.reason.value, exc.message)
    except FfmpegTimeout:
        message = (
            "Transcoding took longer than allowed and was stopped. "
            "Retry, or upload a shorter recording."
        )
        await _fail(job, storage, FailReason.TIMEOUT.value, message)
    except FfmpegError as exc:
        await _fail(
            job, storage, FailReason.TRANSCODE_FAILED.value, f"Transcoding failed: {_short(exc)}"
        )
    except KeyNotFound:
        message = "The uploaded file is missing from storage. Upload the recording again."
        await _fail(job, storage, FailReason.STORAGE.value, message)
    except StorageError as exc:
        await _fail(
            job, storage, FailReason.STORAGE.value, f"Storing the result failed: {_short(exc)}"
        )
    except Exception:
        log.exception("transcode crashed", extra={"video_id": video_id})
        message = "An unexpected error stopped transcoding; the server log has the details."
        await _fail(job, storage, FailReason.INTERNAL.value, message)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await asyncio.to_thread(shutil.rmtree, work, True)
    return await Video.get(id=video_id)


async def transcode_next(
    *,
    storage: Storage,
    workdir: Path,
    stale_after: timedelta,
    max_attempts: int,
    now: datetime | None = None,
    shutdown: threading.Event | None = None,
) -> Video | None:
    """Claim the next video that needs transcoding and transcode it; None when nothing waits."""
    claimed = await claim_next(now or utcnow(), stale_after=stale_after, max_attempts=max_attempts)
    if claimed is None:
        return None
    return await run_transcode(claimed.id, storage=storage, workdir=workdir, shutdown=shutdown)
