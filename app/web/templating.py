"""Jinja2 templates with the context every page needs (CSRF token, signed-in user, navigation)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from app import __version__
from app.services.uploads import human_size
from app.settings import ROOT, get_settings

TEMPLATES = Path(__file__).parent / "templates"
STATIC = ROOT / "static"

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "xml"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@lru_cache(maxsize=256)
def _static_hash(path: str) -> str:
    file = STATIC / path
    try:
        return hashlib.sha256(file.read_bytes()).hexdigest()[:10]
    except OSError:
        return __version__


def static_url(path: str) -> str:
    """URL of a static file with a content hash so browsers may cache it for long."""
    return f"/static/{path}?v={_static_hash(path)}"


def _fmt_dt(value: Any) -> str:
    if value is None:
        return "—"
    return str(value.strftime("%Y-%m-%d %H:%M UTC"))


def upload_options() -> dict[str, Any]:
    """What the upload widget needs: the storage backend and the limits, in words too."""
    settings = get_settings()
    seconds = settings.max_video_seconds
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        duration = f"{hours} hour{'s' if hours != 1 else ''}"
    else:
        duration = f"{round(seconds / 60)} minutes"
    return {
        "backend": settings.media_backend,
        "max_bytes": settings.max_upload_bytes,
        "max_label": human_size(settings.max_upload_bytes),
        "duration_label": duration,
    }


env.globals["static_url"] = static_url
env.globals["upload_options"] = upload_options
env.globals["version"] = __version__
env.filters["dt"] = _fmt_dt


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render a page with the request's CSRF token, user and flash message."""
    state = request.scope.get("state", {})
    full: dict[str, Any] = {
        "request": request,
        "csrf_token": state.get("csrf_token", ""),
        "staff": state.get("staff_user"),
        "nav": state.get("nav", []),
        "workspace_name": state.get("workspace_name", "Encore"),
        "request_id": state.get("request_id", ""),
    }
    full.update(context or {})
    html = env.get_template(template).render(full)
    return HTMLResponse(html, status_code=status, headers=headers)


def render_error(
    request: Request,
    *,
    status: int,
    title: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A plain error page that reveals nothing about the server."""
    return render(
        request,
        "error.html",
        {"status": status, "title": title, "message": message},
        status=status,
        headers=headers,
    )
