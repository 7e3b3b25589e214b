"""The webinar editor in the admin: list, create, edit with a live preview, publish, share.

Handlers read the request and answer; every decision is made in app.services.webinars.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.i18n import LANGUAGES
from app.models import Webinar, WebinarStatus
from app.services import content, webinars
from app.services.images import ACCEPT_ATTRIBUTE, MAX_IMAGE_BYTES, ImageUpload
from app.services.permissions import Permission, can
from app.settings import get_settings
from app.web import landing, page_cache
from app.web.access import client_ip, staff_route, staff_user
from app.web.forms import form_fields
from app.web.media_files import current_storage
from app.web.templating import render, render_error
from media.storage import StorageError

log = logging.getLogger("encore.web")

ACTIVE = "/admin/webinars"
MAX_FILES = 4 + webinars.MAX_PRESENTERS
MAX_FIELDS = 2000
BLANK_ROWS = 2  # empty rows offered per group, so that rows can be added without JavaScript
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
UTM_MAX = 100
_NOTICES = {
    "created": "Webinar created. Fill in the page, then set up its schedule.",
    "saved": "Saved.",
    "published": "Published: the landing page is live.",
    "unpublished": "Unpublished: the landing page is offline and the webinar is a draft again.",
    "archived": "Archived: the landing page is offline.",
    "duplicated": "This is the copy, as a draft. Registrants and sessions stayed with the "
    "original.",
}
LANGUAGE_NAMES = {code: content.LANGUAGES.get(code, code) for code in LANGUAGES}


async def webinar_of(request: Request) -> Webinar | None:
    """The webinar named by the `webinar_id` of an admin URL, or None."""
    return await Webinar.get_or_none(id=request.path_params["webinar_id"])


def webinar_missing(request: Request) -> Response:
    """The 404 page of an admin URL naming a webinar that does not exist."""
    return render_error(
        request,
        status=404,
        title="Webinar not found",
        message="This webinar does not exist (any more). Go back to the list of webinars.",
    )


def public_url(webinar: Webinar) -> str:
    """The address of a webinar's landing page."""
    return f"{get_settings().public_base_url.rstrip('/')}/w/{webinar.slug}"


def _can_edit(request: Request) -> bool:
    return can(staff_user(request).role, Permission.EDIT_WEBINARS)


# --- list and new ------------------------------------------------------------------------------


@staff_route(Permission.VIEW_WEBINARS)
async def webinar_list(request: Request) -> Response:
    """Every webinar with its status, upcoming sessions and registrations."""
    return render(
        request,
        "admin/webinars.html",
        {
            "rows": await webinars.overview(),
            "can_edit": _can_edit(request),
            "active": ACTIVE,
        },
    )


@staff_route(Permission.EDIT_WEBINARS)
async def webinar_new(request: Request) -> Response:
    """Start a webinar from its title (GET: the form)."""
    context: dict[str, Any] = {"title": "", "errors": {}, "active": ACTIVE}
    if request.method != "POST":
        return render(request, "admin/webinar_new.html", context)
    data = await form_fields(request, "title", max_length=1000)
    try:
        webinar = await webinars.create_webinar(title=data["title"], actor=staff_user(request))
    except webinars.WebinarInputError as exc:
        context.update(title=data["title"], errors=exc.errors.errors)
        return render(request, "admin/webinar_new.html", context, status=400)
    return RedirectResponse(f"/admin/webinars/{webinar.id}?notice=created", status_code=303)


# --- the editor ----------------------------------------------------------------------------------


async def _read(request: Request) -> tuple[dict[str, str | list[str]], dict[str, ImageUpload]]:
    """The submitted form as strings (lists for repeated names) and the chosen image files."""
    form: FormData = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS)
    values: dict[str, str | list[str]] = {}
    files: dict[str, ImageUpload] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if value.filename or value.size:
                    data = await value.read(MAX_IMAGE_BYTES + 1)
                    size = value.size if value.size is not None else len(data)
                    files[name] = ImageUpload(value.filename or "", data, size)
                continue
            if name in values:
                existing = values[name]
                values[name] = (
                    [*existing, value] if isinstance(existing, list) else [existing, value]
                )
            else:
                values[name] = value
    finally:
        await form.close()
    return values, files


def _next_index(rows: list[dict[str, str]]) -> int:
    return max((int(row["i"]) for row in rows if row.get("i", "").isdigit()), default=-1) + 1


def _theme_of(draft: webinars.Draft) -> content.Theme:
    """The theme the draft's valid colours make (for contrast warnings beside them)."""
    return content.theme_from(
        {name: draft.value(name) for name in ("primary", "background", "text", "template", "font")}
    )


async def _editor(
    request: Request,
    webinar: Webinar,
    draft: webinars.Draft,
    *,
    errors: dict[str, str] | None = None,
    notice: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    blank = {group: _next_index(draft.rows.get(group, [])) for group in webinars.ROW_NAMES}
    return render(
        request,
        "admin/webinar_edit.html",
        {
            "webinar": webinar,
            "tab": "content",
            "draft": draft,
            "errors": errors or {},
            "error": error,
            "notice": notice,
            "blank": blank,
            "blank_rows": BLANK_ROWS,
            "videos": await webinars.choosable_videos(webinar),
            "templates": content.TEMPLATES,
            "fonts": content.FONTS,
            "languages": LANGUAGE_NAMES,
            "field_types": list(content.FieldType),
            "contrast": _theme_of(draft).contrast_warnings(),
            "video_warning": await webinars.video_warning(webinar),
            "publish_problem": await webinars.publish_problem(webinar),
            "slug_editable": webinars.slug_editable(webinar),
            "public_url": public_url(webinar),
            "accept": ACCEPT_ATTRIBUTE,
            "max_image_mb": MAX_IMAGE_BYTES // (1024 * 1024),
            "can_edit": True,
            "active": ACTIVE,
        },
        status=status,
    )


@staff_route(Permission.EDIT_WEBINARS)
async def webinar_edit(request: Request) -> Response:
    """The editor (GET) and saving it (POST): every field checked, nothing saved on an error."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    if request.method != "POST":
        notice = _NOTICES.get(request.query_params.get("notice", ""), "")
        return await _editor(request, webinar, await webinars.editor_draft(webinar), notice=notice)
    values, files = await _read(request)
    try:
        errors = await webinars.update_webinar(
            webinar, values, files, actor=staff_user(request), storage=current_storage()
        )
    except StorageError:
        log.exception("storing webinar images failed", extra={"webinar_id": webinar.id})
        errors = content.FormErrors()
        errors.add("form", "The images could not be stored. Try again in a moment.")
    if errors:
        presenters = await webinars.presenters_of(webinar)
        draft = webinars.draft_from_form(values, webinar=webinar, presenters=presenters)
        count = len(errors.errors)
        summary = errors.errors.get("form") or (
            "Nothing was saved: one field needs a change (marked below)."
            if count == 1
            else f"Nothing was saved: {count} fields need a change (marked below)."
        )
        return await _editor(
            request, webinar, draft, errors=errors.errors, error=summary, status=400
        )
    page_cache.forget_all()  # visitors see the change at once
    return RedirectResponse(f"/admin/webinars/{webinar.id}?notice=saved", status_code=303)


@staff_route(Permission.EDIT_WEBINARS)
async def webinar_preview(request: Request) -> Response:
    """The landing page with the editor's unsaved values (for the preview pane)."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    values, _ = await _read(request)  # chosen files are not stored for a preview
    copy, presenters = await webinars.preview(webinar, values)
    response = await landing.landing_response(request, copy, presenters, preview=True)
    # The editor shows these beside the colours while they are being picked.
    warnings = content.theme_from(copy.theme).contrast_warnings()
    response.headers["X-Contrast-Warnings"] = json.dumps(warnings)
    return response


# --- status --------------------------------------------------------------------------------------


@staff_route(Permission.EDIT_WEBINARS)
async def webinar_publish(request: Request) -> Response:
    """Publish the landing page (refused with the reason while something is missing)."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    try:
        await webinars.publish(webinar, actor=staff_user(request), ip=client_ip(request))
    except webinars.WebinarError as exc:
        draft = await webinars.editor_draft(webinar)
        return await _editor(request, webinar, draft, error=str(exc), status=409)
    page_cache.forget_all()  # visitors see the change at once
    return RedirectResponse(f"/admin/webinars/{webinar.id}?notice=published", status_code=303)


@staff_route(Permission.EDIT_WEBINARS)
async def webinar_unpublish(request: Request) -> Response:
    """Take the landing page offline (back to draft)."""
    return await _change(request, webinars.unpublish, "unpublished")


@staff_route(Permission.EDIT_WEBINARS)
async def webinar_archive(request: Request) -> Response:
    """Archive a webinar."""
    return await _change(request, webinars.archive, "archived")


async def _change(
    request: Request, change: Callable[..., Awaitable[object]], notice: str
) -> Response:
    """Apply a state change that cannot be refused, then show the editor with a notice."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    await change(webinar, actor=staff_user(request), ip=client_ip(request))
    page_cache.forget_all()  # visitors see the change at once
    return RedirectResponse(f"/admin/webinars/{webinar.id}?notice={notice}", status_code=303)


@staff_route(Permission.EDIT_WEBINARS)
async def webinar_duplicate(request: Request) -> Response:
    """Copy a webinar as a new draft and open the copy."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    try:
        copy = await webinars.duplicate(webinar, actor=staff_user(request), ip=client_ip(request))
    except webinars.WebinarError as exc:
        draft = await webinars.editor_draft(webinar)
        return await _editor(request, webinar, draft, error=str(exc), status=409)
    return RedirectResponse(f"/admin/webinars/{copy.id}?notice=duplicated", status_code=303)


# --- share ---------------------------------------------------------------------------------------


def embed_snippet(webinar: Webinar) -> str:
    """The iframe that puts the registration form on another site."""
    base = get_settings().public_base_url.rstrip("/")
    title = webinar.title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return (
        f'<iframe src="{base}/w/{webinar.slug}/embed" title="Register: {title}" '
        'width="100%" height="640" loading="lazy"></iframe>'
    )


def utm_link(url: str, values: dict[str, str]) -> str:
    """The landing page address with the given UTM parameters (empty ones left out)."""
    query = urlencode([(name, values[name]) for name in UTM_FIELDS if values.get(name)])
    return f"{url}?{query}" if query else url


@staff_route(Permission.VIEW_WEBINARS)
async def webinar_share(request: Request) -> Response:
    """The public address, the embed snippet and a link builder with UTM parameters."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    params = request.query_params
    utm = {name: params.get(name, "").strip() for name in UTM_FIELDS}
    errors: dict[str, str] = {}
    for name, value in utm.items():
        if len(value) > UTM_MAX:
            errors[name] = f"Use at most {UTM_MAX} characters."
    if any(utm.values()) and not utm["utm_source"]:
        errors["utm_source"] = "Enter the source (where the link is shared, like newsletter)."
    link = utm_link(public_url(webinar), utm) if any(utm.values()) and not errors else ""
    return render(
        request,
        "admin/webinar_share.html",
        {
            "webinar": webinar,
            "tab": "share",
            "public_url": public_url(webinar),
            "snippet": embed_snippet(webinar),
            "utm": utm,
            "utm_errors": errors,
            "utm_link": link,
            "is_live": webinar.status == WebinarStatus.PUBLISHED,
            "can_edit": _can_edit(request),
            "active": ACTIVE,
        },
        status=400 if errors else 200,
    )
