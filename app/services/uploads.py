"""Resumable uploads, what both ways share: the row, its owner, finishing, refusing, expiring.

An upload is a row with a random id, owned by the staff member who started it: tus to a partial
file under VAR_DIR (`app/services/tus_uploads.py`), or browser-direct S3 multipart
(`app/services/s3_uploads.py`). Finishing probes the file before anything is accepted: a refused
file leaves no Video and no bytes behind; an accepted one is kept in storage under
`uploads/<id>/source` and becomes a Video in state `uploaded`. `completed_at` marks a claimed
finish (a conditional UPDATE, so only one request finishes); uploads nobody touches for a day
expire with their bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app.models import StaffUser, Upload, Video, VideoState
from app.services.storage import build_storage
from app.settings import Settings, get_settings
from media.probe import ProbeError, ProbeResult, probe
from media.storage import LocalStorage, S3Storage, Storage

log = logging.getLogger("encore.uploads")

LOCAL = "local"
S3 = "s3"
UPLOAD_TTL = timedelta(hours=24)  # an upload nobody touches for this long is dropped
FINISH_STALE = timedelta(minutes=30)  # a finish claimed this long ago died with its process
_ID = re.compile(r"[0-9a-f]{32}")
_MIME = re.compile(r"[\w.+-]{1,60}/[\w.+-]{1,60}")

CONTAINER_TYPES = {
    "mp4": "video/mp4",
    "m4v": "video/x-m4v",
    "m4a": "audio/mp4",
    "3gp": "video/3gpp",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "avi": "video/x-msvideo",
    "flv": "video/x-flv",
    "ogg": "video/ogg",
    "mpegts": "video/mp2t",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "flac": "audio/flac",
}
"""The content type of an accepted file, from the container its bytes name (never its name)."""


class Problem(StrEnum):
    """What went wrong, for the transport to choose a status."""

    NOT_FOUND = "not_found"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"
    TOO_LARGE = "too_large"
    CONFLICT = "conflict"
    LOCKED = "locked"
    INCOMPLETE = "incomplete"
    REFUSED = "refused"
    NO_SPACE = "no_space"


class UploadError(Exception):
    """An upload operation was refused; `message` is for the person uploading."""

    def __init__(
        self, problem: Problem, message: str, *, reason: str = "", offset: int | None = None
    ) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.reason = reason or problem.value
        self.offset = offset


def utcnow() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


def human_size(count: float) -> str:
    """A byte count for people (decimal units, as the upload progress shows them)."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def is_upload_id(value: str) -> bool:
    """Whether a string has the shape of an upload id (checked before any lookup)."""
    return bool(_ID.fullmatch(value))


def new_upload_id() -> str:
    """A random, unguessable upload id (32 hex digits: safe in URLs, file names and keys)."""
    return secrets.token_hex(16)


def uploads_dir(settings: Settings | None = None) -> Path:
    """Where partial local uploads live: under VAR_DIR, never inside the served media folder."""
    return (settings or get_settings()).var_dir / "uploads"


def partial_path(upload_id: str, settings: Settings | None = None) -> Path:
    """The partial file of a local upload."""
    return uploads_dir(settings) / f"{upload_id}.part"


def source_key(upload_id: str) -> str:
    """The storage key an accepted upload is kept under."""
    return f"uploads/{upload_id}/source"


def clean_filename(name: str) -> str:
    """The last path part of a client-supplied name, printable and bounded."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:255] or "recording"


def clean_content_type(value: str) -> str:
    """A client-declared MIME type if it looks like one, else empty."""
    value = value.strip().lower()
    return value if _MIME.fullmatch(value) else ""


@lru_cache(maxsize=4)
def storage_for(settings: Settings) -> Storage:
    """The storage backend of a configuration, built once (boto3 clients are slow to build)."""
    return build_storage(settings)


def check_size(size: int, settings: Settings) -> None:
    """Refuse an empty file or one over MAX_UPLOAD_BYTES before any byte is sent."""
    if size <= 0:
        raise UploadError(Problem.REFUSED, "The file is empty.", reason="empty")
    if size > settings.max_upload_bytes:
        raise UploadError(
            Problem.TOO_LARGE,
            f"The file is {human_size(size)}; "
            f"the limit is {human_size(settings.max_upload_bytes)}.",
            reason="too_large",
        )


# --- reading and cancelling --------------------------------------------------------------------


async def get_upload(*, upload_id: str, user: StaffUser, backend: str | None = None) -> Upload:
    """An upload of this staff member (on `backend`) that has not expired; NOT_FOUND otherwise."""
    upload = None
    if is_upload_id(upload_id):
        upload = await Upload.get_or_none(id=upload_id, created_by_id=user.id)
    if (
        upload is None
        or (backend is not None and upload.backend != backend)
        or (upload.video_id is None and upload.expires_at < utcnow())
    ):
        raise UploadError(
            Problem.NOT_FOUND, "This upload is not there any more. Please start it again."
        )
    return upload


async def cancel(*, upload_id: str, user: StaffUser, backend: str | None = None) -> None:
    """Drop an unfinished upload and every byte of it."""
    upload = await get_upload(upload_id=upload_id, user=user, backend=backend)
    if upload.video_id is not None:
        raise UploadError(
            Problem.CONFLICT, "This upload is finished; delete the recording itself instead."
        )
    if upload.completed_at is not None:
        raise UploadError(Problem.CONFLICT, "This upload is being checked; wait a moment.")
    await discard(upload, storage_for(get_settings()))


async def discard(upload: Upload, storage: Storage) -> None:
    """Remove an upload's bytes, then its row (a crash in between leaves a row to expire)."""
    settings = get_settings()
    (uploads_dir(settings) / f"{upload.id}.probe").unlink(missing_ok=True)
    if upload.backend == LOCAL:
        partial_path(upload.id, settings).unlink(missing_ok=True)
    elif upload.s3_upload_id and isinstance(storage, S3Storage):
        await asyncio.to_thread(storage.abort_multipart, upload.storage_key, upload.s3_upload_id)
    if upload.video_id is None:
        await asyncio.to_thread(storage.delete, upload.storage_key)
        if isinstance(storage, LocalStorage):
            with contextlib.suppress(OSError):  # gone already, or not empty
                storage.path(upload.storage_key).parent.rmdir()
    await Upload.filter(id=upload.id).delete()


async def claim_finish(upload: Upload) -> None:
    """Claim the finish of an upload for this request (one claimant; a stale claim is retaken)."""
    now = utcnow()
    claimed = (
        await Upload.filter(id=upload.id, video_id__isnull=True)
        .filter(Q(completed_at__isnull=True) | Q(completed_at__lt=now - FINISH_STALE))
        .update(completed_at=now, expires_at=now + UPLOAD_TTL)
    )
    if not claimed:
        raise UploadError(Problem.CONFLICT, "This upload is already being checked; wait a moment.")


async def release_finish(upload: Upload) -> None:
    """Give a claimed finish back after a failure that is not the file's fault."""
    await Upload.filter(id=upload.id, video_id__isnull=True).update(completed_at=None)


@asynccontextmanager
async def finishing(upload: Upload, storage: Storage) -> AsyncIterator[None]:
    """Hold the finish claim of an upload while its file is checked and becomes a Video.

    A refused file is discarded with its row; any other failure gives the claim back, so that
    the finish can be tried again.
    """
    await claim_finish(upload)
    try:
        yield
    except UploadError as exc:
        if exc.problem == Problem.REFUSED:
            await discard(upload, storage)
        else:
            await release_finish(upload)
        raise
    except BaseException:
        await release_finish(upload)
        raise


async def probe_file(path: Path, settings: Settings) -> ProbeResult:
    """Probe a local file in a thread; a refusal becomes UploadError(REFUSED) with its message."""
    started = time.monotonic()
    try:
        return await asyncio.to_thread(
            probe,
            path,
            max_duration=settings.max_video_seconds,
            max_size=settings.max_upload_bytes,
        )
    except ProbeError as exc:
        log.info(
            "upload refused",
            extra={"reason": exc.reason.value, "detail": exc.detail[:500], "file": path.name},
        )
        raise UploadError(Problem.REFUSED, exc.message, reason=exc.reason.value) from exc
    finally:
        log.debug("probed %s in %.2f s", path.name, time.monotonic() - started)


def probe_facts(result: ProbeResult) -> dict[str, Any]:
    """What the probe found, as JSON for the Video row (without the local path)."""
    facts = dataclasses.asdict(result)
    facts.pop("path", None)
    return facts


async def create_video(upload: Upload, result: ProbeResult, user: StaffUser) -> Video:
    """The Video of an accepted upload (state uploaded), linked to the upload in one transaction."""
    title = PurePosixPath(upload.filename).stem.strip() or "Recording"
    video = result.video
    async with in_transaction():
        created = await Video.create(
            title=title[:200],
            original_filename=upload.filename,
            source_key=upload.storage_key,
            size_bytes=result.size,
            content_type=CONTAINER_TYPES.get(result.container, "application/octet-stream"),
            state=VideoState.UPLOADED,
            probe=probe_facts(result),
            duration_seconds=result.duration,
            width=video.display_width if video else None,
            height=video.display_height if video else None,
            audio_only=result.audio_only,
            created_by=user,
        )
        await Upload.filter(id=upload.id).update(
            video_id=created.id, offset=upload.size, completed_at=utcnow()
        )
    log.info("upload accepted", extra={"upload": upload.id, "video": created.id})
    return created


# --- housekeeping -------------------------------------------------------------------------------


async def expire_uploads(*, now: datetime | None = None) -> int:
    """Drop uploads nobody touched for UPLOAD_TTL, and stray partial files; how many uploads."""
    now = now or utcnow()
    settings = get_settings()
    storage = storage_for(settings)
    removed = 0
    for upload in await Upload.filter(expires_at__lt=now, video_id__isnull=True):
        try:
            await discard(upload, storage)
        except Exception:
            log.exception("could not drop expired upload %s", upload.id)
            continue
        removed += 1
    await _sweep_strays(settings, now)
    return removed


async def _sweep_strays(settings: Settings, now: datetime) -> None:
    """Partial or probe copies whose row is gone (a crash between the two deletions)."""
    folder = uploads_dir(settings)
    if not folder.is_dir():
        return
    files = [p for p in folder.iterdir() if p.suffix in {".part", ".probe"} and p.is_file()]
    ids = [p.stem for p in files if is_upload_id(p.stem)]
    rows = await Upload.filter(id__in=ids).values_list("id", flat=True) if ids else []
    known = {str(row) for row in rows}
    cutoff = (now - FINISH_STALE).timestamp()
    for path in files:
        if path.stem not in known and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
