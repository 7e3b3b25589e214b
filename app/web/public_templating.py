"""Jinja2 for the attendee-facing pages: one environment per language, with gettext installed.

Public pages speak the webinar's language (or, where no webinar is known, the visitor's), so each
language gets its own environment with the merged catalogues of `app/translations/<lang>/`.
Templates use `_()` and `ngettext()` (new-style gettext: variables are passed by name and escaped).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from app import __version__, i18n
from app.web.templating import TEMPLATES, static_url

# Headers of pages whose URL holds a personal token: never cached, indexed or leaked onwards.
TOKEN_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


@lru_cache(maxsize=len(i18n.LANGUAGES))
def environment(language: str) -> Environment:
    """The template environment of one language."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(  # type: ignore[attr-defined]
        i18n.translations(language), newstyle=True
    )
    env.globals["static_url"] = static_url
    env.globals["version"] = __version__
    env.globals["language"] = language
    return env


def render_public(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    language: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render a public page in `language`."""
    language = i18n.language_or_default(language)
    state = request.scope.get("state", {})
    full: dict[str, Any] = {
        "request": request,
        "lang": language,
        "csrf_token": state.get("csrf_token", ""),
        "request_id": state.get("request_id", ""),
    }
    full.update(context)
    html = environment(language).get_template(template).render(full)
    return HTMLResponse(html, status_code=status, headers=dict(headers or {}))


def visitor_language(request: Request) -> str:
    """The first supported language of the Accept-Language header, else the default."""
    wanted: list[tuple[float, int, str]] = []
    for index, part in enumerate(request.headers.get("accept-language", "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        base = tag.strip().lower().split("-")[0]
        if base in i18n.LANGUAGES and quality > 0:
            wanted.append((-quality, index, base))
    return min(wanted)[2] if wanted else i18n.DEFAULT_LANGUAGE


def not_found(
    request: Request, *, language: str | None = None, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    """The localised 'nothing here' page (404)."""
    return render_public(
        request,
        "public/not_found.html",
        {},
        language=language or visitor_language(request),
        status=404,
        headers=headers,
    )
