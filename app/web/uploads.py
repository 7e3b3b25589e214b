"""Upload endpoints: a tus 1.0.0 server for local disk, and JSON endpoints for S3 multipart.

tus (https://tus.io/protocols/resumable-upload): core protocol plus the creation, termination and
expiration extensions. The body of a PATCH is streamed to disk as it arrives; nothing holds the
file in memory. Once every byte is there the browser asks `/admin/uploads/<id>/finish`, which probes
the file and answers with the new video or, as JSON 422, the reason it was refused.

With MEDIA_BACKEND=s3 the browser sends the bytes straight to S3 through presigned part URLs;
these endpoints only start, sign, list, complete and abort.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from app.models import Upload, Video
from app.services import s3_uploads, tus_uploads, uploads
from app.services.permissions import Permission
from app.services.uploads import Problem, UploadError
from app.settings import get_settings
from app.web.access import staff_route, staff_user
from app.web.forms import bounded_body

log = logging.getLogger("encore.uploads")

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
TUS_ENDPOINT = "/admin/uploads/tus"
VIDEO_URL = "/admin/media/{video_id}"
MAX_JSON_BYTES = 1024 * 1024  # a completion names up to 10,000 parts

STATUS = {
    Problem.NOT_FOUND: 404,
    Problem.INVALID: 400,
    Problem.UNAVAILABLE: 409,
    Problem.TOO_LARGE: 413,
    Problem.CONFLICT: 409,
    Problem.LOCKED: 423,
    Problem.INCOMPLETE: 409,
    Problem.REFUSED: 422,
    Problem.NO_SPACE: 507,
}


def _http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def _error(exc: UploadError, *, tus: bool = False) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.reason, "message": exc.message}
    headers = {"Cache-Control": "no-store"}
    if exc.offset is not None:
        body["offset"] = exc.offset
        if tus:
            headers["Upload-Offset"] = str(exc.offset)
    if tus:
        headers["Tus-Resumable"] = TUS_VERSION
    return JSONResponse(body, status_code=STATUS[exc.problem], headers=headers)


def _invalid(message: str) -> UploadError:
    return UploadError(Problem.INVALID, message)


def _int_header(request: Request, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 18:
        raise _invalid(f"The {name} header must be a whole number of bytes.")
    return int(raw)


def _required_int_header(request: Request, name: str) -> int:
    value = _int_header(request, name)
    if value is None:
        raise _invalid(f"The {name} header is missing.")
    return value


def parse_metadata(header: str) -> dict[str, str]:
    """The tus Upload-Metadata header: comma-separated `key base64value` pairs."""
    values: dict[str, str] = {}
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, encoded = item.partition(" ")
        try:
            values[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _invalid("The Upload-Metadata header is malformed.") from None
    return values


def _tus_headers(upload: Upload | None = None) -> dict[str, str]:
    headers = {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store"}
    if upload is not None:
        headers["Upload-Expires"] = _http_date(upload.expires_at)
    return headers


def _check_tus_version(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise UploadError(Problem.INVALID, f"Only tus {TUS_VERSION} is supported.", reason="tus")


def _video_json(video: Video) -> dict[str, Any]:
    return {
        "video_id": video.id,
        "title": video.title,
        "state": video.state.value,
        "duration_seconds": video.duration_seconds,
        "url": VIDEO_URL.format(video_id=video.id),
    }


# --- tus --------------------------------------------------------------------------------------


@staff_route(Permission.MANAGE_MEDIA, api=True)
async def tus_collection(request: Request) -> Response:
    """OPTIONS: what this tus server supports. POST: create an upload (creation extension)."""
    if request.method == "OPTIONS":
        return Response(
            status_code=204,
            headers={
                **_tus_headers(),
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(get_settings().max_upload_bytes),
            },
        )
    try:
        _check_tus_version(request)
        if "upload-defer-length" in request.headers:
            raise _invalid("The length of the file must be known when the upload starts.")
        length = _required_int_header(request, "Upload-Length")
        metadata = parse_metadata(request.headers.get("upload-metadata", ""))
        upload = await tus_uploads.create_local(
            user=staff_user(request),
            filename=metadata.get("filename") or metadata.get("name") or "",
            content_type=metadata.get("filetype") or metadata.get("type") or "",
            size=length,
        )
    except UploadError as exc:
        if exc.reason == "tus":
            return _tus_version_mismatch(exc)
        return _error(exc, tus=True)
    return Response(
        status_code=201,
        headers={**_tus_headers(upload), "Location": f"{TUS_ENDPOINT}/{upload.id}"},
    )


def _tus_version_mismatch(exc: UploadError) -> JSONResponse:
    response = _error(exc, tus=True)
    response.status_code = 412
    response.headers["Tus-Version"] = TUS_VERSION
    return response


@staff_route(Permission.MANAGE_MEDIA, api=True)
async def tus_upload(request: Request) -> Response:
    """HEAD: the offset. PATCH: append bytes at the offset. DELETE: cancel (termination)."""
    upload_id = request.path_params["upload_id"]
    user = staff_user(request)
    try:
        _check_tus_version(request)
        if request.method == "HEAD":
            upload = await uploads.get_upload(upload_id=upload_id, user=user, backend=uploads.LOCAL)
            return Response(
                status_code=200,
                headers={
                    **_tus_headers(upload),
                    "Upload-Offset": str(tus_uploads.received_bytes(upload)),
                    "Upload-Length": str(upload.size),
                },
            )
        if request.method == "DELETE":
            await uploads.cancel(upload_id=upload_id, user=user, backend=uploads.LOCAL)
            return Response(status_code=204, headers=_tus_headers())
        return await _patch(request, upload_id)
    except UploadError as exc:
        if exc.reason == "tus":
            return _tus_version_mismatch(exc)
        return _error(exc, tus=True)


async def _patch(request: Request, upload_id: str) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != OFFSET_CONTENT_TYPE:
        return JSONResponse(
            {"error": "content_type", "message": f"PATCH bodies must be {OFFSET_CONTENT_TYPE}."},
            status_code=415,
            headers=_tus_headers(),
        )
    offset = _required_int_header(request, "Upload-Offset")
    length = _int_header(request, "Content-Length")
    upload = await uploads.get_upload(
        upload_id=upload_id, user=staff_user(request), backend=uploads.LOCAL
    )
    try:
        new_offset = await tus_uploads.append(
            upload=upload, offset=offset, chunks=request.stream(), length=length
        )
    except ClientDisconnect:
        # What arrived is recorded; the client asks for the offset when it comes back.
        log.info("upload interrupted", extra={"upload": upload.id})
        return Response(status_code=400, headers=_tus_headers())
    await upload.refresh_from_db(fields=["expires_at"])
    return Response(
        status_code=204, headers={**_tus_headers(upload), "Upload-Offset": str(new_offset)}
    )


@staff_route(Permission.MANAGE_MEDIA, api=True)
async def finish_upload(request: Request) -> Response:
    """Probe a complete local upload: the new video, or JSON 422 with the reason it was refused."""
    try:
        video = await tus_uploads.finish(
            upload_id=request.path_params["upload_id"], user=staff_user(request)
        )
    except UploadError as exc:
        return _error(exc)
    return JSONResponse(_video_json(video), headers={"Cache-Control": "no-store"})


# --- S3 multipart -----------------------------------------------------------------------------


async def _json_body(request: Request) -> dict[str, Any]:
    body = await bounded_body(request, MAX_JSON_BYTES)
    if body is None:
        raise UploadError(Problem.TOO_LARGE, "The request is too large.")
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise _invalid("The request body is not JSON.") from None
    if not isinstance(value, dict):
        raise _invalid("The request body must be a JSON object.")
    return value


async def _parts(request: Request, expected: str) -> list[Any]:
    """The `parts` list of a JSON request body; INVALID, naming what is `expected`, otherwise."""
    raw = (await _json_body(request)).get("parts")
    if not isinstance(raw, list):
        raise _invalid(f"parts must be a list of {expected}.")
    return raw


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid(f"{name} must be a whole number.")
    return value


@staff_route(Permission.MANAGE_MEDIA, api=True)
async def s3_start(request: Request) -> Response:
    """Start a browser-direct multipart upload: its id, key and part size."""
    try:
        body = await _json_body(request)
        upload, part_size = await s3_uploads.create_s3(
            user=staff_user(request),
            filename=str(body.get("filename") or ""),
            content_type=str(body.get("type") or ""),
            size=_whole(body.get("size"), "size"),
        )
    except UploadError as exc:
        return _error(exc)
    return JSONResponse(
        {
            "upload_id": upload.id,
            "key": upload.storage_key,
            "size": upload.size,
            "part_size": part_size,
            "part_count": s3_uploads.part_count(upload),
        },
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@staff_route(Permission.MANAGE_MEDIA, api=True)
async def s3_upload(request: Request) -> Response:
    """GET: the parts S3 already has (to resume). DELETE: abort the upload."""
    upload_id = request.path_params["upload_id"]
    user = staff_user(request)
    try:
        if request.method == "DELETE":
            await s3_uploads.abort_s3(upload_id=upload_id, user=user)
            return Response(status_code=204)
        upload, parts = await s3_uploads.uploaded_parts(upload_id=upload_id, user=user)
    except UploadError as exc:
        return _error(exc)
    return JSONResponse(
        {
            "upload_id": upload.id,
            "key": upload.storage_key,
            "filename": upload.filename,
            "size": upload.size,
            "part_size": int(upload.meta.get("part_size") or s3_uploads.S3_PART_SIZE),
            "part_count": s3_uploads.part_count(upload),
            "complete": upload.video_id is not None,
            "parts": [{"number": p.number, "etag": p.etag, "size": p.size} for p in parts],
        },
        headers={"Cache-Control": "no-store"},
    )


@staff_route(Permission.MANAGE_MEDIA, api=True)
async def s3_sign(request: Request) -> Response:
    """Presigned PUT URLs for a batch of part numbers."""
    try:
        numbers = [_whole(n, "a part number") for n in await _parts(request, "part numbers")]
        urls = await s3_uploads.sign_parts(
            upload_id=request.path_params["upload_id"], user=staff_user(request), numbers=numbers
        )
    except UploadError as exc:
        return _error(exc)
    return JSONResponse(
        {
            "urls": {str(n): url for n, url in urls.items()},
            "expires_in": s3_uploads.PART_URL_SECONDS,
        },
        headers={"Cache-Control": "no-store"},
    )


@staff_route(Permission.MANAGE_MEDIA, api=True)
async def s3_complete(request: Request) -> Response:
    """Assemble the parts (numbers and ETags), probe the file: the new video, or JSON 422."""
    try:
        parts: list[tuple[int, str]] = []
        for item in await _parts(request, "{number, etag}"):
            if not isinstance(item, dict) or not isinstance(item.get("etag"), str):
                raise _invalid("parts must be a list of {number, etag}.")
            parts.append((_whole(item.get("number"), "a part number"), item["etag"][:200]))
        video = await s3_uploads.complete_s3(
            upload_id=request.path_params["upload_id"], user=staff_user(request), parts=parts
        )
    except UploadError as exc:
        return _error(exc)
    return JSONResponse(_video_json(video), headers={"Cache-Control": "no-store"})
