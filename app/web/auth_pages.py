"""Sign-in, second factor, sign-out, first setup, invitations, password reset and own account."""

from __future__ import annotations

from urllib.parse import quote

import segno
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.models import SessionStage, TokenPurpose
from app.services import auth, crypto, team
from app.services.auth import LoginOutcome
from app.services.permissions import Permission
from app.web.access import (
    clear_session_cookie,
    client_ip,
    current_session,
    set_session_cookie,
    staff_route,
    staff_session,
    staff_user,
)
from app.web.forms import form_fields, safe_next
from app.web.middleware import new_csrf_secret, secure_cookies, set_csrf_cookie
from app.web.templating import render, render_error

ANY_STAGE = frozenset(SessionStage)
ENROL_OR_FULL = frozenset({SessionStage.ENROL, SessionStage.FULL})


def _signed_in_response(request: Request, target: str, token: str) -> Response:
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, token)
    # A new CSRF secret with the new session: a token seen before sign-in is worthless after.
    set_csrf_cookie(response, new_csrf_secret(), secure=secure_cookies(request.scope))
    return response


def _rate_limited(
    request: Request, template: str, context: dict[str, object], wait: int
) -> Response:
    minutes = max(1, (wait + 59) // 60)
    context["error"] = (
        f"Too many attempts. For your security, sign-in is paused: try again in {minutes} "
        f"minute{'s' if minutes != 1 else ''}."
    )
    return render(request, template, context, status=429, headers={"Retry-After": str(wait)})


async def login(request: Request) -> Response:
    """Email and password sign-in."""
    next_url = safe_next(request.query_params.get("next"))
    if request.method != "POST":  # GET and HEAD alike: HEAD skips CSRF, so never the POST branch
        session = await current_session(request)
        if session is not None and session.stage == SessionStage.FULL:
            return RedirectResponse(next_url, status_code=303)
        if not await team.has_owner():
            return render(request, "auth/no_owner.html")
        return render(request, "auth/login.html", {"email": "", "next": next_url})
    data = await form_fields(request, "email", "password", "next", max_length=512)
    next_url = safe_next(data["next"])
    context: dict[str, object] = {"email": data["email"], "next": next_url}
    if not data["email"] or not data["password"]:
        context["error"] = "Enter your email address and password."
        return render(request, "auth/login.html", context, status=400)
    result = await auth.authenticate(
        email=data["email"], password=data["password"], ip=client_ip(request)
    )
    if result.outcome == LoginOutcome.RATE_LIMITED:
        return _rate_limited(request, "auth/login.html", context, result.retry_after)
    if result.outcome == LoginOutcome.INVALID or result.user is None or result.stage is None:
        context["error"] = "That email address and password do not match an active account."
        return render(request, "auth/login.html", context, status=401)
    old = request.cookies.get("encore_session")
    if old:
        await auth.end_session(old)
    token = await auth.start_session(
        user=result.user,
        stage=result.stage,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    target = {
        SessionStage.FULL: next_url,
        SessionStage.PASSWORD: f"/login/2fa?next={quote(next_url)}",
        SessionStage.ENROL: "/account/2fa",
    }[result.stage]
    return _signed_in_response(request, target, token)


async def login_second_factor(request: Request) -> Response:
    """The authenticator or recovery code after a correct password."""
    session = await current_session(request)
    if session is None:
        return RedirectResponse("/login", status_code=303)
    if session.stage != SessionStage.PASSWORD:
        return RedirectResponse("/admin", status_code=303)
    next_url = safe_next(request.query_params.get("next"))
    if request.method != "POST":
        return render(request, "auth/second_factor.html", {"next": next_url})
    data = await form_fields(request, "code", "next", max_length=64)
    next_url = safe_next(data["next"])
    result = await auth.second_factor(user=session.user, code=data["code"], ip=client_ip(request))
    context: dict[str, object] = {"next": next_url}
    if result.outcome == LoginOutcome.RATE_LIMITED:
        return _rate_limited(request, "auth/second_factor.html", context, result.retry_after)
    if result.outcome != LoginOutcome.OK:
        context["error"] = (
            "That code is not valid. Codes change every 30 seconds and each works only once."
        )
        return render(request, "auth/second_factor.html", context, status=401)
    token = await auth.advance_session(session=session, stage=SessionStage.FULL)
    return _signed_in_response(request, next_url, token)


async def logout(request: Request) -> Response:
    """Sign this browser out."""
    token = request.cookies.get("encore_session")
    if token:
        await auth.end_session(token)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response)
    return response


async def setup(request: Request) -> Response:
    """Create the first owner from the link printed at first start."""
    token = request.path_params["token"]
    row = await team.find_token(token=token, purpose=TokenPurpose.SETUP)
    if row is None or await team.has_owner():
        return render_error(
            request,
            status=410,
            title="Link no longer valid",
            message="This setup link has expired or was already used. Run "
            "`python -m app create-owner` on the server, or restart Encore for a new link.",
        )
    if request.method != "POST":
        return render(request, "auth/setup.html", {"values": {}})
    data = await form_fields(request, "email", "name", "password", max_length=256)
    try:
        user = await team.complete_setup(
            token=token, email=data["email"], name=data["name"], password=data["password"]
        )
    except team.TeamError as exc:
        values = {"email": data["email"], "name": data["name"]}
        return render(request, "auth/setup.html", {"values": values, "error": str(exc)}, status=400)
    session_token = await auth.start_session(
        user=user,
        stage=SessionStage.FULL,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    return _signed_in_response(request, "/account/2fa", session_token)


async def accept_invite(request: Request) -> Response:
    """Join the team from an invitation link."""
    token = request.path_params["token"]
    row = await team.find_token(token=token, purpose=TokenPurpose.INVITE)
    if row is None:
        return render_error(
            request,
            status=410,
            title="Invitation no longer valid",
            message="This invitation has expired or was already used. "
            "Ask the person who invited you to send a new one.",
        )
    context: dict[str, object] = {"email": row.email, "role": row.role, "values": {}}
    if request.method != "POST":
        return render(request, "auth/invite.html", context)
    data = await form_fields(request, "name", "password", max_length=256)
    try:
        await team.accept_invite(token=token, name=data["name"], password=data["password"])
    except team.TeamError as exc:
        context.update(values={"name": data["name"]}, error=str(exc))
        return render(request, "auth/invite.html", context, status=400)
    return render(
        request,
        "auth/done.html",
        {
            "title": "Welcome to the team",
            "message": "Your account is ready. Sign in with your email address and new password.",
        },
    )


async def reset_request(request: Request) -> Response:
    """Ask for a password reset link."""
    if request.method != "POST":
        return render(request, "auth/reset_request.html", {"email": ""})
    data = await form_fields(request, "email", max_length=254)
    if "@" not in data["email"]:
        return render(
            request,
            "auth/reset_request.html",
            {"email": data["email"], "error": "Enter the email address of your account."},
            status=400,
        )
    await team.request_password_reset(email=data["email"], ip=client_ip(request))
    return render(
        request,
        "auth/done.html",
        {
            "title": "Check your inbox",
            "message": "If an account exists for that address, we have sent it a link to choose a "
            "new password. The link expires in one hour.",
        },
    )


async def reset_password(request: Request) -> Response:
    """Choose a new password from a reset link."""
    token = request.path_params["token"]
    row = await team.find_token(token=token, purpose=TokenPurpose.RESET)
    if row is None:
        return render_error(
            request,
            status=410,
            title="Link no longer valid",
            message="This reset link has expired or was already used. Ask for a new one.",
        )
    if request.method != "POST":
        return render(request, "auth/reset.html", {})
    data = await form_fields(request, "password", max_length=512)
    try:
        await team.reset_password(token=token, password=data["password"], ip=client_ip(request))
    except team.TeamError as exc:
        return render(request, "auth/reset.html", {"error": str(exc)}, status=400)
    return render(
        request,
        "auth/done.html",
        {
            "title": "Password changed",
            "message": "Your password has been changed and you were signed out everywhere. "
            "Sign in with the new password.",
        },
    )


@staff_route(Permission.VIEW_DASHBOARD)
async def account(request: Request) -> Response:
    """Own profile: password and two-factor status."""
    user = staff_user(request)
    context: dict[str, object] = {
        "remaining_codes": await auth.remaining_recovery_codes(user=user),
    }
    if request.method == "POST":
        data = await form_fields(request, "current", "new", max_length=512)
        try:
            await team.change_password(
                user=user,
                current=data["current"],
                new=data["new"],
                keep=staff_session(request),
                ip=client_ip(request),
            )
        except team.TeamError as exc:
            context["error"] = str(exc)
            return render(request, "auth/account.html", context, status=400)
        context["notice"] = "Password changed. Your other browsers were signed out."
    return render(request, "auth/account.html", context)


def _qr_svg(uri: str) -> str:
    return str(segno.make(uri, error="m").svg_inline(scale=5, dark="#111827", light="#ffffff"))


@staff_route(Permission.VIEW_DASHBOARD, stages=ENROL_OR_FULL)
async def two_factor(request: Request) -> Response:
    """Enrol an authenticator app: QR code, then one code to prove it works."""
    user = staff_user(request)
    session = staff_session(request)
    if user.has_totp:
        return render(
            request,
            "auth/two_factor_on.html",
            {
                "remaining_codes": await auth.remaining_recovery_codes(user=user),
            },
        )
    if request.method != "POST":
        secret = auth.new_totp_secret()
        sealed = crypto.seal(secret)
        error = None
        status = 200
    else:
        data = await form_fields(request, "sealed", "code", max_length=512)
        sealed = data["sealed"]
        secret_or_none = crypto.unseal(sealed)
        if secret_or_none is None:
            return RedirectResponse("/account/2fa", status_code=303)
        secret = secret_or_none
        codes = await auth.enable_totp(
            user=user, secret=secret, code=data["code"], ip=client_ip(request)
        )
        if codes is not None:
            token = await auth.advance_session(session=session, stage=SessionStage.FULL)
            await auth.end_all_sessions(user=user, except_session=session)
            response = render(request, "auth/recovery_codes.html", {"codes": codes, "fresh": True})
            set_session_cookie(response, request, token)
            return response
        error = "That code did not match. Check the time on your phone and enter the current code."
        status = 400
    uri = auth.totp_uri(secret=secret, email=user.email)
    return render(
        request,
        "auth/two_factor_setup.html",
        {
            "qr_svg": _qr_svg(uri),
            "otpauth_uri": uri,
            "secret": secret,
            "sealed": sealed,
            "error": error,
            "required": session.stage == SessionStage.ENROL,
        },
        status=status,
    )


@staff_route(Permission.VIEW_DASHBOARD)
async def two_factor_disable(request: Request) -> Response:
    """Switch off one's own 2FA (refused while the workspace requires it)."""
    from app.services import workspace

    user = staff_user(request)
    data = await form_fields(request, "password", max_length=512)
    remaining = await auth.remaining_recovery_codes(user=user)
    if (await workspace.load()).require_2fa:
        return render(
            request,
            "auth/two_factor_on.html",
            {
                "remaining_codes": remaining,
                "error": "Two-factor sign-in is required in this workspace "
                "and cannot be switched off.",
            },
            status=400,
        )
    if not crypto.verify_password(user.password_hash, data["password"]):
        return render(
            request,
            "auth/two_factor_on.html",
            {
                "remaining_codes": remaining,
                "error": "Your password is not correct.",
            },
            status=400,
        )
    await auth.disable_totp(user=user, actor=user, ip=client_ip(request))
    return RedirectResponse("/account", status_code=303)


@staff_route(Permission.VIEW_DASHBOARD)
async def recovery_codes_renew(request: Request) -> Response:
    """Replace one's recovery codes (the old ones stop working)."""
    user = staff_user(request)
    if not user.has_totp:
        return RedirectResponse("/account/2fa", status_code=303)
    codes = await auth.replace_recovery_codes(user=user)
    from app.services import audit

    await audit.record(action="2fa.recovery_codes_renewed", actor=user, ip=client_ip(request))
    return render(request, "auth/recovery_codes.html", {"codes": codes, "fresh": False})
