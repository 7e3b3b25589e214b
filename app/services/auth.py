"""Staff sign-in: passwords, rate limits, server-side sessions, TOTP and recovery codes."""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import pyotp
from tortoise.transactions import in_transaction

from app.models import (
    LoginAttempt,
    RecoveryCode,
    Role,
    SessionStage,
    StaffSession,
    StaffUser,
)
from app.services import audit, crypto, workspace
from app.settings import get_settings

TOTP_ISSUER = "Encore"
RECOVERY_CODE_COUNT = 10
PASSWORD_MIN = 10
PASSWORD_MAX = 256
EMAIL_MAX = 254
# Refresh last_seen_at at most this often so every request does not write.
_TOUCH_EVERY = timedelta(minutes=1)


def utcnow() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


def normalise_email(email: str) -> str:
    """Email addresses compare case-insensitively and without surrounding blanks."""
    return email.strip().lower()


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < PASSWORD_MIN:
        return f"Use at least {PASSWORD_MIN} characters."
    if len(password) > PASSWORD_MAX:
        return f"Use at most {PASSWORD_MAX} characters."
    lowered = password.lower()
    local = email.split("@")[0].lower()
    if (local and len(local) >= 4 and local in lowered) or (name and name.lower() == lowered):
        return "Do not use your name or email address in your password."
    if len(set(password)) < 4:
        return "Use a less repetitive password."
    return None


class LoginOutcome(StrEnum):
    """How a password sign-in ended."""

    OK = "ok"
    INVALID = "invalid"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class LoginResult:
    """The outcome of a password check, with the user and sign-in stage when it succeeded."""

    outcome: LoginOutcome
    user: StaffUser | None = None
    stage: SessionStage | None = None
    retry_after: int = 0


async def retry_after(*, email: str, ip: str, now: datetime) -> int:
    """Seconds until this account or IP may try again (0 when it may now)."""
    settings = get_settings()
    window = timedelta(minutes=settings.login_window_minutes)
    since = now - window
    waits = [0]
    for field, value, limit in (
        ("email", email, settings.login_max_failures_per_account),
        ("ip", ip, settings.login_max_failures_per_ip),
    ):
        recent = (
            await LoginAttempt.filter(**{field: value, "at__gte": since})
            .order_by("-at")
            .limit(limit)
            .values_list("at", flat=True)
        )
        if len(recent) >= limit:
            # Locked until the oldest of the last `limit` failures leaves the window.
            oldest = recent[-1]
            assert isinstance(oldest, datetime)
            waits.append(max(1, int((oldest + window - now).total_seconds()) + 1))
    return max(waits)


async def authenticate(
    *, email: str, password: str, ip: str, now: datetime | None = None
) -> LoginResult:
    """Check a password sign-in, counting failures per account and per IP."""
    now = now or utcnow()
    typed = normalise_email(email)
    # Longer than any stored address: it matches nobody, and is counted under a bounded key
    # (the ORM refuses over-long values even in a lookup).
    email = typed[:EMAIL_MAX]
    wait = await retry_after(email=email, ip=ip, now=now)
    if wait:
        await audit.record(action="login.rate_limited", actor_email=email, ip=ip)
        return LoginResult(LoginOutcome.RATE_LIMITED, retry_after=wait)
    user = await StaffUser.get_or_none(email=email) if len(typed) <= EMAIL_MAX else None
    valid = crypto.verify_password(user.password_hash if user else None, password)
    if not user or not valid or not user.is_active:
        await LoginAttempt.create(email=email, ip=ip, at=now)
        await audit.record(
            action="login.failed",
            actor_email=email,
            ip=ip,
            details={"reason": "disabled" if (user and valid) else "credentials"},
        )
        return LoginResult(LoginOutcome.INVALID)
    if crypto.needs_rehash(user.password_hash):
        user.password_hash = crypto.hash_password(password)
        await user.save(update_fields=["password_hash"])
    if user.has_totp:
        stage = SessionStage.PASSWORD
    elif (await workspace.load()).require_2fa:
        stage = SessionStage.ENROL
    else:
        stage = SessionStage.FULL
    return LoginResult(LoginOutcome.OK, user=user, stage=stage)


async def start_session(
    *, user: StaffUser, stage: SessionStage, ip: str, user_agent: str, now: datetime | None = None
) -> str:
    """Create a session and return its token (the cookie value); only its hash is stored."""
    now = now or utcnow()
    token = crypto.new_token()
    await StaffSession.create(
        token_hash=crypto.hash_token(token),
        user=user,
        stage=stage,
        last_seen_at=now,
        expires_at=now + timedelta(days=get_settings().session_max_days),
        ip=ip[:64],
        user_agent=user_agent[:255],
    )
    if stage == SessionStage.FULL:
        await _signed_in(user, ip, now)
    return token


async def advance_session(
    *, session: StaffSession, stage: SessionStage, now: datetime | None = None
) -> str:
    """Move a session to a new stage under a fresh token; the old token stops working."""
    now = now or utcnow()
    token = crypto.new_token()
    session.token_hash = crypto.hash_token(token)
    session.stage = stage
    session.last_seen_at = now
    await session.save(update_fields=["token_hash", "stage", "last_seen_at"])
    if stage == SessionStage.FULL:
        user = await session.user
        await _signed_in(user, session.ip, now)
    return token


async def _signed_in(user: StaffUser, ip: str, now: datetime) -> None:
    user.last_login_at = now
    await user.save(update_fields=["last_login_at"])
    await audit.record(action="login.succeeded", actor=user, ip=ip)


async def resolve_session(token: str, *, now: datetime | None = None) -> StaffSession | None:
    """The live session for a cookie token, with its user; None if expired, idle or disabled."""
    if not token or len(token) > 128:
        return None
    now = now or utcnow()
    session = await StaffSession.get_or_none(token_hash=crypto.hash_token(token)).select_related(
        "user"
    )
    if session is None:
        return None
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    if (
        session.expires_at <= now
        or session.last_seen_at + idle <= now
        or not session.user.is_active
    ):
        await session.delete()
        return None
    if now - session.last_seen_at >= _TOUCH_EVERY:
        session.last_seen_at = now
        await session.save(update_fields=["last_seen_at"])
    return session


async def signed_in(tokens: Collection[str], *, now: datetime | None = None) -> dict[str, Role]:
    """Which cookie tokens still hold a full, live session of an active user, with its role.

    Nothing is touched or deleted: this is the check of connections kept open (the console's
    socket), which must end when their sign-in ends.
    """
    if not tokens:
        return {}
    now = now or utcnow()
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    by_hash = {crypto.hash_token(token): token for token in tokens if token and len(token) <= 128}
    rows = await StaffSession.filter(
        token_hash__in=list(by_hash),
        stage=SessionStage.FULL,
        expires_at__gt=now,
        last_seen_at__gt=now - idle,
        user__is_active=True,
    ).values_list("token_hash", "user__role")
    return {by_hash[token_hash]: Role(role) for token_hash, role in rows}


async def end_session(token: str) -> None:
    """Sign one browser out."""
    await StaffSession.filter(token_hash=crypto.hash_token(token)).delete()


async def end_all_sessions(*, user: StaffUser, except_session: StaffSession | None = None) -> int:
    """Sign a user out everywhere (optionally keeping the current browser)."""
    query = StaffSession.filter(user=user)
    if except_session is not None:
        query = query.exclude(id=except_session.id)
    return await query.delete()


async def purge_expired(*, now: datetime | None = None) -> int:
    """Delete expired sessions and old failed-login records."""
    now = now or utcnow()
    settings = get_settings()
    removed = await StaffSession.filter(expires_at__lte=now).delete()
    idle_cut = now - timedelta(minutes=settings.session_idle_minutes)
    removed += await StaffSession.filter(last_seen_at__lte=idle_cut).delete()
    attempt_cut = now - timedelta(minutes=settings.login_window_minutes) - timedelta(days=1)
    removed += await LoginAttempt.filter(at__lte=attempt_cut).delete()
    return removed


# --- two-factor -----------------------------------------------------------------------------


def new_totp_secret() -> str:
    """A fresh base32 TOTP seed."""
    return pyotp.random_base32()


def totp_uri(*, secret: str, email: str, issuer: str = TOTP_ISSUER) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step a code belongs to (allowing one step of clock drift), or None."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // totp.interval
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def enable_totp(
    *, user: StaffUser, secret: str, code: str, ip: str = "", now: datetime | None = None
) -> list[str] | None:
    """Switch on 2FA if the code proves the app has the secret; returns new recovery codes."""
    now = now or utcnow()
    step = _matching_step(secret, code, now)
    if step is None:
        return None
    async with in_transaction():
        user.totp_secret = crypto.seal(secret)
        user.totp_enabled_at = now
        user.totp_last_step = step
        await user.save(update_fields=["totp_secret", "totp_enabled_at", "totp_last_step"])
        codes = await replace_recovery_codes(user=user)
    await audit.record(action="2fa.enabled", actor=user, ip=ip)
    return codes


async def disable_totp(*, user: StaffUser, actor: StaffUser, ip: str = "") -> None:
    """Switch off 2FA and drop its recovery codes."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = 0
    await user.save(update_fields=["totp_secret", "totp_enabled_at", "totp_last_step"])
    await RecoveryCode.filter(user=user).delete()
    await audit.record(action="2fa.disabled", actor=actor, target=user.email, ip=ip)


async def verify_totp(*, user: StaffUser, code: str, now: datetime | None = None) -> bool:
    """Accept a current TOTP code once: a code (or an older one) cannot be replayed."""
    now = now or utcnow()
    secret = crypto.unseal(user.totp_secret) if user.totp_secret else None
    if secret is None:
        return False
    step = _matching_step(secret, code, now)
    if step is None:
        return False
    # Conditional update: of two requests with the same code only one changes the row.
    claimed = await StaffUser.filter(id=user.id, totp_last_step__lt=step).update(
        totp_last_step=step
    )
    if claimed:
        user.totp_last_step = step
    return bool(claimed)


def _format_recovery(raw: str) -> str:
    return f"{raw[:5]}-{raw[5:10]}"


def _normalise_recovery(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


async def replace_recovery_codes(*, user: StaffUser) -> list[str]:
    """Issue a new set of recovery codes (shown once), invalidating the old ones."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    codes = [
        "".join(secrets.choice(alphabet) for _ in range(10)) for _ in range(RECOVERY_CODE_COUNT)
    ]
    await RecoveryCode.filter(user=user).delete()
    await RecoveryCode.bulk_create(
        [RecoveryCode(user=user, code_hash=crypto.hash_token(code)) for code in codes]
    )
    return [_format_recovery(code) for code in codes]


async def use_recovery_code(*, user: StaffUser, code: str, now: datetime | None = None) -> bool:
    """Accept an unused recovery code once."""
    now = now or utcnow()
    normalised = _normalise_recovery(code)
    if len(normalised) != 10:
        return False
    used = await RecoveryCode.filter(
        user=user, code_hash=crypto.hash_token(normalised), used_at__isnull=True
    ).update(used_at=now)
    if used:
        await audit.record(action="2fa.recovery_code_used", actor=user)
    return bool(used)


async def remaining_recovery_codes(*, user: StaffUser) -> int:
    """How many recovery codes are still unused."""
    return await RecoveryCode.filter(user=user, used_at__isnull=True).count()


async def second_factor(
    *, user: StaffUser, code: str, ip: str, now: datetime | None = None
) -> LoginResult:
    """Check a TOTP or recovery code at sign-in, rate limited like passwords."""
    now = now or utcnow()
    wait = await retry_after(email=user.email, ip=ip, now=now)
    if wait:
        return LoginResult(LoginOutcome.RATE_LIMITED, retry_after=wait)
    code = code.strip()
    ok = await verify_totp(user=user, code=code, now=now)
    if not ok and len(_normalise_recovery(code)) == 10:
        ok = await use_recovery_code(user=user, code=code, now=now)
    if not ok:
        await LoginAttempt.create(email=user.email, ip=ip, at=now)
        await audit.record(action="2fa.failed", actor=user, ip=ip)
        return LoginResult(LoginOutcome.INVALID)
    return LoginResult(LoginOutcome.OK, user=user, stage=SessionStage.FULL)
