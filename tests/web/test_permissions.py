"""The access matrix: every route is public by name or guarded, and every guard holds per role."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pyotp
import pytest
from starlette.routing import Mount, Route

from app.models import (
    Account,
    AuditEvent,
    Caption,
    Contact,
    EmailStep,
    Interaction,
    LoginAttempt,
    OneTimeToken,
    OutboxMessage,
    RecoveryCode,
    Role,
    Schedule,
    Segment,
    StaffSession,
    StaffUser,
    TokenPurpose,
    Upload,
    Video,
    Webinar,
    WorkspaceSetting,
)
from app.services import auth, mail, sequences, team, tus_uploads, workspace
from app.services.permissions import ROLE_PERMISSIONS, Permission
from app.settings import get_settings
from app.web.routes import build_routes
from emails import compose
from tests.conftest import csrf_token, login, make_user

# Reachable without signing in. Anything else must carry a permission (set by `staff_route`).
PUBLIC_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/readyz",
        "/login",
        "/login/2fa",
        "/logout",
        "/setup/{token}",
        "/invite/{token}",
        "/reset",
        "/reset/{token}",
        "/media/{key:path}",
        # Public webinar pages and a registrant's token pages
        "/w/theme.css",
        "/w/{slug}",
        "/w/{slug}/register",
        "/w/{slug}/embed",
        "/j/{token}",
        "/j/{token}/registered",
        "/j/{token}/calendar.ics",
        "/j/{token}/files/{interaction_id:id}",
        # A contact's signed unsubscribe link (and its undo)
        "/u/{token}",
        "/u/{token}/resubscribe",
    }
)
MOUNTS = frozenset({"/static"})

# Form data for every guarded POST route (safe for a permitted role, yet a visible change if a
# guard let a refused request through), and the status a permitted role gets back.
# A new POST route fails `test_every_route_is_public_or_guarded` until it is listed here.
POST_CASES: dict[str, tuple[dict[str, str], int]] = {
    "/account": ({"current": "not my password", "new": "another long password"}, 400),
    "/account/2fa": ({"sealed": "", "code": ""}, 303),
    "/account/2fa/disable": ({"password": "not my password"}, 400),
    "/account/2fa/recovery-codes": ({}, 303),
    "/admin/team/invite": ({"email": "newcomer@example.com", "role": "analyst"}, 200),
    "/admin/team/invites/{invite_id:id}/revoke": ({}, 303),
    "/admin/team/{user_id:id}/role": ({"role": "editor"}, 200),
    "/admin/team/{user_id:id}/active": ({"active": "1"}, 200),
    "/admin/team/{user_id:id}/reset-2fa": ({}, 200),
    "/admin/settings": ({"name": "Encore"}, 200),
    "/admin/settings/security": ({"require_2fa": "0"}, 303),
    # The sender is stored, a DKIM key generated (both in the settings rows), and the check of
    # example.com (a reserved domain: no DNS lookup) is recorded in the audit log.
    "/admin/settings/sender": (
        {
            "sender_name": "Acme Events",
            "sender_address": "news@example.com",
            "dkim_selector": "encore",
        },
        200,
    ),
    "/admin/settings/sender/dkim-key": ({}, 200),
    "/admin/settings/sender/check": ({}, 200),
    "/admin/settings/analytics": ({"retention_days": "90"}, 200),
    # The world's video waits, so cancel fails it at once; then retry queues it again.
    "/admin/media/{video_id:id}/cancel": ({}, 303),
    "/admin/media/{video_id:id}/retry": ({}, 303),
    # No file: refused with the form shown again. Removing the world's captions is visible.
    "/admin/media/{video_id:id}/captions": ({"language": "en", "label": "English"}, 400),
    "/admin/media/{video_id:id}/captions/{caption_id:id}/delete": ({}, 303),
    # The webinar editor. An incomplete form is refused and shown again; publishing is refused
    # while the world's webinar has no schedule (the schedule routes come later in the table).
    "/admin/webinars/new": ({"title": "Another webinar"}, 303),
    "/admin/webinars/{webinar_id:id}": ({"title": "Renamed"}, 400),
    "/admin/webinars/{webinar_id:id}/preview": ({"headline": "Only a preview"}, 200),
    "/admin/webinars/{webinar_id:id}/publish": ({}, 409),
    "/admin/webinars/{webinar_id:id}/unpublish": ({}, 303),
    "/admin/webinars/{webinar_id:id}/duplicate": ({}, 303),
    "/admin/webinars/{webinar_id:id}/archive": ({}, 303),
    # The emails tab: each saves a visible change and redirects.
    "/admin/webinars/{webinar_id:id}/emails/late": ({"late_reminders": "latest"}, 303),
    "/admin/webinars/{webinar_id:id}/emails/new": (
        {
            "kind": "reminder",
            "subject": "Soon",
            "body": "Hi",
            "amount": "3",
            "unit": "hours",
            "enabled": "on",
        },
        303,
    ),
    "/admin/webinars/{webinar_id:id}/emails/{step_id:id}": (
        {"subject": "Changed", "body": "Hi", "amount": "5", "unit": "hours", "enabled": "on"},
        303,
    ),
    # Saving an on-demand schedule stores it (visible in the snapshot) and redirects.
    "/admin/webinars/{webinar_id:id}/schedule": (
        {"action": "save", "kind": "on_demand", "timezone": "UTC", "orphan_policy": "move"},
        303,
    ),
    # The room tab: an open chat with slow mode is stored (visible in the snapshot).
    "/admin/webinars/{webinar_id:id}/room": (
        {"action": "save", "chat_mode": "open", "slow_mode_seconds": "10"},
        303,
    ),
    # The interactions tab: a poll is added, the world's poll renamed, copied, then deleted
    # (each visible in the snapshot).
    "/admin/webinars/{webinar_id:id}/interactions/new": (
        {"kind": "poll", "title": "Added", "opens_at": "0:30", "option_1": "A", "option_2": "B"},
        303,
    ),
    "/admin/webinars/{webinar_id:id}/interactions/{interaction_id:id}": (
        {"title": "Renamed", "opens_at": "1:00", "option_1": "Yes", "option_2": "No"},
        303,
    ),
    "/admin/webinars/{webinar_id:id}/interactions/{interaction_id:id}/duplicate": ({}, 303),
    "/admin/webinars/{webinar_id:id}/interactions/{interaction_id:id}/delete": ({}, 303),
    # People: the world's account is renamed; merging into a free-mail domain is refused; then
    # the account is removed. A segment is added, the world's renamed, counted, exported, deleted.
    "/admin/accounts/{account_key}": ({"name": "Renamed Inc", "domains": "world.example"}, 303),
    "/admin/accounts/{account_key}/merge": ({"into": "gmail.com"}, 400),
    "/admin/accounts/{account_key}/delete": ({}, 303),
    "/admin/segments/new": ({"name": "Added", "attendance": "attended"}, 303),
    "/admin/segments/check": ({"attendance": "missed"}, 200),
    "/admin/segments/export.csv": ({"name": "Typed"}, 200),
    "/admin/segments/{segment_id:id}": ({"name": "Renamed segment"}, 303),
    "/admin/segments/{segment_id:id}/delete": ({}, 303),
    # The demo's sample history: the world has none, yet the removal is recorded in the audit log.
    "/admin/analytics/webinars/{webinar_id:id}/sample/remove": ({}, 303),
}


@dataclass(frozen=True)
class ApiCase:
    """A request to a JSON/tus endpoint (CSRF token in a header) and a permitted role's status."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    json: dict[str, Any] | None = None


TUS = {"Tus-Resumable": "1.0.0"}
# Every method of every `staff_route(..., api=True)` endpoint. {upload_id} is a 10-byte local
# upload of the acting user; S3 endpoints answer 409/404 as media are on local disk here.
# DELETE runs last (it removes the upload).
API_CASES: dict[tuple[str, str], ApiCase] = {
    ("OPTIONS", "/admin/uploads/tus"): ApiCase(204, TUS),
    ("POST", "/admin/uploads/tus"): ApiCase(201, {**TUS, "Upload-Length": "10"}),
    ("HEAD", "/admin/uploads/tus/{upload_id}"): ApiCase(200, TUS),
    ("PATCH", "/admin/uploads/tus/{upload_id}"): ApiCase(
        204,
        {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        b"abc",
    ),
    ("DELETE", "/admin/uploads/tus/{upload_id}"): ApiCase(204, TUS),
    ("POST", "/admin/uploads/{upload_id}/finish"): ApiCase(409),  # 3 of 10 bytes
    ("POST", "/admin/uploads/s3"): ApiCase(409, json={"filename": "a.mp4", "size": 10}),
    ("GET", "/admin/uploads/s3/{upload_id}"): ApiCase(404),
    ("HEAD", "/admin/uploads/s3/{upload_id}"): ApiCase(404),
    ("DELETE", "/admin/uploads/s3/{upload_id}"): ApiCase(404),
    ("POST", "/admin/uploads/s3/{upload_id}/sign"): ApiCase(404, json={"parts": [1]}),
    ("POST", "/admin/uploads/s3/{upload_id}/complete"): ApiCase(404, json={"parts": []}),
}
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@pytest.fixture(autouse=True)
def configured_mailer() -> None:
    """The outbox mailer the settings choose, whatever an earlier module left behind."""
    mail.use_mailer(None)


def _routes() -> list[Route]:
    routes: list[Route] = []
    for route in build_routes():
        if isinstance(route, Mount):
            assert route.path in MOUNTS, f"unexpected mount {route.path}"
            continue
        assert isinstance(route, Route), f"unexpected route type {route!r}"
        routes.append(route)
    return routes


ROUTES = _routes()
GUARDED = [route for route in ROUTES if route.path not in PUBLIC_PATHS]


@dataclass(frozen=True)
class Call:
    """One method on one guarded route."""

    method: str
    path: str  # as declared, e.g. /admin/team/{user_id:id}/role
    path_format: str  # with plain placeholders, e.g. /admin/team/{user_id}/role
    permission: Permission
    api: bool = False  # answers JSON 401/403 instead of redirecting or rendering a page

    def url(self, ids: dict[str, int | str]) -> str:
        return self.path_format.format(**ids)


def _calls() -> list[Call]:
    calls: list[Call] = []
    for route in GUARDED:
        permission = getattr(route.endpoint, "permission", None)
        if not isinstance(permission, Permission):
            continue  # reported by test_every_route_is_public_or_guarded
        api = bool(getattr(route.endpoint, "api", False))
        for method in sorted(route.methods or ()):
            calls.append(Call(method, route.path, route.path_format, permission, api))
    return calls


CALLS = _calls()


@dataclass(frozen=True)
class World:
    """An owner, a teammate to act on, a pending invitation and an outbox message."""

    owner: StaffUser
    target: StaffUser
    ids: dict[str, int | str]


async def _world() -> World:
    owner = await make_user(Role.OWNER, email="owner@example.com", name="Olivia Owner")
    target = await make_user(Role.ANALYST, email="target@example.com", name="Tara Target")
    await team.invite(email="invitee@example.com", role=Role.EDITOR, actor=owner)
    invite = await OneTimeToken.get(purpose=TokenPurpose.INVITE, email="invitee@example.com")
    await mail.OutboxMailer().send(
        compose(
            sender=get_settings().mail_from,
            to="someone@example.com",
            subject="Kept in the outbox",
            text="Hello.",
        )
    )
    message = await OutboxMessage.get(subject="Kept in the outbox")
    video = await Video.create(title="A recording", source_key="uploads/a/recording.mp4")
    caption = await Caption.create(
        video=video, language="de", label="Deutsch", key=f"videos/{video.id}/captions/de.vtt"
    )
    webinar = await Webinar.create(slug="world", title="A webinar")
    await sequences.ensure_steps(webinar)
    step = await EmailStep.filter(webinar_id=webinar.id, kind="reminder").first()
    assert step is not None
    poll = await Interaction.create(
        webinar=webinar,
        kind="poll",
        title="A poll",
        config={"options": ["Yes", "No"], "multiple": False},
        opens_at_seconds=30.0,
    )
    contact = await Contact.create(email="ann@world.example", company_domain="world.example")
    account = await Account.create(name="World Inc", domains=["world.example"])
    segment = await Segment.create(name="A segment", rules={"attendance": "attended"})
    return World(
        owner=owner,
        target=target,
        ids={
            "user_id": target.id,
            "invite_id": invite.id,
            "message_id": message.id,
            "video_id": video.id,
            "caption_id": caption.id,
            "webinar_id": webinar.id,
            "step_id": step.id,
            "interaction_id": poll.id,
            "chart": "funnel",  # an analytics chart's CSV file
            "contact_id": contact.id,
            "account_key": str(account.id),
            "segment_id": segment.id,
            "upload_id": await _upload_of(owner),
        },
    )


async def _upload_of(user: StaffUser) -> str:
    upload = await tus_uploads.create_local(
        user=user, filename="talk.mp4", content_type="video/mp4", size=10
    )
    return upload.id


async def _snapshot() -> dict[str, Any]:
    """Everything a guarded POST could change (session touches excluded)."""
    return {
        "users": await StaffUser.all()
        .order_by("id")
        .values_list("id", "email", "name", "role", "is_active", "password_hash", "totp_secret"),
        "tokens": await OneTimeToken.all().order_by("id").values_list("id", "used_at"),
        "sessions": await StaffSession.all()
        .order_by("id")
        .values_list("id", "token_hash", "stage"),
        "settings": await WorkspaceSetting.all().order_by("key").values_list("key", "value"),
        "audit": await AuditEvent.all().count(),
        "outbox": await OutboxMessage.all().count(),
        "recovery_codes": await RecoveryCode.all().count(),
        "login_attempts": await LoginAttempt.all().count(),
        "videos": await Video.all()
        .order_by("id")
        .values_list("id", "state", "error", "attempts", "cancel_requested"),
        "captions": await Caption.all().order_by("id").values_list("id", "language", "label"),
        "uploads": await Upload.all().order_by("id").values_list("id", "offset", "completed_at"),
        "schedules": await Schedule.all().order_by("id").values_list("id", "kind", "rules"),
        "webinars": await Webinar.all()
        .order_by("id")
        .values_list(
            "id",
            "slug",
            "title",
            "status",
            "theme",
            "landing",
            "registration_fields",
            "late_reminders",
            "chat_mode",
            "room",
        ),
        "interactions": await Interaction.all()
        .order_by("id")
        .values_list("id", "title", "opens_at_seconds", "config"),
        "email_steps": await EmailStep.all()
        .order_by("id")
        .values_list("id", "minutes", "subject", "body", "enabled"),
        "accounts": await Account.all().order_by("id").values_list("id", "name", "domains"),
        "segments": await Segment.all().order_by("id").values_list("id", "name", "rules"),
    }


async def _send(
    client: httpx.AsyncClient, call: Call, ids: dict[str, int | str], token: str
) -> httpx.Response:
    url = call.url(ids)
    case = API_CASES.get((call.method, call.path))
    if case is not None:
        headers = {**case.headers, "X-CSRF-Token": token}
        if case.json is not None:
            return await client.request(call.method, url, json=case.json, headers=headers)
        return await client.request(call.method, url, content=case.content, headers=headers)
    if call.method == "POST":
        data = {**POST_CASES[call.path][0], "csrf_token": token}
        return await client.post(url, data=data)
    return await client.request(call.method, url)


def _describe(call: Call, response: httpx.Response) -> str:
    return f"{call.method} {call.path} -> {response.status_code} {response.headers.get('location')}"


def test_every_route_is_public_or_guarded() -> None:
    paths = {route.path for route in ROUTES}
    assert paths >= PUBLIC_PATHS, f"stale public paths: {sorted(PUBLIC_PATHS - paths)}"
    unguarded = [
        route.path
        for route in GUARDED
        if not isinstance(getattr(route.endpoint, "permission", None), Permission)
    ]
    assert unguarded == [], f"routes without staff_route(permission): {unguarded}"
    public_but_guarded = [
        route.path
        for route in ROUTES
        if route.path in PUBLIC_PATHS and hasattr(route.endpoint, "permission")
    ]
    assert public_but_guarded == []
    form_posts = {call.path for call in CALLS if call.method == "POST" and not call.api}
    assert set(POST_CASES) == form_posts
    api_calls = {(call.method, call.path) for call in CALLS if call.api}
    assert set(API_CASES) == api_calls
    unsafe = {(call.method, call.path) for call in CALLS if call.method in UNSAFE}
    assert unsafe <= {("POST", path) for path in POST_CASES} | set(API_CASES)
    assert {call.method for call in CALLS} == {"GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"}
    # A path may have one route per method, each with its own permission (look vs. change).
    assert {call.path for call in CALLS} == {route.path for route in GUARDED}


async def test_anonymous_visitor_is_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    world = await _world()
    token = await csrf_token(client, "/login")
    before = await _snapshot()
    for call in CALLS:
        response = await _send(client, call, world.ids, token)
        if call.api:
            assert response.status_code == 401, _describe(call, response)
            if call.method != "HEAD":
                assert response.json()["message"] == "Sign in again to continue."
        elif call.method == "POST":
            assert response.status_code == 401, _describe(call, response)
            assert "Sign in again to continue." in response.text
        else:
            assert response.status_code == 303, _describe(call, response)
            expected = f"/login?next={quote(call.url(world.ids))}"
            assert response.headers["location"] == expected
    assert await _snapshot() == before

    # The query string comes back after sign-in too.
    response = await client.get("/admin/contacts?q=ann&page=2")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=" + quote("/admin/contacts?q=ann&page=2")


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_role_access_matrix(client: httpx.AsyncClient, role: Role) -> None:
    world = await _world()
    if role == Role.OWNER:
        user = world.owner
    else:
        user = await make_user(role, name=f"{role.value.title()} Person")
    signed_in = await login(client, user.email)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/admin"
    token = await csrf_token(client, "/admin")
    granted = ROLE_PERMISSIONS[role]
    denied = [call for call in CALLS if call.permission not in granted]
    # DELETE last: it removes what the other calls act on.
    allowed = sorted(
        (call for call in CALLS if call.permission in granted), key=lambda c: c.method == "DELETE"
    )
    assert allowed, f"{role} can reach nothing"

    before = await _snapshot()
    for call in denied:
        response = await _send(client, call, world.ids, token)
        assert response.status_code == 403, _describe(call, response)
        if call.method != "HEAD":
            assert "Not allowed" in response.text
            assert f"Your role ({role.value}) does not allow this." in response.text
    assert await _snapshot() == before, "a refused request changed something"

    # Uploads belong to whoever started them: act on one of this user's own.
    ids = {**world.ids, "upload_id": await _upload_of(user)}
    for call in allowed:
        response = await _send(client, call, ids, token)
        if call.api:
            expected = API_CASES[(call.method, call.path)].status
        elif call.method == "POST":
            expected = POST_CASES[call.path][1]
            assert response.status_code not in {401, 403}, _describe(call, response)
        else:
            expected = 200
        assert response.status_code == expected, _describe(call, response)

    # Nothing above signed the user out.
    assert (await client.get("/admin")).status_code == 200


async def test_password_stage_cannot_reach_admin(client: httpx.AsyncClient) -> None:
    world = await _world()
    user = world.target
    secret = auth.new_totp_secret()
    assert await auth.enable_totp(user=user, secret=secret, code=pyotp.TOTP(secret).now())

    signed_in = await login(client, user.email)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/login/2fa?next=/admin"
    response = await client.get("/admin")
    assert response.status_code == 303
    assert response.headers["location"] == "/login/2fa"

    token = await csrf_token(client, "/login/2fa")
    before = await _snapshot()
    for call in CALLS:
        response = await _send(client, call, world.ids, token)
        assert response.status_code == 303, _describe(call, response)
        assert response.headers["location"] == "/login/2fa", _describe(call, response)
    assert await _snapshot() == before


async def test_enrol_stage_can_only_set_up_two_factor(client: httpx.AsyncClient) -> None:
    world = await _world()
    await workspace.update(require_2fa=True)
    signed_in = await login(client, world.target.email)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/account/2fa"
    response = await client.get("/admin")
    assert response.status_code == 303
    assert response.headers["location"] == "/account/2fa"
    assert (await client.get("/account/2fa")).status_code == 200


async def test_disabling_a_user_ends_their_session_at_once(client: httpx.AsyncClient) -> None:
    world = await _world()
    editor = await make_user(Role.EDITOR, name="Eddie Editor")
    await login(client, editor.email)
    assert (await client.get("/admin")).status_code == 200
    editor_token = await csrf_token(client, "/admin")
    editor_cookies = httpx.Cookies(client.cookies)

    # The owner disables the editor from another browser.
    client.cookies.clear()
    await login(client, world.owner.email)
    owner_token = await csrf_token(client, "/admin/team")
    response = await client.post(
        f"/admin/team/{editor.id}/active", data={"active": "0", "csrf_token": owner_token}
    )
    assert response.status_code == 200
    assert "Eddie Editor was disabled" in response.text

    client.cookies = editor_cookies
    response = await client.get("/admin")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/admin"
    response = await client.post("/account/2fa/recovery-codes", data={"csrf_token": editor_token})
    assert response.status_code == 401


async def test_a_deactivated_account_is_refused_even_with_its_session_row(
    client: httpx.AsyncClient,
) -> None:
    # The flag alone suffices, even if the session row survived (e.g. changed in the database).
    world = await _world()
    await login(client, world.target.email)
    assert (await client.get("/admin")).status_code == 200
    assert await StaffSession.filter(user_id=world.target.id).count() == 1

    await StaffUser.filter(id=world.target.id).update(is_active=False)
    response = await client.get("/admin")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/admin"
    assert await StaffSession.filter(user_id=world.target.id).count() == 0

    again = await login(client, world.target.email)
    assert again.status_code == 401
