"""Staff accounts at the service level: time is controlled by passing `now=`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pyotp
import pytest

from app.models import (
    AuditEvent,
    LoginAttempt,
    OneTimeToken,
    RecoveryCode,
    Role,
    SessionStage,
    StaffSession,
    StaffUser,
    TokenPurpose,
)
from app.services import auth, crypto, team, workspace
from app.services.auth import LoginOutcome
from app.settings import Settings, get_settings, use_settings
from emails import MemoryMailer
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.usefixtures("database")

IP = "198.51.100.7"
OTHER_IP = "203.0.113.9"
STEP = 30


def _step_start(step: int) -> datetime:
    return datetime.fromtimestamp(step * STEP, UTC)


# A fixed instant at the start of a TOTP time step, near the real clock.
T0_STEP = int(time.time()) // STEP
T0 = _step_start(T0_STEP)


def _tighten(**changes: object) -> Settings:
    """Lower a limit for the rest of this test (get_settings() is read on every call)."""
    tightened = get_settings().model_copy(update=changes)
    use_settings(tightened)
    return tightened


async def _session(user: StaffUser, *, now: datetime = T0) -> str:
    return await auth.start_session(
        user=user, stage=SessionStage.FULL, ip=IP, user_agent="pytest", now=now
    )


async def _fail(email: str, *, ip: str = IP, now: datetime) -> None:
    result = await auth.authenticate(email=email, password="not the password", ip=ip, now=now)
    assert result.outcome == LoginOutcome.INVALID


def _body(message: EmailMessage) -> str:
    part = message.get_body(("plain",)) if message.is_multipart() else message
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


async def _enable_totp(
    user: StaffUser, *, step: int = T0_STEP - 100
) -> tuple[pyotp.TOTP, list[str]]:
    """Switch on TOTP for a user as of an earlier time step; returns the app and recovery codes."""
    secret = auth.new_totp_secret()
    totp = pyotp.TOTP(secret)
    codes = await auth.enable_totp(
        user=user, secret=secret, code=totp.generate_otp(step), now=_step_start(step)
    )
    assert codes is not None
    return totp, codes


# --- passwords ---------------------------------------------------------------------------------


async def test_passwords_are_stored_as_argon2id_hashes() -> None:
    user = await make_user(Role.OWNER, email="olivia@example.com")
    row = await StaffUser.get(id=user.id).values()
    assert str(row["password_hash"]).startswith("$argon2id$")
    assert all(PASSWORD not in str(value) for value in row.values())
    # Two accounts with the same password get different hashes (salted).
    other = await make_user(Role.EDITOR, email="eddie@example.com")
    assert other.password_hash != user.password_hash
    assert crypto.verify_password(user.password_hash, PASSWORD)
    assert not crypto.verify_password(user.password_hash, PASSWORD.upper())
    assert not crypto.verify_password(None, PASSWORD)


NAME_OR_EMAIL = "Do not use your name or email address in your password."


WEAK_PASSWORDS = [
    ("olivia@example.com", "short pw", "Use at least 10 characters."),
    ("olivia@example.com", "x" * 257, "Use at most 256 characters."),
    ("olivia@example.com", "my-olivia-password", NAME_OR_EMAIL),
    ("olivia.smith@example.com", "OLIVIA.SMITH!!", NAME_OR_EMAIL),
    ("o.smith@example.com", "olivia smith", NAME_OR_EMAIL),
    ("o.smith@example.com", "abababababab", "Use a less repetitive password."),
]


async def test_password_policy_refuses_weak_passwords_and_creates_nothing() -> None:
    for email, password, message in WEAK_PASSWORDS:
        assert auth.password_problem(password, email=email, name="Olivia Smith") == message
        with pytest.raises(team.TeamError) as refused:
            await team.create_user(
                email=email, name="Olivia Smith", password=password, role=Role.OWNER
            )
        assert str(refused.value) == message, password
    assert await StaffUser.all().count() == 0
    assert await AuditEvent.filter(action="user.created").count() == 0
    # A good password passes, with the same name and address.
    assert auth.password_problem(PASSWORD, email="olivia@example.com", name="Olivia Smith") is None


async def test_wrong_password_unknown_email_and_disabled_account_are_all_refused() -> None:
    owner = await make_user(Role.OWNER, email="owner@example.com")
    editor = await make_user(Role.EDITOR, email="eddie@example.com")
    await team.set_active(target=editor, active=False, actor=owner)

    wrong = await auth.authenticate(email="owner@example.com", password="nope-nope-1", ip=IP)
    unknown = await auth.authenticate(email="nobody@example.com", password=PASSWORD, ip=IP)
    disabled = await auth.authenticate(email="eddie@example.com", password=PASSWORD, ip=IP)
    for result in (wrong, unknown, disabled):
        assert result.outcome == LoginOutcome.INVALID
        assert result.user is None
        assert result.stage is None

    failures = await AuditEvent.filter(action="login.failed").order_by("id")
    assert [(e.actor_email, e.ip, e.details["reason"]) for e in failures] == [
        ("owner@example.com", IP, "credentials"),
        ("nobody@example.com", IP, "credentials"),
        ("eddie@example.com", IP, "disabled"),
    ]
    assert await LoginAttempt.filter(ip=IP).count() == 3


async def test_sign_in_ignores_case_and_blanks_around_the_email() -> None:
    user = await make_user(Role.OWNER, email="owner@example.com")
    result = await auth.authenticate(email="  Owner@Example.COM ", password=PASSWORD, ip=IP)
    assert result.outcome == LoginOutcome.OK
    assert result.user is not None
    assert result.user.id == user.id
    assert result.stage == SessionStage.FULL


async def test_a_very_long_email_is_refused_like_any_wrong_one() -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    result = await auth.authenticate(email="a" * 400 + "@example.com", password=PASSWORD, ip=IP)
    assert result.outcome == LoginOutcome.INVALID


# --- rate limits -------------------------------------------------------------------------------


async def test_account_is_locked_after_too_many_failures_even_with_the_right_password() -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    settings = get_settings()
    limit = settings.login_max_failures_per_account
    window = timedelta(minutes=settings.login_window_minutes)

    for i in range(limit - 1):
        await _fail("owner@example.com", now=T0 + timedelta(seconds=i))
    # One failure short of the limit: the right password still works.
    ok = await auth.authenticate(
        email="owner@example.com", password=PASSWORD, ip=IP, now=T0 + timedelta(seconds=limit)
    )
    assert ok.outcome == LoginOutcome.OK
    await _fail("owner@example.com", now=T0 + timedelta(seconds=limit))

    later = T0 + timedelta(seconds=60)
    locked = await auth.authenticate(
        email="OWNER@example.com", password=PASSWORD, ip=OTHER_IP, now=later
    )
    assert locked.outcome == LoginOutcome.RATE_LIMITED
    assert locked.user is None
    # Locked until the oldest counted failure (at T0) leaves the window.
    assert locked.retry_after == int((T0 + window - later).total_seconds()) + 1
    assert await AuditEvent.filter(action="login.rate_limited", ip=OTHER_IP).count() == 1
    # A refused attempt is not itself counted as a failure (it would extend the lock forever).
    assert await LoginAttempt.filter(email="owner@example.com").count() == limit

    # Just before the oldest failure leaves the window: still locked.
    still = await auth.authenticate(
        email="owner@example.com", password=PASSWORD, ip=IP, now=T0 + window - timedelta(seconds=1)
    )
    assert still.outcome == LoginOutcome.RATE_LIMITED
    assert 1 <= still.retry_after <= 2

    # Once it has left, one more failure is allowed again and the right password works.
    lifted = await auth.authenticate(
        email="owner@example.com", password=PASSWORD, ip=IP, now=T0 + window + timedelta(seconds=1)
    )
    assert lifted.outcome == LoginOutcome.OK


async def test_lock_of_one_account_does_not_lock_others() -> None:
    await make_user(Role.OWNER, email="owner@example.com")
    await make_user(Role.EDITOR, email="eddie@example.com")
    for _ in range(get_settings().login_max_failures_per_account):
        await _fail("eddie@example.com", now=T0)
    eddie = await auth.authenticate(email="eddie@example.com", password=PASSWORD, ip=IP, now=T0)
    owner = await auth.authenticate(email="owner@example.com", password=PASSWORD, ip=IP, now=T0)
    assert eddie.outcome == LoginOutcome.RATE_LIMITED
    assert owner.outcome == LoginOutcome.OK


async def test_one_ip_trying_many_accounts_is_locked_out() -> None:
    settings = _tighten(login_max_failures_per_ip=6, login_max_failures_per_account=3)
    await make_user(Role.OWNER, email="owner@example.com")
    # Spread over many accounts, so no single account reaches its own limit.
    for i in range(settings.login_max_failures_per_ip):
        await _fail(f"guess{i}@example.com", now=T0 + timedelta(seconds=i))

    from_ip = await auth.authenticate(
        email="owner@example.com", password=PASSWORD, ip=IP, now=T0 + timedelta(minutes=1)
    )
    assert from_ip.outcome == LoginOutcome.RATE_LIMITED
    window = timedelta(minutes=settings.login_window_minutes)
    assert from_ip.retry_after == int((window - timedelta(minutes=1)).total_seconds()) + 1

    # The same account from another address is not affected.
    elsewhere = await auth.authenticate(
        email="owner@example.com", password=PASSWORD, ip=OTHER_IP, now=T0 + timedelta(minutes=1)
    )
    assert elsewhere.outcome == LoginOutcome.OK

    # After the window the address may sign in again.
    lifted = await auth.authenticate(
        email="owner@example.com", password=PASSWORD, ip=IP, now=T0 + window + timedelta(seconds=6)
    )
    assert lifted.outcome == LoginOutcome.OK


async def test_old_failures_are_purged_but_recent_ones_are_kept() -> None:
    await _fail("owner@example.com", now=T0 - timedelta(days=3))
    await _fail("owner@example.com", now=T0)
    await auth.purge_expired(now=T0)
    assert [a.at for a in await LoginAttempt.all()] == [T0]


# --- sessions ----------------------------------------------------------------------------------


async def test_session_token_is_random_and_stored_only_as_a_hash() -> None:
    user = await make_user(Role.OWNER)
    first = await _session(user)
    second = await _session(user)
    assert first != second
    assert len(first) >= 40
    rows = await StaffSession.all().values()
    assert len(rows) == 2
    for row in rows:
        assert all(first not in str(value) and second not in str(value) for value in row.values())
    session = await auth.resolve_session(first, now=T0)
    assert session is not None
    assert session.user.id == user.id
    assert session.stage == SessionStage.FULL
    assert await auth.resolve_session("not-a-token", now=T0) is None
    assert await auth.resolve_session("", now=T0) is None
    assert await auth.resolve_session("x" * 500, now=T0) is None


async def test_idle_session_expires_and_activity_keeps_it_alive() -> None:
    user = await make_user(Role.OWNER)
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    active = await _session(user)
    dormant = await _session(user)

    # Use one session shortly before it would idle out; that moves its idle deadline.
    assert await auth.resolve_session(active, now=T0 + idle - timedelta(minutes=1)) is not None
    after_idle = T0 + idle + timedelta(seconds=1)
    assert await auth.resolve_session(active, now=after_idle) is not None
    assert await auth.resolve_session(dormant, now=after_idle) is None
    # The idle session was removed server-side, not only refused.
    assert await StaffSession.filter(user=user).count() == 1
    assert await auth.resolve_session(dormant, now=T0) is None


async def test_session_ends_at_its_absolute_lifetime_however_active() -> None:
    user = await make_user(Role.OWNER)
    settings = get_settings()
    idle = timedelta(minutes=settings.session_idle_minutes)
    lifetime = timedelta(days=settings.session_max_days)
    token = await _session(user)

    step = idle - timedelta(minutes=5)
    moment = T0
    while moment + step < T0 + lifetime:
        moment += step
        assert await auth.resolve_session(token, now=moment) is not None, moment
    assert await auth.resolve_session(token, now=T0 + lifetime - timedelta(seconds=1)) is not None
    assert await auth.resolve_session(token, now=T0 + lifetime) is None
    assert await StaffSession.all().count() == 0


async def test_purge_removes_idle_and_expired_sessions_only() -> None:
    user = await make_user(Role.OWNER)
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    await _session(user)
    fresh = await _session(user, now=T0 + idle)
    assert await auth.purge_expired(now=T0 + idle + timedelta(seconds=1)) == 1
    assert await auth.resolve_session(fresh, now=T0 + idle + timedelta(seconds=2)) is not None


async def test_moving_to_the_next_stage_rotates_the_token() -> None:
    user = await make_user(Role.OWNER)
    await _enable_totp(user)
    password_stage = await auth.start_session(
        user=user, stage=SessionStage.PASSWORD, ip=IP, user_agent="", now=T0
    )
    # A half-finished sign-in is not a sign-in.
    assert await AuditEvent.filter(action="login.succeeded").count() == 0
    session = await auth.resolve_session(password_stage, now=T0)
    assert session is not None
    assert session.stage == SessionStage.PASSWORD

    full = await auth.advance_session(session=session, stage=SessionStage.FULL, now=T0)
    assert full != password_stage
    assert await auth.resolve_session(password_stage, now=T0) is None
    advanced = await auth.resolve_session(full, now=T0)
    assert advanced is not None
    assert advanced.stage == SessionStage.FULL
    assert advanced.id == session.id
    succeeded = await AuditEvent.get(action="login.succeeded")
    assert succeeded.actor_email == user.email
    assert succeeded.ip == IP
    assert (await StaffUser.get(id=user.id)).last_login_at == T0


async def test_signing_out_and_disabling_end_sessions() -> None:
    owner = await make_user(Role.OWNER)
    editor = await make_user(Role.EDITOR)
    tokens = [await _session(editor) for _ in range(3)]
    owner_token = await _session(owner)

    await auth.end_session(tokens[0])
    assert await auth.resolve_session(tokens[0], now=T0) is None
    assert await auth.resolve_session(tokens[1], now=T0) is not None

    await team.set_active(target=editor, active=False, actor=owner, ip=IP)
    assert await StaffSession.filter(user=editor).count() == 0
    for token in tokens:
        assert await auth.resolve_session(token, now=T0) is None
    assert await auth.resolve_session(owner_token, now=T0) is not None
    disabled = await AuditEvent.get(action="user.disabled")
    assert (disabled.actor_email, disabled.target, disabled.ip) == (owner.email, editor.email, IP)

    # A session that somehow survived is refused while the account is disabled.
    await team.set_active(target=editor, active=True, actor=owner)
    survivor = await _session(editor)
    await StaffUser.filter(id=editor.id).update(is_active=False)
    assert await auth.resolve_session(survivor, now=T0) is None


async def test_end_all_sessions_can_keep_the_current_browser() -> None:
    user = await make_user(Role.OWNER)
    keep = await _session(user)
    other = await _session(user)
    session = await auth.resolve_session(keep, now=T0)
    assert session is not None
    assert await auth.end_all_sessions(user=user, except_session=session) == 1
    assert await auth.resolve_session(keep, now=T0) is not None
    assert await auth.resolve_session(other, now=T0) is None


# --- TOTP --------------------------------------------------------------------------------------


async def test_enabling_totp_needs_a_matching_code_and_seals_the_secret() -> None:
    user = await make_user(Role.OWNER)
    secret = auth.new_totp_secret()
    totp = pyotp.TOTP(secret)
    wrong = str((int(totp.generate_otp(T0_STEP)) + 1) % 1_000_000).zfill(6)
    assert await auth.enable_totp(user=user, secret=secret, code=wrong, now=T0) is None
    assert await auth.enable_totp(user=user, secret=secret, code="abcdef", now=T0) is None
    fresh = await StaffUser.get(id=user.id)
    assert not fresh.has_totp
    assert fresh.totp_secret is None

    codes = await auth.enable_totp(
        user=user, secret=secret, code=totp.generate_otp(T0_STEP), now=T0, ip=IP
    )
    assert codes is not None
    assert len(codes) == auth.RECOVERY_CODE_COUNT == 10
    assert len(set(codes)) == 10
    stored = await StaffUser.get(id=user.id)
    assert stored.has_totp
    assert stored.totp_secret is not None
    assert secret not in stored.totp_secret
    assert crypto.unseal(stored.totp_secret) == secret
    enabled = await AuditEvent.get(action="2fa.enabled")
    assert (enabled.actor_email, enabled.ip) == (user.email, IP)
    # The code used to prove the app cannot then be used to sign in.
    assert not await auth.verify_totp(user=stored, code=totp.generate_otp(T0_STEP), now=T0)
    assert await auth.verify_totp(
        user=stored, code=totp.generate_otp(T0_STEP + 1), now=_step_start(T0_STEP + 1)
    )


async def test_a_totp_code_works_once() -> None:
    user = await make_user(Role.OWNER)
    totp, _ = await _enable_totp(user)
    code = totp.generate_otp(T0_STEP)
    assert await auth.verify_totp(user=user, code=code, now=T0)
    assert not await auth.verify_totp(user=user, code=code, now=T0 + timedelta(seconds=5))
    # Another copy of the user (another request) sees the same claim in the database.
    again = await StaffUser.get(id=user.id)
    assert not await auth.verify_totp(user=again, code=code, now=T0 + timedelta(seconds=10))
    # Spaces typed in the middle are ignored; the next step's code is fresh.
    nxt = totp.generate_otp(T0_STEP + 1)
    assert await auth.verify_totp(
        user=again, code=f"{nxt[:3]} {nxt[3:]}", now=_step_start(T0_STEP + 1)
    )


async def test_a_code_from_the_previous_step_is_accepted_once() -> None:
    user = await make_user(Role.OWNER)
    totp, _ = await _enable_totp(user)
    now = _step_start(T0_STEP + 1) + timedelta(seconds=3)  # the phone is a few seconds behind
    previous = totp.generate_otp(T0_STEP)
    assert await auth.verify_totp(user=user, code=previous, now=now)
    assert not await auth.verify_totp(user=user, code=previous, now=now)
    # Two steps back is too old.
    user2 = await make_user(Role.EDITOR)
    totp2, _ = await _enable_totp(user2)
    too_old = totp2.generate_otp(T0_STEP - 1)
    assert not await auth.verify_totp(user=user2, code=too_old, now=now)
    # Once the current code was used, the previous step's code is refused too.
    assert await auth.verify_totp(user=user2, code=totp2.generate_otp(T0_STEP + 1), now=now)
    assert not await auth.verify_totp(user=user2, code=totp2.generate_otp(T0_STEP), now=now)


async def test_a_code_from_the_next_step_is_accepted_but_not_two_ahead() -> None:
    user = await make_user(Role.OWNER)
    totp, _ = await _enable_totp(user)
    assert not await auth.verify_totp(user=user, code=totp.generate_otp(T0_STEP + 2), now=T0)
    assert await auth.verify_totp(user=user, code=totp.generate_otp(T0_STEP + 1), now=T0)
    # The current step's code is now behind the last one used.
    assert not await auth.verify_totp(user=user, code=totp.generate_otp(T0_STEP), now=T0)


async def test_a_user_without_totp_never_passes_a_code() -> None:
    user = await make_user(Role.OWNER)
    assert not await auth.verify_totp(user=user, code="123456", now=T0)


async def test_second_factor_failures_count_towards_the_rate_limit() -> None:
    user = await make_user(Role.OWNER)
    totp, _ = await _enable_totp(user)
    limit = get_settings().login_max_failures_per_account
    good = totp.generate_otp(T0_STEP)
    wrong = str((int(good) + 1) % 1_000_000).zfill(6)
    for _ in range(limit):
        failed = await auth.second_factor(user=user, code=wrong, ip=IP, now=T0)
        assert failed.outcome == LoginOutcome.INVALID
    assert await AuditEvent.filter(action="2fa.failed", ip=IP).count() == limit
    locked = await auth.second_factor(user=user, code=good, ip=IP, now=T0)
    assert locked.outcome == LoginOutcome.RATE_LIMITED
    assert locked.retry_after > 0
    # The refused attempt did not consume the code: it works once the lock lifts.
    window = timedelta(minutes=get_settings().login_window_minutes)
    later = T0 + window + timedelta(seconds=1)
    fresh = totp.at(later)
    ok = await auth.second_factor(user=user, code=fresh, ip=IP, now=later)
    assert ok.outcome == LoginOutcome.OK
    assert ok.stage == SessionStage.FULL


async def test_password_sign_in_asks_for_the_second_factor_when_totp_is_on() -> None:
    user = await make_user(Role.OWNER)
    await _enable_totp(user)
    result = await auth.authenticate(email=user.email, password=PASSWORD, ip=IP)
    assert result.outcome == LoginOutcome.OK
    assert result.stage == SessionStage.PASSWORD


async def test_required_2fa_puts_users_without_it_in_the_enrol_stage() -> None:
    owner = await make_user(Role.OWNER)
    editor = await make_user(Role.EDITOR)
    await _enable_totp(owner)
    await workspace.update(require_2fa=True)
    result = await auth.authenticate(email=editor.email, password=PASSWORD, ip=IP)
    assert result.stage == SessionStage.ENROL
    owner_result = await auth.authenticate(email=owner.email, password=PASSWORD, ip=IP)
    assert owner_result.stage == SessionStage.PASSWORD


# --- recovery codes ----------------------------------------------------------------------------


async def test_recovery_codes_work_once_and_are_stored_hashed() -> None:
    user = await make_user(Role.OWNER)
    _, codes = await _enable_totp(user)
    rows = await RecoveryCode.filter(user=user).values()
    assert len(rows) == 10
    for code in codes:
        bare = code.replace("-", "")
        assert all(
            code not in str(value) and bare not in str(value)
            for row in rows
            for value in row.values()
        )
    assert await auth.remaining_recovery_codes(user=user) == 10

    result = await auth.second_factor(user=user, code=codes[0], ip=IP, now=T0)
    assert result.outcome == LoginOutcome.OK
    assert await auth.remaining_recovery_codes(user=user) == 9
    used = await AuditEvent.get(action="2fa.recovery_code_used")
    assert used.actor_email == user.email

    again = await auth.second_factor(user=user, code=codes[0], ip=IP, now=T0)
    assert again.outcome == LoginOutcome.INVALID
    # Typed in capitals and without the dash, another code is still fine.
    assert await auth.use_recovery_code(user=user, code=codes[1].replace("-", "").upper(), now=T0)
    assert not await auth.use_recovery_code(user=user, code=codes[1], now=T0)
    assert not await auth.use_recovery_code(user=user, code="aaaaa-aaaaa", now=T0)
    assert not await auth.use_recovery_code(user=user, code="short", now=T0)
    assert await auth.remaining_recovery_codes(user=user) == 8


async def test_recovery_codes_of_one_user_do_not_work_for_another() -> None:
    owner = await make_user(Role.OWNER)
    editor = await make_user(Role.EDITOR)
    _, owner_codes = await _enable_totp(owner)
    await _enable_totp(editor)
    assert not await auth.use_recovery_code(user=editor, code=owner_codes[0], now=T0)
    assert await auth.use_recovery_code(user=owner, code=owner_codes[0], now=T0)


async def test_renewing_recovery_codes_invalidates_the_old_ones() -> None:
    user = await make_user(Role.OWNER)
    _, old = await _enable_totp(user)
    assert await auth.use_recovery_code(user=user, code=old[0], now=T0)
    new = await auth.replace_recovery_codes(user=user)
    assert len(new) == 10
    assert not set(new) & set(old)
    assert await auth.remaining_recovery_codes(user=user) == 10
    for code in old[1:]:
        assert not await auth.use_recovery_code(user=user, code=code, now=T0)
    assert await auth.use_recovery_code(user=user, code=new[0], now=T0)


async def test_disabling_totp_drops_the_secret_and_recovery_codes() -> None:
    owner = await make_user(Role.OWNER)
    totp, codes = await _enable_totp(owner)
    await auth.disable_totp(user=owner, actor=owner, ip=IP)
    fresh = await StaffUser.get(id=owner.id)
    assert not fresh.has_totp
    assert fresh.totp_secret is None
    assert await RecoveryCode.filter(user=owner).count() == 0
    assert not await auth.verify_totp(user=fresh, code=totp.generate_otp(T0_STEP), now=T0)
    assert not await auth.use_recovery_code(user=fresh, code=codes[0], now=T0)
    event = await AuditEvent.get(action="2fa.disabled")
    assert (event.actor_email, event.target, event.ip) == (owner.email, owner.email, IP)


# --- first owner setup ------------------------------------------------------------------------


async def test_setup_link_creates_the_first_owner_once() -> None:
    link = await team.issue_setup_link()
    assert link is not None
    assert link.url == f"http://testserver/setup/{link.token}"
    row = await OneTimeToken.get(purpose=TokenPurpose.SETUP)
    assert row.token_hash == crypto.hash_token(link.token)
    assert link.token not in row.token_hash

    # A policy error leaves the link usable.
    with pytest.raises(team.TeamError, match="at least 10"):
        await team.complete_setup(
            token=link.token, email="olivia@example.com", name="Olivia", password="short"
        )
    assert await StaffUser.all().count() == 0

    owner = await team.complete_setup(
        token=link.token, email="Olivia@Example.com", name="Olivia", password=PASSWORD
    )
    assert owner.role == Role.OWNER
    assert owner.email == "olivia@example.com"
    with pytest.raises(team.TeamError, match="expired or was already used"):
        await team.complete_setup(
            token=link.token, email="mallory@example.com", name="Mallory", password=PASSWORD
        )
    assert await team.issue_setup_link() is None
    assert await StaffUser.all().count() == 1


async def test_setup_link_is_refused_once_an_owner_exists() -> None:
    link = await team.issue_setup_link()
    assert link is not None
    await make_user(Role.OWNER)
    with pytest.raises(team.TeamError, match="expired or was already used"):
        await team.complete_setup(
            token=link.token, email="mallory@example.com", name="Mallory", password=PASSWORD
        )
    assert await StaffUser.filter(role=Role.OWNER).count() == 1


async def test_expired_setup_link_is_refused_and_a_new_one_replaces_the_old() -> None:
    old = await team.issue_setup_link(now=T0 - team.SETUP_TTL - timedelta(seconds=1))
    assert old is not None
    assert await team.find_token(token=old.token, purpose=TokenPurpose.SETUP, now=T0) is None
    with pytest.raises(team.TeamError):
        await team.complete_setup(
            token=old.token, email="olivia@example.com", name="Olivia", password=PASSWORD, now=T0
        )
    new = await team.issue_setup_link(now=T0)
    assert new is not None
    assert await OneTimeToken.filter(purpose=TokenPurpose.SETUP).count() == 1
    assert await team.find_token(token=new.token, purpose=TokenPurpose.SETUP, now=T0) is not None


# --- invitations -------------------------------------------------------------------------------


async def test_invite_is_emailed_once_and_accepted_once(mailer: MemoryMailer) -> None:
    owner = await make_user(Role.OWNER, name="Olivia Owner")
    link = await team.invite(email=" Nina.New@Example.com ", role=Role.EDITOR, actor=owner, ip=IP)
    assert len(mailer.sent) == 1
    message = mailer.sent[0]
    assert message["To"] == "nina.new@example.com"
    assert "Olivia Owner" in str(message["Subject"])
    assert link.url.startswith("http://testserver/invite/")
    assert link.url in _body(message)
    row = await OneTimeToken.get(purpose=TokenPurpose.INVITE)
    assert row.token_hash == crypto.hash_token(link.token)
    event = await AuditEvent.get(action="user.invited")
    assert (event.actor_email, event.target, event.ip) == (owner.email, "nina.new@example.com", IP)
    assert event.details == {"role": "editor"}

    # Policy errors leave the invitation usable.
    with pytest.raises(team.TeamError, match="email address"):
        await team.accept_invite(token=link.token, name="Nina", password="my-nina.new-secret")
    with pytest.raises(team.TeamError, match="at least 10"):
        await team.accept_invite(token=link.token, name="Nina", password="short")
    assert await StaffUser.filter(email="nina.new@example.com").count() == 0

    user = await team.accept_invite(token=link.token, name="Nina", password=PASSWORD)
    assert (user.email, user.role, user.name) == ("nina.new@example.com", Role.EDITOR, "Nina")
    with pytest.raises(team.TeamError, match="expired or was already used"):
        await team.accept_invite(token=link.token, name="Nina again", password=PASSWORD)


async def test_expired_invite_is_refused(mailer: MemoryMailer) -> None:
    owner = await make_user(Role.OWNER)
    link = await team.invite(
        email="late@example.com",
        role=Role.EDITOR,
        actor=owner,
        now=T0 - team.INVITE_TTL - timedelta(seconds=1),
    )
    with pytest.raises(team.TeamError, match="expired or was already used"):
        await team.accept_invite(token=link.token, name="Late", password=PASSWORD, now=T0)
    assert await StaffUser.filter(email="late@example.com").count() == 0
    assert len(mailer.sent) == 1


async def test_a_new_invite_replaces_the_pending_one(mailer: MemoryMailer) -> None:
    owner = await make_user(Role.OWNER)
    first = await team.invite(email="new@example.com", role=Role.EDITOR, actor=owner)
    second = await team.invite(email="new@example.com", role=Role.ANALYST, actor=owner)
    with pytest.raises(team.TeamError):
        await team.accept_invite(token=first.token, name="Nina", password=PASSWORD)
    user = await team.accept_invite(token=second.token, name="Nina", password=PASSWORD)
    assert user.role == Role.ANALYST
    assert len(mailer.sent) == 2


async def test_who_may_invite_whom(mailer: MemoryMailer) -> None:
    owner = await make_user(Role.OWNER)
    admin = await make_user(Role.ADMIN)
    editor = await make_user(Role.EDITOR)
    with pytest.raises(team.TeamError, match="You cannot give that role"):
        await team.invite(email="boss@example.com", role=Role.OWNER, actor=admin)
    with pytest.raises(team.TeamError, match="You cannot give that role"):
        await team.invite(email="x@example.com", role=Role.ANALYST, actor=editor)
    with pytest.raises(team.TeamError, match="already has an account"):
        await team.invite(email=editor.email, role=Role.ANALYST, actor=owner)
    with pytest.raises(team.TeamError, match="valid email"):
        await team.invite(email="not-an-address", role=Role.ANALYST, actor=owner)
    assert await OneTimeToken.filter(purpose=TokenPurpose.INVITE).count() == 0
    assert mailer.sent == []

    await team.invite(email="admin2@example.com", role=Role.ADMIN, actor=admin)
    await team.invite(email="owner2@example.com", role=Role.OWNER, actor=owner)
    assert len(mailer.sent) == 2


async def test_revoked_invite_stops_working(mailer: MemoryMailer) -> None:
    owner = await make_user(Role.OWNER)
    link = await team.invite(email="new@example.com", role=Role.EDITOR, actor=owner)
    [pending] = await team.pending_invites()
    await team.revoke_invite(invite_id=pending.id, actor=owner, ip=IP)
    assert await team.pending_invites() == []
    with pytest.raises(team.TeamError):
        await team.accept_invite(token=link.token, name="Nina", password=PASSWORD)
    with pytest.raises(team.TeamError, match="no longer exists"):
        await team.revoke_invite(invite_id=pending.id, actor=owner)
    assert await AuditEvent.filter(action="user.invite_revoked", ip=IP).count() == 1
    assert len(mailer.sent) == 1


# --- password reset ----------------------------------------------------------------------------


async def test_reset_emails_a_link_only_to_existing_active_accounts(mailer: MemoryMailer) -> None:
    owner = await make_user(Role.OWNER)
    editor = await make_user(Role.EDITOR)
    await team.set_active(target=editor, active=False, actor=owner)
    await team.request_password_reset(email="nobody@example.com", ip=IP)
    await team.request_password_reset(email=editor.email, ip=IP)
    assert mailer.sent == []
    await team.request_password_reset(email=" OWNER@example.com", ip=IP)
    assert len(mailer.sent) == 1
    assert mailer.sent[0]["To"] == owner.email
    assert "http://testserver/reset/" in _body(mailer.sent[0])
    assert await AuditEvent.filter(action="password.reset_requested", ip=IP).count() == 3


async def test_at_most_three_reset_emails_per_quarter_hour(mailer: MemoryMailer) -> None:
    owner = await make_user(Role.OWNER)
    now = auth.utcnow()
    for _ in range(5):
        await team.request_password_reset(email=owner.email, now=now)
    assert len(mailer.sent) == 3
    await team.request_password_reset(email=owner.email, now=now + timedelta(minutes=16))
    assert len(mailer.sent) == 4


async def test_reset_sets_the_password_ends_sessions_and_works_once(mailer: MemoryMailer) -> None:
    owner = await make_user(Role.OWNER)
    token = await auth.start_session(user=owner, stage=SessionStage.FULL, ip=IP, user_agent="")
    await team.request_password_reset(email=owner.email)
    link = _body(mailer.sent[0]).split("/reset/")[1].split()[0]

    with pytest.raises(team.TeamError, match="at least 10"):
        await team.reset_password(token=link, password="short")
    assert await auth.resolve_session(token) is not None

    new_password = "a brand new passphrase"
    await team.reset_password(token=link, password=new_password, ip=IP)
    assert await auth.resolve_session(token) is None
    assert (
        await auth.authenticate(email=owner.email, password=PASSWORD, ip=IP)
    ).outcome == LoginOutcome.INVALID
    assert (
        await auth.authenticate(email=owner.email, password=new_password, ip=IP)
    ).outcome == LoginOutcome.OK
    with pytest.raises(team.TeamError, match="expired or was already used"):
        await team.reset_password(token=link, password="yet another passphrase")
    assert await AuditEvent.filter(action="password.reset", ip=IP).count() == 1


async def test_expired_reset_link_is_refused(mailer: MemoryMailer) -> None:
    owner = await make_user(Role.OWNER)
    await team.request_password_reset(
        email=owner.email, now=auth.utcnow() - team.RESET_TTL - timedelta(seconds=1)
    )
    link = _body(mailer.sent[0]).split("/reset/")[1].split()[0]
    with pytest.raises(team.TeamError, match="expired"):
        await team.reset_password(token=link, password="a brand new passphrase")
    assert crypto.verify_password((await StaffUser.get(id=owner.id)).password_hash, PASSWORD)


# --- roles and disabling -----------------------------------------------------------------------


async def test_admin_cannot_change_an_owner() -> None:
    owner = await make_user(Role.OWNER)
    admin = await make_user(Role.ADMIN)
    with pytest.raises(team.TeamError, match="Only an owner can change another owner"):
        await team.set_role(target=owner, role=Role.EDITOR, actor=admin)
    with pytest.raises(team.TeamError, match="Only an owner can change another owner"):
        await team.set_active(target=owner, active=False, actor=admin)
    with pytest.raises(team.TeamError, match="You cannot give that role"):
        await team.set_role(target=admin, role=Role.OWNER, actor=admin)
    fresh = await StaffUser.get(id=owner.id)
    assert (fresh.role, fresh.is_active) == (Role.OWNER, True)


async def test_the_last_active_owner_cannot_be_demoted_or_disabled() -> None:
    first = await make_user(Role.OWNER, email="first@example.com")
    second = await make_user(Role.OWNER, email="second@example.com")
    with pytest.raises(team.TeamError, match="You cannot disable your own account"):
        await team.set_active(target=first, active=False, actor=first)

    # With two owners, one may step down.
    await team.set_role(target=second, role=Role.ADMIN, actor=first, ip=IP)
    changed = await AuditEvent.get(action="user.role_changed")
    assert (changed.actor_email, changed.target, changed.ip) == (first.email, second.email, IP)
    assert changed.details == {"from": "owner", "to": "admin"}
    with pytest.raises(team.TeamError, match="at least one active owner"):
        await team.set_role(target=first, role=Role.ADMIN, actor=first)

    # A disabled owner does not count: the remaining active one stays.
    await team.set_role(target=second, role=Role.OWNER, actor=first)
    await team.set_active(target=second, active=False, actor=first)
    with pytest.raises(team.TeamError, match="at least one active owner"):
        await team.set_active(target=first, active=False, actor=second)
    with pytest.raises(team.TeamError, match="at least one active owner"):
        await team.set_role(target=first, role=Role.EDITOR, actor=second)
    fresh = await StaffUser.get(id=first.id)
    assert (fresh.role, fresh.is_active) == (Role.OWNER, True)


async def test_a_disabled_owner_can_be_demoted_while_another_owner_is_active() -> None:
    first = await make_user(Role.OWNER, email="first@example.com")
    second = await make_user(Role.OWNER, email="second@example.com")
    await team.set_active(target=second, active=False, actor=first)
    await team.set_role(target=second, role=Role.EDITOR, actor=first)
    assert (await StaffUser.get(id=second.id)).role == Role.EDITOR


async def test_nobody_can_disable_themselves() -> None:
    await make_user(Role.OWNER)
    admin = await make_user(Role.ADMIN)
    with pytest.raises(team.TeamError, match="You cannot disable your own account"):
        await team.set_active(target=admin, active=False, actor=admin)
    assert (await StaffUser.get(id=admin.id)).is_active


async def test_editors_cannot_change_the_team() -> None:
    await make_user(Role.OWNER)
    editor = await make_user(Role.EDITOR)
    analyst = await make_user(Role.ANALYST)
    with pytest.raises(team.TeamError):
        await team.set_role(target=analyst, role=Role.EDITOR, actor=editor)
    with pytest.raises(team.TeamError):
        await team.set_active(target=analyst, active=False, actor=editor)
    fresh = await StaffUser.get(id=analyst.id)
    assert (fresh.role, fresh.is_active) == (Role.ANALYST, True)
