"""Browser-direct S3 uploads: the app signs multipart part URLs; the bytes never pass through it.

The browser starts an upload, asks for presigned part URLs in batches, PUTs the parts straight to
S3, and completes. After a reload it asks which parts S3 already has and sends only the rest.
Completing assembles the object, then a temporary local copy is probed; a refused file is deleted
from the bucket and no Video is created.
"""

from __future__ import annotations

import asyncio
import math

from app.models import StaffUser, Upload, Video
from app.services.uploads import (
    S3,
    UPLOAD_TTL,
    Problem,
    UploadError,
    cancel,
    check_size,
    clean_content_type,
    clean_filename,
    create_video,
    finishing,
    get_upload,
    human_size,
    new_upload_id,
    probe_file,
    source_key,
    storage_for,
    uploads_dir,
    utcnow,
)
from app.settings import Settings, get_settings
from media.probe import ProbeResult
from media.storage import MultipartError, S3Storage, UploadedPart

MiB = 1024 * 1024
S3_PART_SIZE = 16 * MiB
S3_MAX_PARTS = 10_000  # S3's own limit
SIGN_BATCH = 100  # part URLs signed per request
PART_URL_SECONDS = 3600


def part_size_for(size: int) -> int:
    """The part size for a file: 16 MiB, larger only when 10,000 parts would not hold it."""
    needed = math.ceil(size / S3_MAX_PARTS)
    return max(S3_PART_SIZE, math.ceil(needed / MiB) * MiB)


def part_count(upload: Upload) -> int:
    """How many parts an S3 upload is sent in."""
    part_size = int(upload.meta.get("part_size") or S3_PART_SIZE)
    return max(1, math.ceil(int(upload.size) / part_size))


def s3_storage(settings: Settings) -> S3Storage:
    """The S3 backend; UNAVAILABLE when media are kept on local disk."""
    storage = storage_for(settings)
    if not isinstance(storage, S3Storage):
        raise UploadError(
            Problem.UNAVAILABLE,
            "This server keeps media on its own disk; reload the page to upload there.",
        )
    return storage


async def create_s3(
    *, user: StaffUser, filename: str, content_type: str, size: int
) -> tuple[Upload, int]:
    """Start a multipart upload the browser sends straight to S3; the row and the part size."""
    settings = get_settings()
    storage = s3_storage(settings)
    check_size(size, settings)
    upload_id = new_upload_id()
    key = source_key(upload_id)
    declared = clean_content_type(content_type)
    part_size = part_size_for(size)
    s3_upload_id = await asyncio.to_thread(
        storage.create_multipart, key, content_type=declared or "application/octet-stream"
    )
    try:
        upload = await Upload.create(
            id=upload_id,
            backend=S3,
            filename=clean_filename(filename),
            content_type=declared,
            size=size,
            storage_key=key,
            s3_upload_id=s3_upload_id,
            meta={"part_size": part_size},
            created_by=user,
            expires_at=utcnow() + UPLOAD_TTL,
        )
    except BaseException:
        await asyncio.to_thread(storage.abort_multipart, key, s3_upload_id)
        raise
    return upload, part_size


async def _s3_upload(upload_id: str, user: StaffUser) -> tuple[Upload, S3Storage, str]:
    upload = await get_upload(upload_id=upload_id, user=user, backend=S3)
    storage = s3_storage(get_settings())
    if not upload.s3_upload_id:
        raise UploadError(Problem.INVALID, "This upload is not an S3 upload.")
    return upload, storage, upload.s3_upload_id


async def sign_parts(*, upload_id: str, user: StaffUser, numbers: list[int]) -> dict[int, str]:
    """Presigned PUT URLs for a batch of parts."""
    upload, storage, s3_upload_id = await _s3_upload(upload_id, user)
    if upload.completed_at is not None:
        raise UploadError(Problem.CONFLICT, "This upload is complete.")
    count = part_count(upload)
    if not numbers or len(numbers) > SIGN_BATCH or any(not 1 <= n <= count for n in numbers):
        raise UploadError(
            Problem.INVALID, f"Ask for 1 to {SIGN_BATCH} part numbers between 1 and {count}."
        )
    await Upload.filter(id=upload.id).update(expires_at=utcnow() + UPLOAD_TTL)

    def sign() -> dict[int, str]:
        return {
            n: storage.presign_part(
                upload.storage_key, s3_upload_id, n, expires_in=PART_URL_SECONDS
            )
            for n in sorted(set(numbers))
        }

    return await asyncio.to_thread(sign)


async def uploaded_parts(*, upload_id: str, user: StaffUser) -> tuple[Upload, list[UploadedPart]]:
    """An S3 upload and the parts S3 already has (to resume after a reload)."""
    upload, storage, s3_upload_id = await _s3_upload(upload_id, user)
    if upload.video_id is not None or upload.completed_at is not None:
        return upload, []
    try:
        parts = await asyncio.to_thread(storage.list_parts, upload.storage_key, s3_upload_id)
    except MultipartError as exc:
        raise UploadError(
            Problem.NOT_FOUND, "S3 no longer has this upload. Please start it again."
        ) from exc
    return upload, parts


async def complete_s3(*, upload_id: str, user: StaffUser, parts: list[tuple[int, str]]) -> Video:
    """Assemble the parts, then download and probe the file; accepted, it becomes a Video."""
    settings = get_settings()
    upload, storage, s3_upload_id = await _s3_upload(upload_id, user)
    if upload.video_id is not None:
        return await Video.get(id=upload.video_id)
    key = upload.storage_key
    # Already assembled when a previous attempt died before the Video row was written.
    assembled = await asyncio.to_thread(storage.object_size, key)
    expected = list(range(1, part_count(upload) + 1))
    if assembled is None and [number for number, _ in parts] != expected:
        raise UploadError(
            Problem.INCOMPLETE, f"All {len(expected)} parts are needed, in order, to finish."
        )
    async with finishing(upload, storage):
        if assembled is None:
            try:
                await asyncio.to_thread(storage.complete_multipart, key, s3_upload_id, parts)
            except MultipartError as exc:
                raise UploadError(
                    Problem.INCOMPLETE,
                    "S3 does not have every part of this file yet; the upload continues.",
                ) from exc
            assembled = await asyncio.to_thread(storage.object_size, key)
        if assembled != upload.size:
            raise UploadError(
                Problem.REFUSED,
                f"S3 received {human_size(assembled or 0)}, not the {human_size(upload.size)} "
                "announced. Please upload the file again.",
                reason="corrupt",
            )
        result = await _probe_remote(storage, key, upload.id, settings)
        return await create_video(upload, result, user)


async def _probe_remote(
    storage: S3Storage, key: str, upload_id: str, settings: Settings
) -> ProbeResult:
    # The probe reads a local file: fetch a temporary copy beside the partial uploads.
    folder = uploads_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{upload_id}.probe"
    try:
        await asyncio.to_thread(storage.download_to, key, copy)
        return await probe_file(copy, settings)
    finally:
        copy.unlink(missing_ok=True)


async def abort_s3(*, upload_id: str, user: StaffUser) -> None:
    """Abort an S3 upload: S3 drops the parts, the row goes."""
    await cancel(upload_id=upload_id, user=user, backend=S3)
