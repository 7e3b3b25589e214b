"""Local uploads over tus: PATCH bodies streamed into a partial file under VAR_DIR, then finished.

The recorded offset only moves after the bytes are fsync'd, so a crash never records more than is
on disk, and whatever lies past the recorded offset is cut off by the next PATCH. One request at a
time writes an upload (an exclusive, non-blocking flock on its partial file; a second one is told
to retry). Finishing probes the partial file in place, so a refused file never reaches storage.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import shutil
from collections.abc import AsyncIterable
from pathlib import Path

from app.models import StaffUser, Upload, Video
from app.services.uploads import (
    CONTAINER_TYPES,
    LOCAL,
    UPLOAD_TTL,
    Problem,
    UploadError,
    check_size,
    clean_content_type,
    clean_filename,
    create_video,
    finishing,
    get_upload,
    human_size,
    new_upload_id,
    partial_path,
    probe_file,
    source_key,
    storage_for,
    uploads_dir,
    utcnow,
)
from app.settings import get_settings
from media.probe import ProbeResult
from media.storage import LocalStorage, Storage

MiB = 1024 * 1024
WRITE_BUFFER = 256 * 1024  # bytes gathered before one write to disk (one thread hop)
CHECKPOINT_BYTES = 64 * MiB  # a long PATCH records its progress this often
_IOV_MAX = 512  # buffers per writev call (Linux allows 1024)


def received_bytes(upload: Upload) -> int:
    """Bytes of a local upload that are both recorded and on disk."""
    if upload.video_id is not None:
        return int(upload.size)
    try:
        on_disk = partial_path(upload.id).stat().st_size
    except FileNotFoundError:
        on_disk = 0
    return min(int(upload.offset), on_disk)


async def create_local(*, user: StaffUser, filename: str, content_type: str, size: int) -> Upload:
    """Start a tus upload: a row with a random id and an empty partial file."""
    settings = get_settings()
    if settings.media_backend != LOCAL:
        raise UploadError(
            Problem.UNAVAILABLE,
            "On this server recordings go straight to S3; reload the page to upload there.",
        )
    check_size(size, settings)
    folder = uploads_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    free = (await asyncio.to_thread(shutil.disk_usage, folder)).free
    if free < size:
        raise UploadError(
            Problem.NO_SPACE,
            f"The server has {human_size(free)} of free disk space, not enough for this "
            f"{human_size(size)} file. Ask your administrator to make room.",
        )
    upload_id = new_upload_id()
    upload = await Upload.create(
        id=upload_id,
        backend=LOCAL,
        filename=clean_filename(filename),
        content_type=clean_content_type(content_type),
        size=size,
        offset=0,
        storage_key=source_key(upload_id),
        created_by=user,
        expires_at=utcnow() + UPLOAD_TTL,
    )
    fd = os.open(partial_path(upload_id, settings), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    return upload


def _write_all(fd: int, chunks: list[bytes]) -> None:
    # writev: the chunks as they arrived, without joining them into one more copy.
    for start in range(0, len(chunks), _IOV_MAX):
        group = chunks[start : start + _IOV_MAX]
        written = os.writev(fd, group)
        if written < sum(len(chunk) for chunk in group):
            rest = memoryview(b"".join(group))[written:]
            while rest:
                rest = rest[os.write(fd, rest) :]


def _rewind(fd: int, offset: int) -> None:
    # Bytes past the recorded offset were never acknowledged (a crash or a dropped request).
    os.ftruncate(fd, offset)
    os.lseek(fd, offset, os.SEEK_SET)


async def append(
    *, upload: Upload, offset: int, chunks: AsyncIterable[bytes], length: int | None
) -> int:
    """Stream a PATCH body to disk at `offset`; the new offset, once fsync'd and recorded."""
    # If the body stops early (a dropped connection), what arrived is kept and recorded before
    # the error is raised again, so the client resumes from there.
    if upload.backend != LOCAL:
        raise UploadError(Problem.INVALID, "This upload goes straight to S3.")
    if upload.completed_at is not None or upload.video_id is not None:
        raise UploadError(Problem.CONFLICT, "This upload is complete.", offset=upload.size)
    if length is not None and offset + length > upload.size:
        raise UploadError(
            Problem.TOO_LARGE,
            f"This request carries more than the {human_size(upload.size)} announced.",
        )
    path = partial_path(upload.id)
    created = False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        # The partial file is gone (VAR_DIR cleared, or just moved by a finish): checked below.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        created = True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UploadError(
                Problem.LOCKED, "This upload is receiving data in another request."
            ) from None
        # Re-read under the lock: a request that just ended may have moved the offset.
        row = await Upload.get_or_none(id=upload.id)
        if row is None or row.completed_at is not None or row.video_id is not None:
            if created:
                path.unlink(missing_ok=True)
            if row is None:
                raise UploadError(Problem.NOT_FOUND, "This upload was cancelled.")
            raise UploadError(Problem.CONFLICT, "This upload is complete.", offset=upload.size)
        recorded = int(row.offset)
        on_disk = os.fstat(fd).st_size
        if on_disk < recorded:
            recorded = on_disk
            await Upload.filter(id=upload.id).update(offset=recorded)
        if offset != recorded:
            raise UploadError(
                Problem.CONFLICT,
                f"The upload is at byte {recorded}, not {offset}.",
                offset=recorded,
            )
        await asyncio.to_thread(_rewind, fd, offset)
        return await _receive(upload, fd, offset, chunks)
    except OSError as exc:
        if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
            raise UploadError(
                Problem.NO_SPACE,
                "The server ran out of disk space. What arrived is kept: ask your administrator "
                "to make room, then resume.",
            ) from exc
        raise
    finally:
        os.close(fd)


async def _receive(upload: Upload, fd: int, offset: int, chunks: AsyncIterable[bytes]) -> int:
    recorded = offset  # fsync'd and in the database
    position = offset  # written to the file
    pending: list[bytes] = []
    pending_size = 0

    async def flush() -> None:
        nonlocal position, pending_size
        if pending:
            chunks, size = pending[:], pending_size
            pending.clear()
            pending_size = 0
            await asyncio.to_thread(_write_all, fd, chunks)
            position += size

    async def checkpoint() -> None:
        nonlocal recorded
        await flush()
        if position == recorded:
            return
        await asyncio.to_thread(os.fsync, fd)
        changed = await Upload.filter(id=upload.id, offset=recorded).update(
            offset=position, expires_at=utcnow() + UPLOAD_TTL
        )
        if not changed:
            raise UploadError(Problem.NOT_FOUND, "This upload was cancelled.")
        recorded = position

    try:
        async for chunk in chunks:
            if not chunk:
                continue
            if position + pending_size + len(chunk) > upload.size:
                pending.clear()
                await asyncio.to_thread(os.ftruncate, fd, recorded)
                raise UploadError(
                    Problem.TOO_LARGE,
                    f"More bytes arrived than the {human_size(upload.size)} announced.",
                )
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= WRITE_BUFFER:
                await flush()
            if position - recorded >= CHECKPOINT_BYTES:
                await checkpoint()
    except UploadError:
        raise
    except Exception:
        # The body stopped early: keep what arrived, so the client resumes after it.
        await checkpoint()
        raise
    await checkpoint()
    if recorded == offset:
        await Upload.filter(id=upload.id).update(expires_at=utcnow() + UPLOAD_TTL)
    return recorded


async def finish(*, upload_id: str, user: StaffUser) -> Video:
    """Probe a complete local upload; accepted, it moves to storage and becomes a Video."""
    settings = get_settings()
    upload = await get_upload(upload_id=upload_id, user=user, backend=LOCAL)
    if upload.video_id is not None:
        return await Video.get(id=upload.video_id)
    storage = storage_for(settings)
    partial = partial_path(upload.id, settings)
    # A crash between the move and the Video row leaves the file in storage: take it from there.
    stored = (
        isinstance(storage, LocalStorage)
        and not partial.exists()
        and storage.exists(upload.storage_key)
    )
    if not stored:
        have = received_bytes(upload)
        if have < upload.size:
            if have < upload.offset:
                await Upload.filter(id=upload.id).update(offset=have)
            raise UploadError(
                Problem.INCOMPLETE,
                f"Only {human_size(have)} of {human_size(upload.size)} have arrived so far.",
                offset=have,
            )
    async with finishing(upload, storage):
        if isinstance(storage, LocalStorage) and stored:
            result = await probe_file(storage.path(upload.storage_key), settings)
        else:
            result = await probe_file(partial, settings)
            await asyncio.to_thread(_store, storage, upload.storage_key, partial, result)
        return await create_video(upload, result, user)


def _store(storage: Storage, key: str, source: Path, result: ProbeResult) -> None:
    if isinstance(storage, LocalStorage):
        storage.move_file(key, source)
    else:
        content_type = CONTAINER_TYPES.get(result.container, "application/octet-stream")
        storage.put_file(key, source, content_type=content_type)
        source.unlink()
