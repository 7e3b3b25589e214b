"""Admin media pages: recordings with live processing state, one recording's page, cancel, retry."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.models import Video
from app.services import audit, captions, videos
from app.services.permissions import Permission
from app.settings import get_settings
from app.web.access import client_ip, staff_route, staff_user
from app.web.media_files import current_storage
from app.web.templating import render, render_error

ACTIVE = "/admin/media"
MAX_STATUS_IDS = 100
REASONS = {
    "not_media": "not a video or audio file",
    "playlist": "a playlist, not a video",
    "unsupported_container": "file type not supported",
    "unsupported_codec": "codec not supported",
    "corrupt": "damaged or incomplete file",
    "empty": "no content",
    "too_long": "too long",
    "too_large": "too large",
    "cancelled": "cancelled",
    "timeout": "took too long",
    "transcode_failed": "transcoding error",
    "storage": "storage error",
    "crashed": "the transcoder kept stopping",
    "internal": "unexpected error",
}
"""Short labels of the stable failure codes (media.probe.Reason and videos.FailReason)."""
_NOTICES = {
    "cancelled": "Cancelled.",
    "cancelling": "Stopping: the transcoder stops at its next progress report.",
    "retried": "Queued again; transcoding starts within a few seconds.",
}


def _urls(video: Video) -> dict[str, str | None]:
    """Where the browser fetches the preview, the poster and the thumbnail map."""
    storage = current_storage()
    ttl = get_settings().media_url_ttl_seconds

    def url(key: str | None) -> str | None:
        return videos.playback_url(storage, key, expires_in=ttl) if key else None

    return {
        "player": url(video.hls_key) if video.playable else None,
        "poster": url(video.poster_key),
        "thumbnails": url(video.thumbnails_key),
    }


def clock(seconds: float | None) -> str:
    """A duration as H:MM:SS or M:SS; a dash when unknown."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def eta_text(seconds: float | None) -> str:
    """Time left in words, as media.js writes it too."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min left"
    return f"about {minutes / 60:.1f} h left"


def size_text(count: int) -> str:
    """A byte count in MB or GB."""
    if count >= 1000**3:
        return f"{count / 1000**3:.2f} GB"
    return f"{count / 1000**2:.1f} MB"


def _row(video: Video) -> dict[str, Any]:
    status = videos.status(video)
    return {
        "video": video,
        "status": status,
        "eta": eta_text(status["eta_seconds"]),
        "duration": clock(video.duration_seconds),
        "size": size_text(video.size_bytes) if video.size_bytes else "—",
        "resolution": f"{video.width} x {video.height}" if video.width and video.height else "—",
    }


@staff_route(Permission.MANAGE_MEDIA)
async def media(request: Request) -> Response:
    """Uploaded recordings and their processing state."""
    rows = await Video.all().order_by("-created_at")
    return render(request, "admin/media.html", {"rows": [_row(v) for v in rows], "active": ACTIVE})


async def _video_page(
    request: Request,
    video: Video,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "admin/video.html",
        {
            "video": video,
            "captions": await captions.list_captions(video=video),
            "row": _row(video),
            "urls": _urls(video),
            "reason_label": REASONS.get(video.error_reason or "", video.error_reason),
            "error": error,
            "notice": notice,
            "active": ACTIVE,
        },
        status=status,
    )


async def _video_or_404(request: Request) -> Video | None:
    return await Video.get_or_none(id=request.path_params["video_id"])


def _missing(request: Request) -> Response:
    return render_error(
        request,
        status=404,
        title="Recording not found",
        message="This recording does not exist (any more). Go back to the media list.",
    )


@staff_route(Permission.MANAGE_MEDIA)
async def video_page(request: Request) -> Response:
    """One recording: preview player, poster, renditions, progress, error, cancel and retry."""
    video = await _video_or_404(request)
    if video is None:
        return _missing(request)
    notice = _NOTICES.get(request.query_params.get("done", ""))
    return await _video_page(request, video, notice=notice)


@staff_route(Permission.MANAGE_MEDIA)
async def video_status(request: Request) -> Response:
    """JSON processing state of the recordings named in `?ids=1,2,3`, polled by media.js."""
    raw = request.query_params.get("ids", "")
    ids = sorted({int(part) for part in raw.split(",") if part.isdigit() and len(part) < 12})
    rows = await Video.filter(id__in=ids[:MAX_STATUS_IDS]).order_by("id") if ids else []
    return JSONResponse(
        {"videos": [videos.status(v) for v in rows]}, headers={"Cache-Control": "no-store"}
    )


@staff_route(Permission.MANAGE_MEDIA)
async def video_cancel(request: Request) -> Response:
    """Stop processing a recording (at once if it waits, else at the next progress report)."""
    video = await _video_or_404(request)
    if video is None:
        return _missing(request)
    user = staff_user(request)
    try:
        at_once = await videos.request_cancel(video.id, actor_name=user.name)
    except videos.TransitionError as exc:
        await video.refresh_from_db()
        return await _video_page(request, video, error=str(exc), status=409)
    await audit.record(
        action="video.cancel", actor=user, target=f"video:{video.id}", ip=client_ip(request)
    )
    done = "cancelled" if at_once else "cancelling"
    return RedirectResponse(f"/admin/media/{video.id}?done={done}", status_code=303)


@staff_route(Permission.MANAGE_MEDIA)
async def video_retry(request: Request) -> Response:
    """Queue a failed recording again."""
    video = await _video_or_404(request)
    if video is None:
        return _missing(request)
    try:
        await videos.retry(video.id)
    except videos.TransitionError as exc:
        await video.refresh_from_db()
        return await _video_page(request, video, error=str(exc), status=409)
    await audit.record(
        action="video.retry",
        actor=staff_user(request),
        target=f"video:{video.id}",
        ip=client_ip(request),
    )
    return RedirectResponse(f"/admin/media/{video.id}?done=retried", status_code=303)
