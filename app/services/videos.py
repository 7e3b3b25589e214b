"""Recordings through their states, `uploaded -> transcoding -> ready | failed`, claimed atomically.

The row is the queue. `transition` is the one place a video changes state: a conditional
UPDATE that names the state the caller believes the row is in (and, for a running job, the
attempt number that claimed it) and reports whether it changed anything, so two workers never
both win and a worker that lost its claim (it stalled and another took over) can never
overwrite the newer one's work.

Published outputs live in versions, folders directly under `videos/<id>/`: `v<attempt>-preview`
(the quick first rendition) and `v<attempt>` (the whole ladder, poster and thumbnails). A version
is uploaded completely, playlists last, before `hls_key` is pointed at its master playlist, and
the version it replaces is deleted only after that switch; so a published key only ever names
a complete version, whatever moment a worker dies at. Versions nobody points at are leftovers of
a killed worker and are deleted when the video is claimed again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from tortoise.transactions import in_transaction

from app.models import Video, VideoState
from media.commands import MASTER
from media.storage import LocalStorage, S3Storage, Storage
from media.thumbnails import VTT_NAME

UPLOADED, TRANSCODING, READY, FAILED = (
    VideoState.UPLOADED,
    VideoState.TRANSCODING,
    VideoState.READY,
    VideoState.FAILED,
)

TRANSITIONS: dict[VideoState, frozenset[VideoState]] = {
    # Cancelling a video that waits fails it at once.
    UPLOADED: frozenset({TRANSCODING, FAILED}),
    # TRANSCODING again: a stale claim taken over; UPLOADED: given back at shutdown.
    TRANSCODING: frozenset({TRANSCODING, READY, FAILED, UPLOADED}),
    FAILED: frozenset({UPLOADED}),
    READY: frozenset(),
}
"""Every move the state machine allows."""

STAGE_LABELS: dict[str, str] = {
    "queued": "Waiting to start",
    "preparing": "Preparing",
    "fetching": "Fetching the upload",
    "probing": "Checking the file",
    "remuxing": "Making it playable",
    "first_pass": "Making a quick version",
    "publishing_preview": "Publishing the quick version",
    "transcoding": "Encoding every size",
    "publishing": "Publishing",
}
"""What each stage is called in the admin."""

_VERSION = re.compile(r"^v(\d+)(-preview)?$")
_CLAIM_TRIES = 10


class FailReason(StrEnum):
    """Why transcoding stopped, besides the probe's own reasons (media.probe.Reason)."""

    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    TRANSCODE_FAILED = "transcode_failed"
    STORAGE = "storage"
    CRASHED = "crashed"
    INTERNAL = "internal"


class TransitionError(Exception):
    """A move the state machine does not allow, or a video not in a state that permits it."""


def utcnow() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


async def transition(
    video_id: int,
    *,
    source: VideoState,
    target: VideoState,
    only_if: dict[str, Any] | None = None,
    now: datetime | None = None,
    **changes: Any,
) -> bool:
    """Move a video from `source` to `target` (with `changes`) if it is still there; if it moved.

    `only_if` adds conditions (such as the claiming attempt) the row must also meet.
    """
    if target not in TRANSITIONS[source]:
        raise TransitionError(f"a video cannot go from {source.value} to {target.value}")
    async with in_transaction():
        changed = await Video.filter(id=video_id, state=source, **(only_if or {})).update(
            state=target, updated_at=now or utcnow(), **changes
        )
    return changed == 1


_RESET_PROGRESS: dict[str, Any] = {"stage": "", "progress": 0.0, "eta_seconds": None}
_UNPUBLISHED: dict[str, Any] = {
    "playable": False,
    "hls_key": None,
    "poster_key": None,
    "thumbnails_key": None,
    "renditions": [],
}


async def claim_next(now: datetime, *, stale_after: timedelta, max_attempts: int) -> Video | None:
    """Claim one video to transcode, or None: a stalled job first, else the oldest upload.

    A job whose heartbeat is older than `stale_after` lost its worker and is taken over (its
    attempt count goes up); after `max_attempts` such claims, or if it was cancelled, the
    video is marked failed instead.
    """
    threshold = now - stale_after
    for _ in range(_CLAIM_TRIES):
        stale = (
            await Video.filter(state=TRANSCODING, heartbeat_at__lt=threshold)
            .order_by("heartbeat_at", "id")
            .first()
        )
        if stale is not None:
            guard = {"attempts": stale.attempts, "heartbeat_at__lt": threshold}
            if stale.cancel_requested or stale.attempts >= max_attempts:
                await _fail_stale(stale, guard=guard, now=now)
                continue
            if await transition(
                stale.id,
                source=TRANSCODING,
                target=TRANSCODING,
                only_if=guard,
                now=now,
                **_claim_fields(stale.attempts, now),
            ):
                return await Video.get(id=stale.id)
            continue
        waiting = await Video.filter(state=UPLOADED).order_by("created_at", "id").first()
        if waiting is None:
            return None
        if await transition(
            waiting.id,
            source=UPLOADED,
            target=TRANSCODING,
            only_if={"attempts": waiting.attempts},
            now=now,
            **_claim_fields(waiting.attempts, now),
        ):
            return await Video.get(id=waiting.id)
    return None


def _claim_fields(attempts: int, now: datetime) -> dict[str, Any]:
    return {
        "attempts": attempts + 1,
        "claimed_at": now,
        "heartbeat_at": now,
        "stage": "queued",
        "progress": 0.0,
        "eta_seconds": None,
        "error": None,
        "error_reason": None,
    }


async def _fail_stale(video: Video, *, guard: dict[str, Any], now: datetime) -> None:
    if video.cancel_requested:
        reason, message = FailReason.CANCELLED, video.error or "Cancelled."
    else:
        reason = FailReason.CRASHED
        message = (
            f"Transcoding stopped unexpectedly {video.attempts} times (the worker process "
            "ended). Check the server's memory and disk space, then retry."
        )
    await transition(
        video.id,
        source=TRANSCODING,
        target=FAILED,
        only_if=guard,
        now=now,
        error_reason=reason.value,
        error=message,
        cancel_requested=False,
        **_RESET_PROGRESS,
        **_UNPUBLISHED,
    )


async def request_cancel(video_id: int, *, actor_name: str, now: datetime | None = None) -> bool:
    """Cancel a video's processing: at once if it waits (True), else at its next report (False)."""
    message = f"Cancelled by {actor_name}"
    if await transition(
        video_id,
        source=UPLOADED,
        target=FAILED,
        now=now,
        error_reason=FailReason.CANCELLED.value,
        error=message,
        **_RESET_PROGRESS,
    ):
        return True
    async with in_transaction():
        # The message waits in `error`, shown once the worker has stopped and failed the job.
        flagged = await Video.filter(id=video_id, state=TRANSCODING, cancel_requested=False).update(
            cancel_requested=True, error=message
        )
    if flagged:
        return False
    raise TransitionError("Only a recording that is waiting or being transcoded can be cancelled.")


async def retry(video_id: int, *, now: datetime | None = None) -> None:
    """Queue a failed video again, clearing its error and progress."""
    moved = await transition(
        video_id,
        source=FAILED,
        target=UPLOADED,
        now=now,
        error=None,
        error_reason=None,
        attempts=0,
        cancel_requested=False,
        claimed_at=None,
        heartbeat_at=None,
        **_RESET_PROGRESS,
    )
    if not moved:
        raise TransitionError("Only a recording whose processing failed can be retried.")


# --- published versions ----------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedVersion:
    """A complete set of published outputs: everything under `prefix`, played from `master_key`."""

    video_id: int
    prefix: str
    master_key: str

    @property
    def name(self) -> str:
        """The version folder's own name, such as `v2` or `v1-preview`."""
        return self.prefix.rsplit("/", 1)[-1]


def video_prefix(video_id: int) -> str:
    """The storage folder of every published version of a video."""
    return f"videos/{video_id}"


def version_for(video_id: int, attempt: int, *, preview: bool = False) -> PublishedVersion:
    """Where an attempt publishes its preview or its full ladder."""
    prefix = f"{video_prefix(video_id)}/v{attempt}{'-preview' if preview else ''}"
    return PublishedVersion(video_id=video_id, prefix=prefix, master_key=f"{prefix}/{MASTER}")


def published_version(video: Video) -> PublishedVersion | None:
    """The version players get now (its prefix and master playlist key), if any.

    To change what players see (for example add subtitle tracks), write new files under
    `prefix` and rewrite `master_key` in place; register a publish hook
    (`app.services.transcoding.add_publish_hook`) to do the same for versions published later.
    """
    key = video.hls_key
    if not key or not key.endswith(f"/{MASTER}"):
        return None
    prefix = key.removesuffix(f"/{MASTER}")
    return PublishedVersion(video_id=video.id, prefix=prefix, master_key=key)


def version_names(storage: Storage, video_id: int) -> set[str]:
    """The version folders stored for a video (whatever else lives beside them is left alone)."""
    base = video_prefix(video_id) + "/"
    names = {key.removeprefix(base).split("/", 1)[0] for key in storage.list_keys(base)}
    return {name for name in names if _VERSION.match(name)}


def discard_versions(
    storage: Storage, video_id: int, *, keep: str | None, attempt: int | None = None
) -> list[str]:
    """Delete stored versions except `keep` (a version name), only one attempt's if given."""
    removed: list[str] = []
    for name in sorted(version_names(storage, video_id)):
        match = _VERSION.match(name)
        if name == keep or match is None:
            continue
        if attempt is not None and int(match.group(1)) != attempt:
            continue
        storage.delete_prefix(f"{video_prefix(video_id)}/{name}")
        removed.append(name)
    return removed


def playback_url(storage: Storage, key: str, *, expires_in: int = 3600) -> str:
    """The URL a browser plays or shows a published file from.

    Local files and a public (CDN) S3 base URL are fetched directly. On a private bucket the
    playlists and the thumbnail map come through the app (`/media/...`), which presigns the
    files they name; other files get a presigned URL.
    """
    if isinstance(storage, LocalStorage):
        return storage.url(key)
    names_others = key.endswith(".m3u8") or key.rsplit("/", 1)[-1] == VTT_NAME
    if isinstance(storage, S3Storage) and not storage.public_base_url and names_others:
        return f"/media/{key}"
    return storage.url(key, expires_in=expires_in)


def status(video: Video) -> dict[str, Any]:
    """What the admin shows about a video's processing, as plain JSON values."""
    return {
        "id": video.id,
        "state": video.state.value,
        "stage": video.stage,
        "stage_label": STAGE_LABELS.get(video.stage, video.stage.replace("_", " ").capitalize()),
        "progress": round(video.progress, 1),
        "eta_seconds": None if video.eta_seconds is None else round(video.eta_seconds),
        "playable": video.playable,
        "cancel_requested": video.cancel_requested,
        "error": video.error if video.state == FAILED else None,
        "error_reason": video.error_reason if video.state == FAILED else None,
        "duration_seconds": video.duration_seconds,
        "attempts": video.attempts,
    }
