"""A registrant's own pages, reached through the personal token in their link.

`/j/{token}/registered` thanks them after registering, `/j/{token}` is the live room (or, while
they have no session, a page that says so) and `/j/{token}/calendar.ics` is their calendar entry.
The token is the only key, so these answers are never cached, indexed or passed on as a referrer.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from babel.dates import format_timedelta
from starlette.requests import Request
from starlette.responses import Response

from app import i18n
from app.models import Registrant, Webinar, WebinarSession
from app.schedule import PlaybackState, playback_position
from app.services import auth, calendar, content, registration
from app.web.landing import media_url, theme_query
from app.web.public_templating import TOKEN_PAGE_HEADERS, not_found, render_public

TOKEN_MAX = 200
# The room page's side of the live room's wire contract (app.realtime.protocol, which the web
# layer may not import; a test keeps the two equal): where the socket answers, how often the
# player reports, and the longest chat message.
SOCKET_PATH = "/socket.io"
HEARTBEAT_SECONDS = 20
MAX_CHAT_CHARS = 1000
# Within this long before the start the join page says "starts soon".
STARTS_SOON = timedelta(minutes=15)
_FILENAME = re.compile(r"[^A-Za-z0-9_-]+")


async def _registrant(request: Request) -> tuple[Registrant, str] | None:
    token = request.path_params["token"]
    if not token or len(token) > TOKEN_MAX:
        return None
    registrant = await registration.find_by_token(token)
    if registrant is None or not isinstance(registrant.webinar, Webinar):
        return None
    return registrant, token


def relative_start(starts_at: datetime, now: datetime, language: str) -> str:
    """How far away a start is, in words ("in 3 days", "in 5 Minuten")."""
    return format_timedelta(
        starts_at - now,
        threshold=1,
        add_direction=True,
        format="long",
        locale=i18n.language_or_default(language),
    )


async def token_context(registrant: Registrant, token: str, now: datetime) -> dict[str, Any]:
    """What the thank-you and join pages show: the session in the registrant's zone, links."""
    webinar = registrant.webinar
    assert isinstance(webinar, Webinar)
    language = i18n.language_or_default(webinar.language)
    session = registrant.session if isinstance(registrant.session, WebinarSession) else None
    theme = content.theme_from(webinar.theme)
    join_url = registration.join_url(token)
    context: dict[str, Any] = {
        "webinar": webinar,
        "theme": theme,
        "theme_css": f"/w/theme.css?{theme_query(theme)}",
        "landing": content.landing_from(webinar.landing),
        "join_url": join_url,
        "join_path": f"/j/{token}",
        "session": session,
        "on_demand": session is not None and session.kind == calendar.ON_DEMAND,
        "state": "unscheduled",
    }
    if session is None:
        return context
    if context["on_demand"]:
        context["state"] = "on_demand"
        return context
    zone = calendar.registrant_zone(registrant)
    duration = await calendar.session_duration(webinar)
    description = calendar.event_description(webinar, join_url)
    playback = playback_position(session.starts_at, now, duration)
    if playback.state is PlaybackState.LIVE:
        state = "live"
    elif playback.state is PlaybackState.ENDED:
        state = "ended"
    else:
        state = "soon" if session.starts_at - now <= STARTS_SOON else "waiting"
    context.update(
        state=state,
        when=i18n.format_when(session.starts_at, zone, language),
        zone_label=i18n.zone_label(zone, session.starts_at),
        starts_at_iso=session.starts_at.isoformat(),
        starts_in=relative_start(session.starts_at, now, language),
        ics_url=f"/j/{token}/calendar.ics",
        google_url=calendar.google_calendar_url(
            title=webinar.title,
            description=description,
            starts_at=session.starts_at,
            duration=duration,
            url=join_url,
        ),
        outlook_url=calendar.outlook_calendar_url(
            title=webinar.title,
            description=description,
            starts_at=session.starts_at,
            duration=duration,
            url=join_url,
        ),
    )
    return context


def room_config() -> dict[str, Any]:
    """What room.js needs to know of the wire contract besides the labels."""
    return {
        "socket_path": SOCKET_PATH,
        "heartbeat_seconds": HEARTBEAT_SECONDS,
        "max_chat_chars": MAX_CHAT_CHARS,
    }


async def _context(request: Request) -> dict[str, Any] | None:
    found = await _registrant(request)
    if found is None:
        return None
    registrant, token = found
    return await token_context(registrant, token, auth.utcnow())


def _render(request: Request, template: str, context: dict[str, Any]) -> Response:
    return render_public(
        request,
        template,
        context,
        language=context["webinar"].language,
        headers=TOKEN_PAGE_HEADERS,
    )


async def thanks(request: Request) -> Response:
    """`GET /j/{token}/registered`: the thank-you page after registering."""
    context = await _context(request)
    if context is None:
        return not_found(request, headers=TOKEN_PAGE_HEADERS)
    return _render(request, "public/thanks.html", context)


async def join(request: Request) -> Response:
    """`GET /j/{token}`: the live room of the registrant's session (the join page without one)."""
    context = await _context(request)
    if context is None:
        return not_found(request, headers=TOKEN_PAGE_HEADERS)
    if context["state"] == "unscheduled":
        # Without a session there is no room to enter: the page says the time will follow.
        return _render(request, "public/join.html", context)
    theme = context["theme"]
    context["logo_url"] = media_url(theme.logo_key) if theme.logo_key else ""
    context["room_config"] = room_config()
    return _render(request, "public/room.html", context)


async def calendar_file(request: Request) -> Response:
    """`GET /j/{token}/calendar.ics`: the registrant's session as an iCalendar download."""
    found = await _registrant(request)
    if found is None:
        return not_found(request, headers=TOKEN_PAGE_HEADERS)
    registrant, _token = found
    data = await calendar.registrant_ics(registrant)
    webinar = registrant.webinar
    assert isinstance(webinar, Webinar)
    if data is None:
        return not_found(request, language=webinar.language, headers=TOKEN_PAGE_HEADERS)
    name = _FILENAME.sub("-", webinar.slug).strip("-") or "webinar"
    headers = {
        **TOKEN_PAGE_HEADERS,
        "Content-Disposition": f'attachment; filename="{name}.ics"',
    }
    return Response(data, media_type="text/calendar; charset=utf-8", headers=headers)
