"""The room tab of a webinar: chat mode and rules, the recording notice, welcome, end screen.

Handlers read the form and answer; what each setting means and what is allowed is decided in
app.services.room_settings.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.models import Webinar
from app.services import content, room_settings
from app.services.permissions import Permission, can
from app.services.room_settings import RoomSettings
from app.web import page_cache
from app.web.access import client_ip, staff_route, staff_user
from app.web.templating import render
from app.web.webinar_admin import webinar_missing, webinar_of

ACTIVE = "/admin/webinars"
# One more than the longest value allowed, so that too long is reported, not cut silently.
FIELD_MAX = room_settings.BANNED_LIST_MAX + 1
ACTIONS = ("save", "preview", "reset")
SAMPLE_QUESTION = "Will I get the slides afterwards?"
_NOTICES = {
    "saved": "Room settings saved. Attendees who join from now on get them.",
    "reset": "Room settings are back to their defaults.",
}


def _url(webinar: Webinar, query: str = "") -> str:
    return f"/admin/webinars/{webinar.id}/room{query}"


async def _page(
    request: Request,
    webinar: Webinar,
    form: dict[str, str],
    shown: RoomSettings,
    *,
    errors: dict[str, str] | None = None,
    notice: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    return render(
        request,
        "admin/webinar_room.html",
        {
            "webinar": webinar,
            "tab": "room",
            "form": form,
            "errors": errors or {},
            "preview": shown,
            "sample_question": SAMPLE_QUESTION,
            "chat_modes": [
                (mode, room_settings.CHAT_MODE_DESCRIPTIONS[mode])
                for mode in room_settings.CHAT_MODES
            ],
            "language_name": content.LANGUAGES.get(webinar.language, webinar.language),
            "limits": {
                **room_settings.TEXT_LIMITS,
                "slow_mode_seconds": room_settings.SLOW_MODE_MAX,
                "banned_words": room_settings.BANNED_WORDS_MAX,
                "banned_word": room_settings.BANNED_WORD_MAX,
            },
            "can_edit": can(staff_user(request).role, Permission.EDIT_WEBINARS),
            "notice": notice,
            "error": error,
            "active": ACTIVE,
        },
        status=status,
    )


@staff_route(Permission.VIEW_WEBINARS)
async def room_page(request: Request) -> Response:
    """The room's settings as they are, with a preview of what attendees see."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    settings = room_settings.room_settings(webinar)
    notice = _NOTICES.get(request.query_params.get("done", ""), "")
    return await _page(request, webinar, room_settings.form_of(settings), settings, notice=notice)


@staff_route(Permission.EDIT_WEBINARS)
async def room_save(request: Request) -> Response:
    """Save, preview, or reset the room's settings."""
    webinar = await webinar_of(request)
    if webinar is None:
        return webinar_missing(request)
    raw = await request.form()
    form = {name: str(raw.get(name) or "")[:FIELD_MAX] for name in room_settings.FORM_FIELDS}
    action = str(raw.get("action") or "save")
    await raw.close()
    if action not in ACTIONS:
        action = "save"
    user = staff_user(request)
    if action == "reset":
        await room_settings.reset(webinar=webinar, actor=user, ip=client_ip(request))
        page_cache.forget_all()
        return RedirectResponse(_url(webinar, "?done=reset"), status_code=303)
    values, errors = room_settings.check_form(form)
    shown = room_settings.with_values(room_settings.room_settings(webinar), values)
    if errors:
        return await _page(
            request,
            webinar,
            form,
            shown,
            errors=errors,
            error="Nothing was saved. Please correct the fields marked below.",
            status=400,
        )
    if action == "preview":
        return await _page(
            request, webinar, form, shown, notice="This is a preview: nothing is saved yet."
        )
    await room_settings.save(webinar=webinar, values=values, actor=user, ip=client_ip(request))
    page_cache.forget_all()  # a room opened from now on reads the new settings
    return RedirectResponse(_url(webinar, "?done=saved"), status_code=303)
