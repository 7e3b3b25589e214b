"""The presenter console: one page for the team to run the live rooms of every webinar.

The page is a shell; static/js/console.js connects to the Socket.IO hub with the staff session
cookie and fills it. The hub authorises every event again, so what the page hides from roles
that may not act is a courtesy, not the guard.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.services.permissions import Permission, can
from app.web.access import staff_route, staff_user
from app.web.templating import render

ACTIVE = "/admin/console"
# The hub refuses longer messages; the form says so before sending.
MAX_REPLY_CHARS = 1000


@staff_route(Permission.VIEW_SESSIONS)
async def console(request: Request) -> Response:
    """The console shell: sessions, inbox, moderation queue and the open session."""
    user = staff_user(request)
    return render(
        request,
        "admin/console.html",
        {
            "active": ACTIVE,
            "can_act": can(user.role, Permission.MODERATE),
            "max_reply_chars": MAX_REPLY_CHARS,
        },
    )
