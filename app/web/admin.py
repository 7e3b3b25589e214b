"""The admin dashboard: overview, content lists, team, settings, outbox and audit log."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.models import (
    OutboxMessage,
    Registrant,
    Role,
    StaffUser,
    Video,
    Webinar,
    WebinarSession,
)
from app.services import analytics_events, audit, auth, delivery, schedules, team, workspace
from app.services import sender as senders
from app.services.permissions import ROLE_DESCRIPTIONS, Permission, assignable_roles, can
from app.web.access import client_ip, staff_route, staff_user
from app.web.forms import form_fields
from app.web.templating import render, render_error

PAGE_SIZE = 50


def _page(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return max(1, int(raw)) if raw.isdigit() and len(raw) < 7 else 1


@staff_route(Permission.VIEW_DASHBOARD)
async def dashboard(request: Request) -> Response:
    """Overview with counts and a getting-started checklist."""
    user = staff_user(request)
    now = auth.utcnow()
    upcoming = (
        await WebinarSession.filter(starts_at__gte=now, closed_at__isnull=True)
        .order_by("starts_at")
        .limit(5)
        .prefetch_related("webinar")
    )
    stats = {
        "webinars": await Webinar.all().count(),
        "videos": await Video.all().count(),
        "registrants": await Registrant.all().count(),
        "registrants_week": await Registrant.filter(
            created_at__gte=now - timedelta(days=7)
        ).count(),
        "team": await StaffUser.filter(is_active=True).count(),
    }
    settings = await workspace.load()
    checklist = [
        ("Turn on two-factor sign-in for your account", user.has_totp, "/account/2fa"),
        ("Create or open a webinar", stats["webinars"] > 0, "/admin/webinars"),
        ("Invite a teammate", stats["team"] > 1, "/admin/team"),
        ("Require two-factor sign-in for the whole team", settings.require_2fa, "/admin/settings"),
    ]
    return render(
        request,
        "admin/dashboard.html",
        {
            "stats": stats,
            "upcoming": upcoming,
            "checklist": checklist,
            "active": "/admin",
        },
    )


@staff_route(Permission.VIEW_SESSIONS)
async def sessions(request: Request) -> Response:
    """Stored sessions of every webinar: upcoming first, then recent past, with registrations."""
    upcoming, past = await schedules.session_overview(auth.utcnow())
    return render(
        request,
        "admin/sessions.html",
        {
            "upcoming": upcoming,
            "past": past,
            "active": "/admin/sessions",
        },
    )


@staff_route(Permission.VIEW_OUTBOX)
async def outbox(request: Request) -> Response:
    """Messages kept in the built-in outbox (when no SMTP server is configured)."""
    page = _page(request)
    total = await OutboxMessage.all().count()
    items = await OutboxMessage.all().offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    return render(
        request,
        "admin/outbox.html",
        {
            "messages": items,
            "total": total,
            "page": page,
            "pages": max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE),
            "active": "/admin/outbox",
        },
    )


@staff_route(Permission.VIEW_OUTBOX)
async def outbox_message(request: Request) -> Response:
    """One outbox message as it would have been sent."""
    raw_id = request.path_params["message_id"]
    message = await OutboxMessage.get_or_none(id=raw_id)
    if message is None:
        return render_error(request, status=404, title="Not found", message="No such message.")
    return render(
        request,
        "admin/outbox_message.html",
        {
            "message": message,
            "active": "/admin/outbox",
        },
    )


async def _team_page(
    request: Request,
    *,
    error: str = "",
    notice: str = "",
    status: int = 200,
    invite_email: str = "",
    invite_link: str = "",
) -> Response:
    user = staff_user(request)
    members = await StaffUser.all().order_by("name")
    return render(
        request,
        "admin/team.html",
        {
            "members": members,
            "invites": await team.pending_invites(),
            "roles": assignable_roles(user.role),
            "all_roles": list(Role),
            "role_descriptions": ROLE_DESCRIPTIONS,
            "error": error,
            "notice": notice,
            "invite_email": invite_email,
            "invite_link": invite_link,
            "active": "/admin/team",
        },
        status=status,
    )


@staff_route(Permission.MANAGE_TEAM)
async def team_page(request: Request) -> Response:
    """Team members, pending invitations and the invite form."""
    return await _team_page(request)


def _role(value: str) -> Role | None:
    try:
        return Role(value)
    except ValueError:
        return None


@staff_route(Permission.MANAGE_TEAM)
async def team_invite(request: Request) -> Response:
    """Invite a teammate by email."""
    data = await form_fields(request, "email", "role", max_length=254)
    role = _role(data["role"])
    if role is None:
        return await _team_page(
            request, error="Choose a role.", status=400, invite_email=data["email"]
        )
    try:
        link = await team.invite(
            email=data["email"], role=role, actor=staff_user(request), ip=client_ip(request)
        )
    except team.TeamError as exc:
        return await _team_page(request, error=str(exc), status=400, invite_email=data["email"])
    return await _team_page(
        request,
        notice=f"Invitation sent to {data['email'].strip().lower()}.",
        invite_link=link.url,
    )


@staff_route(Permission.MANAGE_TEAM)
async def team_invite_revoke(request: Request) -> Response:
    """Withdraw a pending invitation."""
    raw = request.path_params["invite_id"]
    try:
        await team.revoke_invite(invite_id=raw, actor=staff_user(request), ip=client_ip(request))
    except team.TeamError as exc:
        return await _team_page(request, error=str(exc), status=400)
    return RedirectResponse("/admin/team", status_code=303)


async def _member(request: Request) -> StaffUser | None:
    return await StaffUser.get_or_none(id=request.path_params["user_id"])


@staff_route(Permission.MANAGE_TEAM)
async def team_member_role(request: Request) -> Response:
    """Change a teammate's role."""
    target = await _member(request)
    data = await form_fields(request, "role", max_length=32)
    role = _role(data["role"])
    if target is None or role is None:
        return await _team_page(request, error="Choose a teammate and a role.", status=400)
    try:
        await team.set_role(
            target=target, role=role, actor=staff_user(request), ip=client_ip(request)
        )
    except team.TeamError as exc:
        return await _team_page(request, error=str(exc), status=400)
    return await _team_page(request, notice=f"{target.name} is now {role.value}.")


@staff_route(Permission.MANAGE_TEAM)
async def team_member_active(request: Request) -> Response:
    """Disable or re-enable a teammate."""
    target = await _member(request)
    data = await form_fields(request, "active", max_length=8)
    if target is None:
        return await _team_page(request, error="That teammate no longer exists.", status=404)
    active = data["active"] == "1"
    try:
        await team.set_active(
            target=target, active=active, actor=staff_user(request), ip=client_ip(request)
        )
    except team.TeamError as exc:
        return await _team_page(request, error=str(exc), status=400)
    verb = "re-enabled" if active else "disabled and signed out everywhere"
    return await _team_page(request, notice=f"{target.name} was {verb}.")


@staff_route(Permission.MANAGE_SECURITY)
async def team_member_reset_2fa(request: Request) -> Response:
    """Switch off a teammate's 2FA after they lost their phone and codes (owners only)."""
    target = await _member(request)
    if target is None:
        return await _team_page(request, error="That teammate no longer exists.", status=404)
    actor = staff_user(request)
    await auth.disable_totp(user=target, actor=actor, ip=client_ip(request))
    await auth.end_all_sessions(user=target)
    return await _team_page(
        request,
        notice=f"Two-factor sign-in was reset for {target.name}; they set it up again "
        "at their next sign-in if the workspace requires it.",
    )


@staff_route(Permission.MANAGE_SETTINGS)
async def settings_page(request: Request) -> Response:
    """Workspace settings (name) and, for owners, security settings."""
    user = staff_user(request)
    current = await workspace.load()
    context: dict[str, object] = {
        "settings": current,
        "can_security": can(user.role, Permission.MANAGE_SECURITY),
        "active": "/admin/settings",
        **await _sender_context(current),
    }
    if request.method == "POST":
        data = await form_fields(request, "name", max_length=200)
        if not data["name"]:
            context["error"] = "Enter a workspace name."
            return render(request, "admin/settings.html", context, status=400)
        context["settings"] = await workspace.update(name=data["name"][:80])
        await audit.record(
            action="settings.changed",
            actor=user,
            ip=client_ip(request),
            details={"name": data["name"][:80]},
        )
        context["notice"] = "Settings saved."
    return render(request, "admin/settings.html", context)


@staff_route(Permission.MANAGE_SECURITY)
async def settings_security(request: Request) -> Response:
    """Require two-factor sign-in for all staff (owners only)."""
    user = staff_user(request)
    data = await form_fields(request, "require_2fa", max_length=8)
    required = data["require_2fa"] == "1"
    if required and not user.has_totp:
        return render(
            request,
            "admin/settings.html",
            {
                "settings": await workspace.load(),
                "can_security": True,
                "active": "/admin/settings",
                "error": "Turn on two-factor sign-in for your own account first, "
                "so you keep access.",
                **await _sender_context(await workspace.load()),
            },
            status=400,
        )
    await workspace.update(require_2fa=required)
    await audit.record(
        action="settings.require_2fa",
        actor=user,
        ip=client_ip(request),
        details={"required": required},
    )
    return RedirectResponse("/admin/settings", status_code=303)


async def _sender_context(
    stored: workspace.WorkspaceSettings, typed: senders.SenderForm | None = None
) -> dict[str, object]:
    """What the "Email sender" card shows: the form (as stored or as typed) and the DKIM record."""
    sender = await senders.current()
    domain = sender.address.rpartition("@")[2]
    selector = stored.dkim_selector or senders.DEFAULT_SELECTOR
    form = typed or senders.SenderForm(
        name=stored.sender_name,
        address=stored.sender_address,
        reply_to=stored.reply_to,
        selector=stored.dkim_selector,
        dkim_enabled=stored.dkim_enabled,
    )
    return {
        "sender": sender,
        "sender_form": form,
        "sender_errors": {},
        "dkim_record": senders.stored_record(stored),
        "dkim_record_name": f"{selector}._domainkey.{domain}",
        "sender_checks": None,
    }


async def _settings_with_sender(
    request: Request, typed: senders.SenderForm | None = None, **extra: object
) -> dict[str, object]:
    user = staff_user(request)
    stored = await workspace.load()
    context: dict[str, object] = {
        "settings": stored,
        "can_security": can(user.role, Permission.MANAGE_SECURITY),
        "active": "/admin/settings",
        **await _sender_context(stored, typed),
    }
    context.update(extra)
    return context


@staff_route(Permission.MANAGE_SETTINGS)
async def settings_sender(request: Request) -> Response:
    """Save who emails come from: name, address, Reply-To and DKIM signing."""
    user = staff_user(request)
    data = await form_fields(
        request,
        "sender_name",
        "sender_address",
        "reply_to",
        "dkim_selector",
        "dkim_enabled",
        max_length=300,
    )
    typed = senders.SenderForm(
        name=data["sender_name"],
        address=data["sender_address"],
        reply_to=data["reply_to"],
        selector=data["dkim_selector"],
        dkim_enabled=data["dkim_enabled"] == "on",
    )
    changes, errors = await senders.save(typed)
    if errors:
        context = await _settings_with_sender(
            request,
            typed=typed,
            sender_errors=errors.errors,
            error="Check the highlighted sender fields.",
        )
        return render(request, "admin/settings.html", context, status=400)
    if changes:
        delivery.forget_message_domain()  # new Message-IDs name the new sender's domain
        await audit.record(
            action="settings.sender", actor=user, ip=client_ip(request), details=changes
        )
    context = await _settings_with_sender(request, notice="Email sender saved.")
    return render(request, "admin/settings.html", context)


@staff_route(Permission.MANAGE_SETTINGS)
async def settings_sender_dkim_key(request: Request) -> Response:
    """Generate a new DKIM key and show the DNS record to publish (signing waits for it)."""
    user = staff_user(request)
    await senders.new_key()
    stored = await workspace.load()
    await audit.record(
        action="settings.sender",
        actor=user,
        ip=client_ip(request),
        details={"dkim_key": "generated", "dkim_selector": stored.dkim_selector},
    )
    context = await _settings_with_sender(
        request,
        notice="A new DKIM key was generated. Publish the TXT record below, check it, "
        "then turn on signing.",
    )
    return render(request, "admin/settings.html", context)


@staff_route(Permission.MANAGE_SETTINGS)
async def settings_sender_check(request: Request) -> Response:
    """Look up the sender domain's SPF, DKIM and DMARC records and show what to fix."""
    user = staff_user(request)
    domain, checks = await senders.check_current()
    await audit.record(
        action="settings.sender_check",
        actor=user,
        ip=client_ip(request),
        target=domain,
        details={check.name: check.ok for check in checks},
    )
    context = await _settings_with_sender(request, sender_checks=checks, checked_domain=domain)
    return render(request, "admin/settings.html", context)


@staff_route(Permission.MANAGE_SETTINGS)
async def settings_analytics(request: Request) -> Response:
    """Save how long engagement events are kept (0: forever)."""
    user = staff_user(request)
    typed = (await form_fields(request, "retention_days", max_length=12))["retention_days"]
    try:
        days = analytics_events.parse_retention(typed)
    except ValueError as error:
        context = await _settings_with_sender(
            request,
            retention_error=str(error),
            retention_typed=typed,
            error="Check the highlighted analytics field.",
        )
        return render(request, "admin/settings.html", context, status=400)
    before = (await workspace.load()).analytics_retention_days
    if days != before:
        await workspace.update(analytics_retention_days=days)
        await audit.record(
            action="settings.analytics",
            actor=user,
            ip=client_ip(request),
            details={"retention_days": days, "before": before},
        )
    context = await _settings_with_sender(request, notice="Analytics retention saved.")
    return render(request, "admin/settings.html", context)


@staff_route(Permission.VIEW_AUDIT)
async def audit_log(request: Request) -> Response:
    """Security-relevant actions, newest first."""
    page = _page(request)
    events = await audit.recent(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render(
        request,
        "admin/audit.html",
        {
            "events": events[:PAGE_SIZE],
            "page": page,
            "has_more": len(events) > PAGE_SIZE,
            "active": "/admin/audit",
        },
    )
