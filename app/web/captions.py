"""Caption tracks of a recording in the admin: list, upload (WebVTT or SRT) and remove.

The list and the upload form are the partial admin/_captions.html, included on the
recording's page; the forms post here and come back to where they were sent from. A refused
upload is shown on the caption page with the reason and what the person typed.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.models import Caption, Video
from app.services import captions as caption_service
from app.services.permissions import Permission
from app.web.access import staff_route
from app.web.media_files import current_storage
from app.web.templating import render, render_error
from media.captions import size_message
from media.storage import StorageError

log = logging.getLogger("encore.web")

MAX_FILE_BYTES = caption_service.MAX_CAPTION_BYTES
_FIELD_LIMIT = 200


def _text(value: object) -> str:
    return value.strip()[:_FIELD_LIMIT] if isinstance(value, str) else ""


def _back(video: Video, target: str) -> str:
    """Where a caption form returns to: the recording's page (default) or the caption page."""
    own = f"/admin/media/{video.id}/captions"
    return own if target == own else f"/admin/media/{video.id}"


async def _video(request: Request) -> Video | None:
    return await Video.get_or_none(id=request.path_params["video_id"])


def _missing(request: Request) -> Response:
    return render_error(request, status=404, title="Not found", message="No such recording.")


async def _page(
    request: Request,
    video: Video,
    *,
    error: str = "",
    notice: str = "",
    language: str = "",
    label: str = "",
    status: int = 200,
) -> Response:
    return render(
        request,
        "admin/captions.html",
        {
            "video": video,
            "captions": await caption_service.list_captions(video=video),
            "caption_error": error,
            "caption_notice": notice,
            "caption_language": language,
            "caption_label": label,
            "caption_next": f"/admin/media/{video.id}/captions",
            "active": "/admin/media",
        },
        status=status,
    )


@staff_route(Permission.MANAGE_MEDIA)
async def captions_page(request: Request) -> Response:
    """A recording's caption tracks and the upload form; POST uploads one."""
    video = await _video(request)
    if video is None:
        return _missing(request)
    if request.method == "POST":
        return await _upload(request, video)
    notice = ""
    saved = request.query_params.get("saved", "")
    shown = next(
        (c for c in await caption_service.list_captions(video=video) if c.language == saved), None
    )
    if shown is not None:
        notice = f"Captions saved: {shown.label} ({shown.language})."
    return await _page(request, video, notice=notice)


async def _upload(request: Request, video: Video) -> Response:
    form = await request.form(max_files=1, max_fields=10)
    try:
        fields = {name: _text(form.get(name)) for name in ("language", "label", "next")}
        upload = form.get("file")
        data = b""
        size = 0
        if isinstance(upload, UploadFile) and (upload.filename or upload.size):
            data = await upload.read(MAX_FILE_BYTES + 1)
            size = upload.size if upload.size is not None else len(data)
    finally:
        await form.close()

    if not isinstance(upload, UploadFile) or not (upload.filename or size):
        return await _refuse(request, video, fields, "Choose a WebVTT (.vtt) or SRT (.srt) file.")
    if size > MAX_FILE_BYTES:
        return await _refuse(
            request,
            video,
            fields,
            size_message(size, MAX_FILE_BYTES),
            status=413,
        )
    try:
        saved = await caption_service.add_caption(
            video=video,
            language=fields["language"],
            label=fields["label"],
            data=data,
            storage=current_storage(),
        )
    except caption_service.CaptionInputError as exc:
        return await _refuse(request, video, fields, _with_field(exc))
    except StorageError:
        log.exception("storing captions failed", extra={"video_id": video.id})
        return await _refuse(
            request,
            video,
            fields,
            "The captions could not be stored. Try again; if it keeps failing, "
            "the server log has the details.",
            status=503,
        )
    target = _back(video, fields["next"])
    if target == f"/admin/media/{video.id}/captions":
        target += f"?saved={quote(saved.caption.language)}"
    return RedirectResponse(target, status_code=303)


def _with_field(exc: caption_service.CaptionInputError) -> str:
    prefix = {"file": "Caption file", "language": "Language", "label": "Label"}[exc.field]
    return f"{prefix}: {exc}"


async def _refuse(
    request: Request,
    video: Video,
    fields: dict[str, str],
    message: str,
    *,
    status: int = 400,
) -> Response:
    return await _page(
        request,
        video,
        error=message,
        language=fields["language"],
        label=fields["label"],
        status=status,
    )


@staff_route(Permission.MANAGE_MEDIA)
async def caption_delete(request: Request) -> Response:
    """Remove one caption track."""
    video = await _video(request)
    if video is None:
        return _missing(request)
    caption = await Caption.get_or_none(id=request.path_params["caption_id"], video_id=video.id)
    form = await request.form(max_files=0, max_fields=10)
    target = form.get("next")
    await form.close()
    if caption is None:
        return await _page(request, video, error="Those captions were already removed.", status=404)
    try:
        await caption_service.remove_caption(
            video=video, language=caption.language, storage=current_storage()
        )
    except StorageError:
        log.exception("removing captions failed", extra={"video_id": video.id})
        return await _page(
            request,
            video,
            error="The captions could not be removed from storage. Try again.",
            status=503,
        )
    return RedirectResponse(
        _back(video, target if isinstance(target, str) else ""), status_code=303
    )
