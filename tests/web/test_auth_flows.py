"""Staff accounts through the real HTTP forms: sign-in, sessions, CSRF, 2FA, team and resets."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from email.message import EmailMessage

import httpx
import pyotp
import pytest

from app.models import (
    AuditEvent,
    OneTimeToken,
    RecoveryCode,
    Role,
    StaffSession,
    StaffUser,
    TokenPurpose,
)
from app.services import auth, team, workspace
from app.settings import get_settings, use_settings
from emails import MemoryMailer
from tests.conftest import PASSWORD, csrf_token, login, make_user, post_form

SESSION = "encore_session"
LOCAL_IP = "127.0.0.1"  # what the test transport reports as the client address
BAD_LOGIN = "That email address and password do not match an active account."
BAD_CODE = "That code is not valid. Codes change every 30 seconds and each works only once."
NEW_PASSWORD = "a brand new passphrase"

Browsers = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def browsers(client: httpx.AsyncClient) -> AsyncIterator[Browsers]:
    """Open more browsers (own cookie jars, optionally another client IP) on the same app."""
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    opened: list[httpx.AsyncClient] = []

    def open_browser(ip: str = LOCAL_IP) -> httpx.AsyncClient:
        browser = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=transport.app, client=(ip, 40000)),
            base_url="http://testserver",
            headers={"accept": "text/html"},
        )
        opened.append(browser)
        return browser

    yield open_browser
    for browser in opened:
        await browser.aclose()


# --- reading pages and emails ------------------------------------------------------------------


def _error(page: httpx.Response) -> str:
    match = re.search(r'class="alert alert-error"[^>]*>([^<]*)<', page.text)
    assert match, f"no error shown ({page.status_code})"
    return html.unescape(match.group(1)).strip()


def _hidden(page: httpx.Response, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page.text)
    assert match, f"no field {name} ({page.status_code})"
    return html.unescape(match.group(1))


def _secret(page: httpx.Response) -> str:
    match = re.search(r'data-testid="totp-secret"[^>]*>([^<]*)<', page.text)
    assert match, f"no TOTP secret shown ({page.status_code})"
    return "".join(match.group(1).split())


def _recovery_codes(page: httpx.Response) -> list[str]:
    match = re.search(r'data-testid="recovery-codes"[^>]*>(.*?)</ul>', page.text, re.S)
    assert match, f"no recovery codes shown ({page.status_code})"
    return re.findall(r"<code>([^<]+)</code>", match.group(1))


def _body(message: EmailMessage) -> str:
    part = message.get_body(("plain",)) if message.is_multipart() else message
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def _link(message: EmailMessage, kind: str) -> str:
    match = re.search(rf"http://testserver(/{kind}/[A-Za-z0-9_-]+)", _body(message))
    assert match, f"no /{kind}/ link in the email"
    return match.group(1)


def _session_cookie(response: httpx.Response) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{SESSION}="):
            return header
    raise AssertionError("no session cookie set")


def _wrong_code(totp: pyotp.TOTP) -> str:
    """A 6-digit code that matches none of the steps the server might accept now."""
    now = time.time()
    near = {totp.at(now + offset) for offset in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444") if c not in near)


# --- signing in --------------------------------------------------------------------------------


async def _post(
    browser: httpx.AsyncClient, url: str, data: dict[str, str], *, token: str
) -> httpx.Response:
    """POST a form with a CSRF token the browser already read from one of its pages."""
    return await browser.post(url, data={**data, "csrf_token": token})


async def _sign_in(browser: httpx.AsyncClient, email: str, password: str = PASSWORD) -> None:
    response = await login(browser, email, password)
    assert response.status_code == 303, _error(response)
    assert response.headers["location"] == "/admin"


async def _sign_in_with_code(browser: httpx.AsyncClient, email: str, code: str) -> httpx.Response:
    response = await login(browser, email)
    assert response.status_code == 303
    assert response.headers["location"] == "/login/2fa?next=/admin"
    return await post_form(browser, "/login/2fa", {"code": code, "next": "/admin"})


async def _with_totp(user: StaffUser) -> tuple[pyotp.TOTP, list[str]]:
    """Switch on TOTP for a user as of a few minutes ago, so every current code is fresh."""
    secret = auth.new_totp_secret()
    totp = pyotp.TOTP(secret)
    earlier = auth.utcnow() - timedelta(minutes=10)
    codes = await auth.enable_totp(user=user, secret=secret, code=totp.at(earlier), now=earlier)
    assert codes is not None
    return totp, codes


async def _enrol(browser: httpx.AsyncClient) -> tuple[pyotp.TOTP, list[str]]:
    """Enrol an authenticator app through the page, as a person with a phone would."""
    page = await browser.get("/account/2fa")
    assert page.status_code == 200
    totp = pyotp.TOTP(_secret(page))
    done = await browser.post(
        "/account/2fa",
        data={
            "sealed": _hidden(page, "sealed"),
            "code": totp.now(),
            "csrf_token": _hidden(page, "csrf_token"),
        },
    )
    assert done.status_code == 200
    return totp, _recovery_codes(done)


async def _signed_in(browser: httpx.AsyncClient) -> bool:
    page = await browser.get("/admin")
    if page.status_code == 200:
        return True
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")
    return False


# --- passwords ---------------------------------------------------------------------------------


async def test_wrong_password_is_refused_and_keeps_the_email_typed(
    client: httpx.AsyncClient,
) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    wrong = await login(client, "owner@example.com", "not my password")
    assert wrong.status_code == 401
    assert _error(wrong) == BAD_LOGIN
    assert re.search(r'name="email"[^>]*value="owner@example.com"', wrong.text)
    assert SESSION not in client.cookies

    # An unknown address gets exactly the same answer: no account enumeration.
    unknown = await login(client, "nobody@example.com", PASSWORD)
    assert unknown.status_code == 401
    assert _error(unknown) == BAD_LOGIN

    empty = await post_form(client, "/login", {"email": "owner@example.com", "password": ""})
    assert empty.status_code == 400
    assert _error(empty) == "Enter your email address and password."

    # An absurdly long address is just another wrong one, not a server error.
    long = await login(client, "a" * 300 + "@example.com", PASSWORD)
    assert long.status_code == 401

    await _sign_in(client, "Owner@Example.com")
    assert await _signed_in(client)


async def test_a_disabled_account_cannot_sign_in(client: httpx.AsyncClient) -> None:
    owner = await make_user(Role.OWNER)
    editor = await make_user(Role.EDITOR)
    await team.set_active(target=editor, active=False, actor=owner)
    refused = await login(client, editor.email)
    assert refused.status_code == 401
    assert _error(refused) == BAD_LOGIN


async def test_weak_passwords_are_refused_clearly_and_create_nothing(
    browsers: Browsers, mailer: MemoryMailer
) -> None:
    owner = await make_user(Role.OWNER)
    await team.invite(email="nina.new@example.com", role=Role.EDITOR, actor=owner)
    link = _link(mailer.sent[0], "invite")
    newcomer = browsers()
    token = await csrf_token(newcomer, link)

    short = await _post(newcomer, link, {"name": "Nina", "password": "short"}, token=token)
    assert short.status_code == 400
    assert _error(short) == "Use at least 10 characters."
    assert _hidden(short, "csrf_token")  # the form is shown again
    assert 'value="Nina"' in short.text  # with the name typed kept

    with_email = await _post(
        newcomer, link, {"name": "Nina", "password": "nina.new-is-me!"}, token=token
    )
    assert with_email.status_code == 400
    assert _error(with_email) == "Do not use your name or email address in your password."
    assert await StaffUser.filter(email="nina.new@example.com").count() == 0

    # The invitation was not used up by the failed attempts.
    ok = await _post(newcomer, link, {"name": "Nina", "password": PASSWORD}, token=token)
    assert ok.status_code == 200
    assert "Welcome to the team" in ok.text
    user = await StaffUser.get(email="nina.new@example.com")
    assert user.password_hash.startswith("$argon2id$")
    row = await StaffUser.get(id=user.id).values()
    assert all(PASSWORD not in str(value) for value in row.values())


# --- rate limits -------------------------------------------------------------------------------


async def test_account_is_locked_after_repeated_failures_even_with_the_right_password(
    client: httpx.AsyncClient,
) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    settings = get_settings()
    for _ in range(settings.login_max_failures_per_account):
        assert (await login(client, "owner@example.com", "wrong password!")).status_code == 401

    locked = await login(client, "owner@example.com", PASSWORD)
    assert locked.status_code == 429
    retry_after = locked.headers["retry-after"]
    assert retry_after.isdigit()
    assert 0 < int(retry_after) <= settings.login_window_minutes * 60 + 1
    minutes = (int(retry_after) + 59) // 60
    assert _error(locked) == (
        f"Too many attempts. For your security, sign-in is paused: try again in {minutes} minutes."
    )
    assert re.search(r'name="email"[^>]*value="owner@example.com"', locked.text)
    assert not await _signed_in(client)
    assert await StaffSession.all().count() == 0


async def test_one_address_trying_many_accounts_is_locked_out(browsers: Browsers) -> None:
    use_settings(
        get_settings().model_copy(
            update={"login_max_failures_per_ip": 4, "login_max_failures_per_account": 3}
        )
    )
    await make_user(Role.OWNER, email="owner@example.com")
    attacker = browsers("203.0.113.66")
    token = await csrf_token(attacker)
    for i in range(4):
        guess = await _post(
            attacker, "/login", {"email": f"user{i}@example.com", "password": "guess"}, token=token
        )
        assert guess.status_code == 401

    locked = await _post(
        attacker, "/login", {"email": "owner@example.com", "password": PASSWORD}, token=token
    )
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert "Too many attempts" in _error(locked)

    # The account itself is not locked: its owner signs in from elsewhere.
    owner = browsers("198.51.100.20")
    await _sign_in(owner, "owner@example.com")


# --- sessions ----------------------------------------------------------------------------------


async def test_session_cookie_is_httponly_samesite_and_secure_over_https(
    client: httpx.AsyncClient, browsers: Browsers
) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    response = await login(client, "owner@example.com")
    cookie = _session_cookie(response).lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie
    assert "path=/" in cookie

    # Behind an HTTPS public URL the cookies are Secure even when the proxy speaks HTTP.
    other = browsers()
    token = await csrf_token(other)
    use_settings(get_settings().model_copy(update={"public_base_url": "https://encore.example"}))
    secure = await other.post(
        "/login",
        data={"email": "owner@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert secure.status_code == 303
    cookie = _session_cookie(secure).lower()
    assert "secure" in cookie.split("; ")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


async def test_signing_in_again_replaces_the_session(
    client: httpx.AsyncClient, browsers: Browsers
) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    await _sign_in(client, "owner@example.com")
    first = client.cookies[SESSION]
    # The sign-in form submitted again (say from another tab) while signed in.
    token = _hidden(await client.get("/admin"), "csrf_token")
    again = await _post(
        client, "/login", {"email": "owner@example.com", "password": PASSWORD}, token=token
    )
    assert again.status_code == 303
    second = client.cookies[SESSION]
    assert first != second
    assert await StaffSession.all().count() == 1

    replay = browsers()
    replay.cookies.set(SESSION, first)
    assert not await _signed_in(replay)
    assert await _signed_in(client)


async def test_token_changes_between_the_second_factor_and_full_sign_in(
    client: httpx.AsyncClient, browsers: Browsers
) -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    totp, _ = await _with_totp(owner)
    response = await login(client, "owner@example.com")
    assert response.headers["location"] == "/login/2fa?next=/admin"
    half = client.cookies[SESSION]
    # Half signed in is not signed in.
    admin = await client.get("/admin")
    assert admin.status_code == 303
    assert admin.headers["location"] == "/login/2fa"

    done = await post_form(client, "/login/2fa", {"code": totp.now(), "next": "/admin"})
    assert done.status_code == 303
    assert done.headers["location"] == "/admin"
    full = client.cookies[SESSION]
    assert full != half
    assert await _signed_in(client)

    replay = browsers()
    replay.cookies.set(SESSION, half)
    assert not await _signed_in(replay)
    second = await replay.get("/login/2fa")
    assert second.status_code == 303
    assert second.headers["location"] == "/login"


async def test_sign_out_ends_the_session_on_the_server(
    client: httpx.AsyncClient, browsers: Browsers
) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    await _sign_in(client, "owner@example.com")
    token = client.cookies[SESSION]
    page = await client.get("/admin")
    out = await client.post("/logout", data={"csrf_token": _hidden(page, "csrf_token")})
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    assert SESSION not in client.cookies
    assert await StaffSession.all().count() == 0

    # A copy of the old cookie is worthless.
    replay = browsers()
    replay.cookies.set(SESSION, token)
    admin = await replay.get("/admin")
    assert admin.status_code == 303
    assert admin.headers["location"] == "/login?next=/admin"


async def test_disabling_a_user_signs_them_out_everywhere(
    client: httpx.AsyncClient, browsers: Browsers
) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    editor = await make_user(Role.EDITOR, email="eddie@example.com", name="Eddie")
    laptop, phone = browsers(), browsers()
    await _sign_in(laptop, "eddie@example.com")
    await _sign_in(phone, "eddie@example.com")
    await _sign_in(client, "owner@example.com")

    page = await client.get("/admin/team")
    done = await client.post(
        f"/admin/team/{editor.id}/active",
        data={"active": "0", "csrf_token": _hidden(page, "csrf_token")},
    )
    assert done.status_code == 200
    assert "Eddie was disabled and signed out everywhere." in done.text
    assert not await _signed_in(laptop)
    assert not await _signed_in(phone)
    assert await StaffSession.filter(user_id=editor.id).count() == 0
    assert (await login(laptop, "eddie@example.com")).status_code == 401


# --- CSRF --------------------------------------------------------------------------------------


async def _owner_on_team_page(client: httpx.AsyncClient) -> str:
    await make_user(Role.OWNER, email="owner@example.com")
    await _sign_in(client, "owner@example.com")
    page = await client.get("/admin/team")
    assert page.status_code == 200
    return _hidden(page, "csrf_token")


async def test_post_without_csrf_token_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, mailer: MemoryMailer
) -> None:
    token = await _owner_on_team_page(client)
    refused = await client.post(
        "/admin/team/invite", data={"email": "nina@example.com", "role": "editor"}
    )
    assert refused.status_code == 403
    assert "did not carry the form's security token" in html.unescape(refused.text)
    assert await OneTimeToken.filter(purpose=TokenPurpose.INVITE).count() == 0
    assert mailer.sent == []

    owner = await StaffUser.get(email="owner@example.com")
    change = await client.post("/account", data={"current": PASSWORD, "new": NEW_PASSWORD})
    assert change.status_code == 403
    assert (await StaffUser.get(id=owner.id)).password_hash == owner.password_hash

    # The same requests with the token go through.
    ok = await client.post(
        "/admin/team/invite",
        data={"email": "nina@example.com", "role": "editor", "csrf_token": token},
    )
    assert ok.status_code == 200
    assert len(mailer.sent) == 1


async def test_wrong_or_foreign_csrf_token_is_refused(
    client: httpx.AsyncClient, browsers: Browsers, mailer: MemoryMailer
) -> None:
    token = await _owner_on_team_page(client)
    data = {"email": "nina@example.com", "role": "editor"}
    wrong = await client.post("/admin/team/invite", data={**data, "csrf_token": token[::-1]})
    assert wrong.status_code == 403
    assert "does not match" in wrong.text

    # A token is bound to the browser's own cookie: one read from another browser fails.
    stranger = browsers()
    foreign = await csrf_token(stranger)
    assert foreign != token
    crossed = await client.post("/admin/team/invite", data={**data, "csrf_token": foreign})
    assert crossed.status_code == 403
    assert "does not match" in crossed.text

    # Scripts may send the token in a header instead; API callers get JSON errors.
    as_json = await client.post(
        "/admin/team/invite", data=data, headers={"accept": "application/json"}
    )
    assert as_json.status_code == 403
    assert as_json.json()["error"] == "csrf"
    assert await OneTimeToken.filter(purpose=TokenPurpose.INVITE).count() == 0
    assert mailer.sent == []
    header = await client.post("/admin/team/invite", data=data, headers={"x-csrf-token": token})
    assert header.status_code == 200
    assert await OneTimeToken.filter(purpose=TokenPurpose.INVITE, email="nina@example.com").exists()


async def test_csrf_token_from_before_sign_in_is_worthless_after(
    client: httpx.AsyncClient, browsers: Browsers, mailer: MemoryMailer
) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    before = await csrf_token(client)
    response = await client.post(
        "/login",
        data={"email": "owner@example.com", "password": PASSWORD, "csrf_token": before},
    )
    assert response.status_code == 303
    refused = await client.post(
        "/admin/team/invite",
        data={"email": "nina@example.com", "role": "editor", "csrf_token": before},
    )
    assert refused.status_code == 403
    assert mailer.sent == []

    # A browser that never got a CSRF cookie is refused with a hint to reload.
    fresh = browsers()
    first = await fresh.post("/login", data={"email": "owner@example.com", "password": PASSWORD})
    assert first.status_code == 403
    assert "reload the page" in first.text


# --- two-factor sign-in ------------------------------------------------------------------------


async def test_enrolling_totp_over_http_then_signing_in_with_it(
    client: httpx.AsyncClient,
) -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    await _sign_in(client, "owner@example.com")
    page = await client.get("/account/2fa")
    assert page.status_code == 200
    secret = _secret(page)
    totp = pyotp.TOTP(secret)
    assert "<svg" in page.text  # the QR code

    wrong = await client.post(
        "/account/2fa",
        data={
            "sealed": _hidden(page, "sealed"),
            "code": _wrong_code(totp),
            "csrf_token": _hidden(page, "csrf_token"),
        },
    )
    assert wrong.status_code == 400
    assert "did not match" in _error(wrong)
    assert not (await StaffUser.get(id=owner.id)).has_totp
    # The same secret is offered again so the person can simply retry.
    assert _secret(wrong) == secret

    # A sealed value that was tampered with does not switch anything on.
    tampered = await client.post(
        "/account/2fa",
        data={
            "sealed": "x" + _hidden(page, "sealed"),
            "code": totp.now(),
            "csrf_token": _hidden(page, "csrf_token"),
        },
    )
    assert tampered.status_code == 303
    assert not (await StaffUser.get(id=owner.id)).has_totp

    before = client.cookies[SESSION]
    enrol_code = totp.now()
    done = await client.post(
        "/account/2fa",
        data={
            "sealed": _hidden(page, "sealed"),
            "code": enrol_code,
            "csrf_token": _hidden(page, "csrf_token"),
        },
    )
    assert done.status_code == 200
    codes = _recovery_codes(done)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert client.cookies[SESSION] != before
    assert await _signed_in(client)
    stored = await StaffUser.get(id=owner.id)
    assert stored.has_totp
    assert stored.totp_secret is not None
    assert secret not in stored.totp_secret

    # The codes are shown once only.
    later = await client.get("/account/2fa")
    assert later.status_code == 200
    assert "10 unused recovery codes" in later.text
    assert not any(code in later.text for code in codes)

    # Signing in now needs the second factor.
    page = await client.get("/admin")
    await client.post("/logout", data={"csrf_token": _hidden(page, "csrf_token")})
    response = await login(client, "owner@example.com")
    assert response.status_code == 303
    assert response.headers["location"] == "/login/2fa?next=/admin"
    assert not await _signed_in(client)

    refused = await post_form(client, "/login/2fa", {"code": _wrong_code(totp)})
    assert refused.status_code == 401
    assert _error(refused) == BAD_CODE
    replayed = await post_form(client, "/login/2fa", {"code": enrol_code})
    assert replayed.status_code == 401
    assert _error(replayed) == BAD_CODE
    assert not await _signed_in(client)

    accepted = await post_form(
        client, "/login/2fa", {"code": totp.at(time.time() + 30), "next": "/admin"}
    )
    assert accepted.status_code == 303
    assert accepted.headers["location"] == "/admin"
    assert await _signed_in(client)


async def test_the_same_code_cannot_be_used_in_two_sessions(
    client: httpx.AsyncClient, browsers: Browsers
) -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    totp, _ = await _with_totp(owner)
    attacker = browsers("203.0.113.66")
    for browser in (client, attacker):
        response = await login(browser, "owner@example.com")
        assert response.headers["location"] == "/login/2fa?next=/admin"

    code = totp.now()
    mine = await post_form(client, "/login/2fa", {"code": code})
    assert mine.status_code == 303
    theirs = await post_form(attacker, "/login/2fa", {"code": code})
    assert theirs.status_code == 401
    assert _error(theirs) == BAD_CODE
    assert not await _signed_in(attacker)
    assert await _signed_in(client)


async def test_recovery_code_signs_in_once_and_is_stored_hashed(client: httpx.AsyncClient) -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    _, codes = await _with_totp(owner)
    rows = await RecoveryCode.filter(user_id=owner.id).values()
    assert len(rows) == 10
    stored = " ".join(str(value) for row in rows for value in row.values())
    assert not any(code in stored or code.replace("-", "") in stored for code in codes)

    used = await _sign_in_with_code(client, "owner@example.com", codes[3])
    assert used.status_code == 303
    assert used.headers["location"] == "/admin"
    account = await client.get("/account")
    assert "9 recovery codes left" in account.text

    await client.post("/logout", data={"csrf_token": _hidden(account, "csrf_token")})
    again = await _sign_in_with_code(client, "owner@example.com", codes[3])
    assert again.status_code == 401
    assert _error(again) == BAD_CODE
    assert not await _signed_in(client)
    other = await post_form(client, "/login/2fa", {"code": codes[4].upper()})
    assert other.status_code == 303


async def test_renewing_recovery_codes_invalidates_the_old_ones(
    client: httpx.AsyncClient,
) -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    totp, old = await _with_totp(owner)
    assert (await _sign_in_with_code(client, "owner@example.com", totp.now())).status_code == 303

    page = await client.get("/account/2fa")
    renewed = await client.post(
        "/account/2fa/recovery-codes", data={"csrf_token": _hidden(page, "csrf_token")}
    )
    assert renewed.status_code == 200
    new = _recovery_codes(renewed)
    assert len(new) == 10
    assert not set(new) & set(old)
    assert await AuditEvent.filter(action="2fa.recovery_codes_renewed", ip=LOCAL_IP).exists()

    await client.post("/logout", data={"csrf_token": _hidden(renewed, "csrf_token")})
    stale = await _sign_in_with_code(client, "owner@example.com", old[0])
    assert stale.status_code == 401
    fresh = await post_form(client, "/login/2fa", {"code": new[0]})
    assert fresh.status_code == 303


async def test_switching_2fa_off_needs_the_password(client: httpx.AsyncClient) -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    totp, _ = await _with_totp(owner)
    assert (await _sign_in_with_code(client, "owner@example.com", totp.now())).status_code == 303
    token = _hidden(await client.get("/account/2fa"), "csrf_token")

    wrong = await client.post(
        "/account/2fa/disable", data={"password": "not my password", "csrf_token": token}
    )
    assert wrong.status_code == 400
    assert _error(wrong) == "Your password is not correct."
    assert (await StaffUser.get(id=owner.id)).has_totp
    no_csrf = await client.post("/account/2fa/disable", data={"password": PASSWORD})
    assert no_csrf.status_code == 403
    assert (await StaffUser.get(id=owner.id)).has_totp

    off = await client.post(
        "/account/2fa/disable", data={"password": PASSWORD, "csrf_token": token}
    )
    assert off.status_code == 303
    assert off.headers["location"] == "/account"
    assert not (await StaffUser.get(id=owner.id)).has_totp
    assert await RecoveryCode.filter(user_id=owner.id).count() == 0
    event = await AuditEvent.get(action="2fa.disabled")
    assert (event.actor_email, event.ip) == ("owner@example.com", LOCAL_IP)


# --- requiring 2FA for everyone ----------------------------------------------------------------


async def test_requiring_2fa_sends_the_team_to_enrol_first(
    client: httpx.AsyncClient, browsers: Browsers
) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    editor = await make_user(Role.EDITOR, email="eddie@example.com")
    await make_user(Role.ANALYST, email="ann@example.com")
    already = browsers()
    await _sign_in(already, "ann@example.com")
    await _sign_in(client, "owner@example.com")
    settings_page = await client.get("/admin/settings")
    token = _hidden(settings_page, "csrf_token")

    # The owner must have 2FA first, so they keep access.
    refused = await client.post(
        "/admin/settings/security", data={"require_2fa": "1", "csrf_token": token}
    )
    assert refused.status_code == 400
    assert _error(refused).startswith("Turn on two-factor sign-in for your own account first")
    assert not (await workspace.load()).require_2fa

    await _enrol(client)
    token = _hidden(await client.get("/admin/settings"), "csrf_token")
    required = await client.post(
        "/admin/settings/security", data={"require_2fa": "1", "csrf_token": token}
    )
    assert required.status_code == 303
    assert (await workspace.load()).require_2fa
    event = await AuditEvent.get(action="settings.require_2fa")
    assert (event.actor_email, event.ip, event.details) == (
        "owner@example.com",
        LOCAL_IP,
        {"required": True},
    )

    eddie = browsers()
    response = await login(eddie, "eddie@example.com")
    assert response.status_code == 303
    assert response.headers["location"] == "/account/2fa"
    for path in ("/admin", "/admin/webinars", "/account", "/admin/contacts"):
        blocked = await eddie.get(path)
        assert blocked.status_code == 303, path
        assert blocked.headers["location"] == "/account/2fa", path
    # Someone signed in before the rule changed is sent to enrol as well.
    late = await already.get("/admin")
    assert late.status_code == 303
    assert late.headers["location"] == "/account/2fa"
    prompt = await eddie.get("/account/2fa")
    assert prompt.status_code == 200
    assert "Your workspace requires two-factor sign-in" in prompt.text

    _, codes = await _enrol(eddie)
    assert len(codes) == 10
    assert await _signed_in(eddie)

    # While required, 2FA cannot be switched off, even with the right password.
    token = _hidden(await eddie.get("/account/2fa"), "csrf_token")
    off = await eddie.post("/account/2fa/disable", data={"password": PASSWORD, "csrf_token": token})
    assert off.status_code == 400
    assert "required in this workspace" in _error(off)
    assert (await StaffUser.get(id=editor.id)).has_totp


# --- first owner -------------------------------------------------------------------------------


async def test_setup_link_creates_the_first_owner_once(
    client: httpx.AsyncClient, browsers: Browsers
) -> None:
    start = await client.get("/login")
    assert "Nobody can sign in yet" in start.text
    link = await team.issue_setup_link()
    assert link is not None
    path = link.url.removeprefix("http://testserver")

    form = await client.get(path)
    assert form.status_code == 200
    token = _hidden(form, "csrf_token")
    weak = await client.post(
        path,
        data={
            "email": "olivia@example.com",
            "name": "Olivia",
            "password": "olivia-rules",
            "csrf_token": token,
        },
    )
    assert weak.status_code == 400
    assert _error(weak) == "Do not use your name or email address in your password."
    assert 'value="olivia@example.com"' in weak.text
    assert await StaffUser.all().count() == 0

    created = await client.post(
        path,
        data={
            "email": "olivia@example.com",
            "name": "Olivia",
            "password": PASSWORD,
            "csrf_token": token,
        },
    )
    assert created.status_code == 303
    assert created.headers["location"] == "/account/2fa"
    owner = await StaffUser.get(email="olivia@example.com")
    assert owner.role == Role.OWNER
    assert await _signed_in(client)

    again = await browsers().get(path)
    assert again.status_code == 410
    assert "This setup link has expired or was already used." in again.text
    assert await team.issue_setup_link() is None


async def test_setup_link_is_refused_once_an_owner_exists(client: httpx.AsyncClient) -> None:
    link = await team.issue_setup_link()
    assert link is not None
    await make_user(Role.OWNER, email="owner@example.com")
    path = link.url.removeprefix("http://testserver")
    assert (await client.get(path)).status_code == 410
    token = await csrf_token(client)
    late = await client.post(
        path,
        data={
            "email": "mallory@example.com",
            "name": "M",
            "password": PASSWORD,
            "csrf_token": token,
        },
    )
    assert late.status_code == 410
    assert await StaffUser.all().count() == 1


async def test_expired_setup_link_is_gone(client: httpx.AsyncClient) -> None:
    link = await team.issue_setup_link(now=auth.utcnow() - team.SETUP_TTL - timedelta(minutes=1))
    assert link is not None
    response = await client.get(link.url.removeprefix("http://testserver"))
    assert response.status_code == 410
    assert "Link no longer valid" in response.text


# --- invitations -------------------------------------------------------------------------------


async def test_owner_invites_a_teammate_who_joins_with_that_role(
    client: httpx.AsyncClient, browsers: Browsers, mailer: MemoryMailer
) -> None:
    await make_user(Role.OWNER, email="owner@example.com", name="Olivia Owner")
    await _sign_in(client, "owner@example.com")
    sent = await post_form(
        client,
        "/admin/team/invite",
        {"email": "Nina@Example.com", "role": "analyst"},
        page="/admin/team",
    )
    assert sent.status_code == 200
    assert "Invitation sent to nina@example.com." in sent.text
    assert len(mailer.sent) == 1
    message = mailer.sent[0]
    assert message["To"] == "nina@example.com"
    assert message["Subject"] == "Olivia Owner invited you to Encore"
    link = _link(message, "invite")
    assert "as analyst" in _body(message)
    # Only a hash of the link's token is stored.
    row = await OneTimeToken.get(purpose=TokenPurpose.INVITE)
    assert link.rsplit("/", 1)[1] not in row.token_hash

    nina = browsers()
    form = await nina.get(link)
    assert form.status_code == 200
    assert "nina@example.com" in form.text
    assert "<strong>analyst</strong>" in form.text
    joined = await _post(
        nina, link, {"name": "Nina", "password": PASSWORD}, token=_hidden(form, "csrf_token")
    )
    assert joined.status_code == 200
    assert "Your account is ready" in joined.text

    await _sign_in(nina, "nina@example.com")
    user = await StaffUser.get(email="nina@example.com")
    assert (user.role, user.name) == (Role.ANALYST, "Nina")
    assert (await nina.get("/admin/team")).status_code == 403

    used = await browsers().get(link)
    assert used.status_code == 410
    assert "This invitation has expired or was already used." in used.text


async def test_admin_cannot_invite_an_owner(
    client: httpx.AsyncClient, mailer: MemoryMailer
) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    await make_user(Role.ADMIN, email="admin@example.com")
    await _sign_in(client, "admin@example.com")
    page = await client.get("/admin/team")
    assert page.status_code == 200
    assert '<option value="owner"' not in page.text
    refused = await client.post(
        "/admin/team/invite",
        data={
            "email": "boss@example.com",
            "role": "owner",
            "csrf_token": _hidden(page, "csrf_token"),
        },
    )
    assert refused.status_code == 400
    assert _error(refused) == "You cannot give that role."
    assert 'value="boss@example.com"' in refused.text
    assert mailer.sent == []
    assert await OneTimeToken.filter(purpose=TokenPurpose.INVITE).count() == 0

    # An admin can invite other roles.
    ok = await client.post(
        "/admin/team/invite",
        data={
            "email": "ed@example.com",
            "role": "editor",
            "csrf_token": _hidden(page, "csrf_token"),
        },
    )
    assert ok.status_code == 200
    assert len(mailer.sent) == 1


async def test_expired_and_revoked_invitations_are_gone(
    client: httpx.AsyncClient, browsers: Browsers, mailer: MemoryMailer
) -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    await team.invite(
        email="late@example.com",
        role=Role.EDITOR,
        actor=owner,
        now=auth.utcnow() - team.INVITE_TTL - timedelta(minutes=1),
    )
    expired = await browsers().get(_link(mailer.sent[0], "invite"))
    assert expired.status_code == 410
    assert "This invitation has expired or was already used." in expired.text

    await _sign_in(client, "owner@example.com")
    await post_form(
        client,
        "/admin/team/invite",
        {"email": "nina@example.com", "role": "editor"},
        page="/admin/team",
    )
    link = _link(mailer.sent[1], "invite")
    assert (await browsers().get(link)).status_code == 200
    invite = await OneTimeToken.get(purpose=TokenPurpose.INVITE, email="nina@example.com")
    page = await client.get("/admin/team")
    assert f"/admin/team/invites/{invite.id}/revoke" in page.text
    revoked = await client.post(
        f"/admin/team/invites/{invite.id}/revoke", data={"csrf_token": _hidden(page, "csrf_token")}
    )
    assert revoked.status_code == 303
    assert (await browsers().get(link)).status_code == 410
    event = await AuditEvent.get(action="user.invite_revoked")
    assert (event.actor_email, event.target, event.ip) == (
        "owner@example.com",
        "nina@example.com",
        LOCAL_IP,
    )


# --- password reset ----------------------------------------------------------------------------


async def test_reset_request_never_reveals_whether_an_account_exists(
    browsers: Browsers, mailer: MemoryMailer
) -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    disabled = await make_user(Role.EDITOR, email="gone@example.com")
    await team.set_active(target=disabled, active=False, actor=owner)

    pages = []
    for email in ("owner@example.com", "nobody@example.com", "gone@example.com"):
        browser = browsers()
        response = await post_form(browser, "/reset", {"email": email})
        assert response.status_code == 200
        pages.append(response.text)
    assert "Check your inbox" in pages[0]
    assert pages[0] == pages[1] == pages[2]
    assert [m["To"] for m in mailer.sent] == ["owner@example.com"]

    not_an_address = await post_form(browsers(), "/reset", {"email": "owner"})
    assert not_an_address.status_code == 400
    assert _error(not_an_address) == "Enter the email address of your account."


async def test_reset_sets_a_new_password_and_signs_out_everywhere(
    client: httpx.AsyncClient, browsers: Browsers, mailer: MemoryMailer
) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    await make_user(Role.EDITOR, email="eddie@example.com")
    stolen = browsers("203.0.113.66")
    await _sign_in(stolen, "eddie@example.com")

    await post_form(client, "/reset", {"email": "eddie@example.com"})
    assert len(mailer.sent) == 1
    assert mailer.sent[0]["Subject"] == "Reset your Encore password"
    link = _link(mailer.sent[0], "reset")

    form = await client.get(link)
    assert form.status_code == 200
    token = _hidden(form, "csrf_token")
    weak = await _post(client, link, {"password": "eddie-password"}, token=token)
    assert weak.status_code == 400
    assert _error(weak) == "Do not use your name or email address in your password."
    assert await _signed_in(stolen)

    done = await _post(client, link, {"password": NEW_PASSWORD}, token=token)
    assert done.status_code == 200
    assert "Password changed" in done.text
    assert not await _signed_in(stolen)
    assert await StaffSession.filter(user__email="eddie@example.com").count() == 0

    assert (await login(browsers(), "eddie@example.com", PASSWORD)).status_code == 401
    await _sign_in(browsers(), "eddie@example.com", NEW_PASSWORD)

    again = await client.get(link)
    assert again.status_code == 410
    assert "This reset link has expired or was already used." in again.text
    reuse = await _post(client, link, {"password": "another new passphrase"}, token=token)
    assert reuse.status_code == 410
    await _sign_in(browsers(), "eddie@example.com", NEW_PASSWORD)


async def test_expired_reset_link_is_gone(client: httpx.AsyncClient, mailer: MemoryMailer) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    await team.request_password_reset(
        email="owner@example.com", now=auth.utcnow() - team.RESET_TTL - timedelta(minutes=1)
    )
    response = await client.get(_link(mailer.sent[0], "reset"))
    assert response.status_code == 410
    assert "Link no longer valid" in response.text


async def test_at_most_three_reset_emails_per_quarter_hour(
    client: httpx.AsyncClient, mailer: MemoryMailer
) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    token = await csrf_token(client, "/reset")
    texts = set()
    for _ in range(5):
        response = await _post(client, "/reset", {"email": "owner@example.com"}, token=token)
        assert response.status_code == 200
        texts.add(response.text)
    assert len(texts) == 1  # the page does not reveal the limit either
    assert len(mailer.sent) == 3
    links = {_link(message, "reset") for message in mailer.sent}
    assert len(links) == 3


# --- roles -------------------------------------------------------------------------------------


async def test_admin_cannot_change_or_disable_an_owner(client: httpx.AsyncClient) -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    admin = await make_user(Role.ADMIN, email="admin@example.com")
    editor = await make_user(Role.EDITOR, email="eddie@example.com")
    await _sign_in(client, "admin@example.com")
    token = _hidden(await client.get("/admin/team"), "csrf_token")

    demote = await client.post(
        f"/admin/team/{owner.id}/role", data={"role": "editor", "csrf_token": token}
    )
    assert demote.status_code == 400
    assert _error(demote) == "Only an owner can change another owner."
    disable = await client.post(
        f"/admin/team/{owner.id}/active", data={"active": "0", "csrf_token": token}
    )
    assert disable.status_code == 400
    assert _error(disable) == "Only an owner can change another owner."
    promote = await client.post(
        f"/admin/team/{editor.id}/role", data={"role": "owner", "csrf_token": token}
    )
    assert promote.status_code == 400
    assert _error(promote) == "You cannot give that role."
    myself = await client.post(
        f"/admin/team/{admin.id}/active", data={"active": "0", "csrf_token": token}
    )
    assert myself.status_code == 400
    assert _error(myself) == "You cannot disable your own account."

    assert (await StaffUser.get(id=owner.id)).role == Role.OWNER
    assert (await StaffUser.get(id=owner.id)).is_active
    assert (await StaffUser.get(id=editor.id)).role == Role.EDITOR
    assert (await StaffUser.get(id=admin.id)).is_active


async def test_the_last_owner_cannot_step_down_or_disable_themselves(
    client: httpx.AsyncClient,
) -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    await _sign_in(client, "owner@example.com")
    token = _hidden(await client.get("/admin/team"), "csrf_token")
    demote = await client.post(
        f"/admin/team/{owner.id}/role", data={"role": "admin", "csrf_token": token}
    )
    assert demote.status_code == 400
    assert _error(demote) == "Encore needs at least one active owner."
    disable = await client.post(
        f"/admin/team/{owner.id}/active", data={"active": "0", "csrf_token": token}
    )
    assert disable.status_code == 400
    assert _error(disable) == "You cannot disable your own account."
    fresh = await StaffUser.get(id=owner.id)
    assert (fresh.role, fresh.is_active) == (Role.OWNER, True)
    assert await _signed_in(client)


# --- audit log ---------------------------------------------------------------------------------


async def test_security_events_are_audited_with_actor_and_address(
    browsers: Browsers, mailer: MemoryMailer
) -> None:
    ip = "192.0.2.10"
    await make_user(Role.OWNER, email="owner@example.com")
    editor = await make_user(Role.EDITOR, email="eddie@example.com", name="Eddie")
    owner = browsers(ip)
    assert (await login(owner, "owner@example.com", "not my password")).status_code == 401
    await _sign_in(owner, "owner@example.com")
    await _enrol(owner)
    token = _hidden(await owner.get("/admin/team"), "csrf_token")
    invited = await _post(
        owner, "/admin/team/invite", {"email": "nina@example.com", "role": "editor"}, token=token
    )
    assert invited.status_code == 200
    role = await _post(owner, f"/admin/team/{editor.id}/role", {"role": "analyst"}, token=token)
    assert role.status_code == 200
    assert "Eddie is now analyst." in role.text
    disabled = await _post(owner, f"/admin/team/{editor.id}/active", {"active": "0"}, token=token)
    assert disabled.status_code == 200

    def row(event: AuditEvent) -> tuple[str, str, str, str]:
        return (event.action, event.actor_email, event.target, event.ip)

    events = [row(e) for e in await AuditEvent.all().order_by("id")]
    for expected in [
        ("login.failed", "owner@example.com", "", ip),
        ("login.succeeded", "owner@example.com", "", ip),
        ("2fa.enabled", "owner@example.com", "", ip),
        ("user.invited", "owner@example.com", "nina@example.com", ip),
        ("user.role_changed", "owner@example.com", "eddie@example.com", ip),
        ("user.disabled", "owner@example.com", "eddie@example.com", ip),
    ]:
        assert expected in events, expected
    owner_id = (await StaffUser.get(email="owner@example.com")).id
    for action in ("login.succeeded", "2fa.enabled", "user.invited", "user.disabled"):
        assert await AuditEvent.filter(action=action, actor_id=owner_id).exists(), action
    changed = await AuditEvent.get(action="user.role_changed")
    assert changed.details == {"from": "editor", "to": "analyst"}

    log = await owner.get("/admin/audit")
    assert log.status_code == 200
    for action in (
        "login.failed",
        "login.succeeded",
        "2fa.enabled",
        "user.invited",
        "user.role_changed",
        "user.disabled",
    ):
        assert f"<code>{action}</code>" in log.text
    assert ip in log.text


async def test_only_owners_see_the_audit_log(browsers: Browsers) -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    await make_user(Role.ADMIN, email="admin@example.com")
    await make_user(Role.EDITOR, email="eddie@example.com")
    for email, status in (
        ("owner@example.com", 200),
        ("admin@example.com", 403),
        ("eddie@example.com", 403),
    ):
        browser = browsers()
        await _sign_in(browser, email)
        page = await browser.get("/admin/audit")
        assert page.status_code == status, email
        dashboard = await browser.get("/admin")
        assert ('href="/admin/audit"' in dashboard.text) == (status == 200), email
    anonymous = await browsers().get("/admin/audit")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/admin/audit"
