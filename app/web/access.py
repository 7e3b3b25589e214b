"""Who is asking: the staff session behind a request, and the permission check on every route."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.models import SessionStage, StaffSession, StaffUser
from app.services import auth, workspace
from app.services.permissions import Permission, can
from app.web.middleware import secure_cookies
from app.web.templating import render_error

SESSION_COOKIE = "encore_session"

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class NavItem:
    """One entry of the admin sidebar."""

    label: str
    href: str
    permission: Permission
    icon: str


NAV = [
    NavItem("Dashboard", "/admin", Permission.VIEW_DASHBOARD, "home"),
    NavItem("Webinars", "/admin/webinars", Permission.VIEW_WEBINARS, "play"),
    NavItem("Media", "/admin/media", Permission.MANAGE_MEDIA, "film"),
    NavItem("Sessions", "/admin/sessions", Permission.VIEW_SESSIONS, "calendar"),
    NavItem("Console", "/admin/console", Permission.VIEW_SESSIONS, "chat"),
    NavItem("Analytics", "/admin/analytics", Permission.VIEW_ANALYTICS, "chart"),
    NavItem("Contacts", "/admin/contacts", Permission.VIEW_CONTACTS, "users"),
    NavItem("Accounts", "/admin/accounts", Permission.VIEW_CONTACTS, "building"),
    NavItem("Segments", "/admin/segments", Permission.VIEW_ANALYTICS, "filter"),
    NavItem("Outbox", "/admin/outbox", Permission.VIEW_OUTBOX, "mail"),
    NavItem("Team", "/admin/team", Permission.MANAGE_TEAM, "team"),
    NavItem("Settings", "/admin/settings", Permission.MANAGE_SETTINGS, "cog"),
    NavItem("Audit log", "/admin/audit", Permission.VIEW_AUDIT, "shield"),
]


def client_ip(request: Request) -> str:
    """The client address (already corrected by the server for trusted proxies)."""
    return request.client.host if request.client else ""


async def current_session(request: Request) -> StaffSession | None:
    """The staff session of this request, if its cookie is valid."""
    cached = request.scope.setdefault("state", {})
    if "staff_session" not in cached:
        token = request.cookies.get(SESSION_COOKIE, "")
        cached["staff_session"] = await auth.resolve_session(token) if token else None
    session: StaffSession | None = cached["staff_session"]
    return session


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    """Store the session token in an HttpOnly, SameSite cookie (Secure over HTTPS)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request.scope),
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    """Remove the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path="/")


def login_redirect(request: Request) -> RedirectResponse:
    """Send an anonymous visitor to sign in, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def staff_route(
    permission: Permission,
    *,
    stages: frozenset[SessionStage] = frozenset({SessionStage.FULL}),
    api: bool = False,
) -> Callable[[Endpoint], Endpoint]:
    """Guard an endpoint: a signed-in staff member in `stages` holding `permission`."""
    # `api` endpoints (called by scripts, not navigated to) answer JSON 401/403 instead of
    # redirecting to the sign-in page or rendering an error page.

    def decorate(handler: Endpoint) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            session = await current_session(request)
            if session is None:
                if api:
                    return JSONResponse(
                        {"error": "signed_out", "message": "Sign in again to continue."},
                        status_code=401,
                    )
                if request.method in {"GET", "HEAD"}:
                    return login_redirect(request)
                return render_error(
                    request, status=401, title="Signed out", message="Sign in again to continue."
                )
            if session.stage not in stages:
                if session.stage == SessionStage.PASSWORD:
                    return RedirectResponse("/login/2fa", status_code=303)
                if session.stage == SessionStage.ENROL:
                    return RedirectResponse("/account/2fa", status_code=303)
            user: StaffUser = session.user
            settings = await workspace.load()
            if settings.require_2fa and not user.has_totp and SessionStage.ENROL not in stages:
                # Required after this user signed in: enrolment comes before anything else.
                return RedirectResponse("/account/2fa", status_code=303)
            if not can(user.role, permission):
                message = (
                    f"Your role ({user.role.value}) does not allow this. "
                    "Ask an owner or admin if you need access."
                )
                if api:
                    return JSONResponse(
                        {"error": "forbidden", "title": "Not allowed", "message": message},
                        status_code=403,
                    )
                return render_error(request, status=403, title="Not allowed", message=message)
            state = request.scope["state"]
            state["staff_user"] = user
            state["workspace_name"] = settings.name
            state["nav"] = [item for item in NAV if can(user.role, item.permission)]
            return await handler(request)

        endpoint.permission = permission  # type: ignore[attr-defined]
        endpoint.api = api  # type: ignore[attr-defined]
        return endpoint

    return decorate


def staff_user(request: Request) -> StaffUser:
    """The signed-in user of a guarded endpoint."""
    user: StaffUser = request.scope["state"]["staff_user"]
    return user


def staff_session(request: Request) -> StaffSession:
    """The session of a guarded endpoint."""
    session: StaffSession = request.scope["state"]["staff_session"]
    return session
