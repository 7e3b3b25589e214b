"""The team: the first owner, invitations, password resets, roles and disabling accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from app.models import OneTimeToken, Role, StaffSession, StaffUser, TokenPurpose
from app.services import audit, auth, crypto, mail
from app.services.permissions import assignable_roles
from app.settings import get_settings

INVITE_TTL = timedelta(days=3)
RESET_TTL = timedelta(hours=1)
SETUP_TTL = timedelta(days=7)


class TeamError(Exception):
    """A team change was refused; the message is meant for the person who asked."""


@dataclass(frozen=True)
class IssuedLink:
    """A one-time link and its absolute URL (only ever shown or emailed once)."""

    token: str
    url: str


def _link(path: str, token: str) -> IssuedLink:
    return IssuedLink(token=token, url=f"{get_settings().public_base_url}{path}/{token}")


async def has_owner() -> bool:
    """Whether anyone can sign in as an owner yet."""
    return await StaffUser.filter(role=Role.OWNER, is_active=True).exists()


async def create_user(
    *, email: str, name: str, password: str, role: Role, actor: StaffUser | None = None
) -> StaffUser:
    """Create a staff account after checking the address and password."""
    email = auth.normalise_email(email)
    if "@" not in email or len(email) > 254:
        raise TeamError("Enter a valid email address.")
    if not name.strip():
        raise TeamError("Enter a name.")
    problem = auth.password_problem(password, email=email, name=name)
    if problem:
        raise TeamError(problem)
    if await StaffUser.filter(email=email).exists():
        raise TeamError("An account with this email address already exists.")
    user = await StaffUser.create(
        email=email,
        name=name.strip()[:120],
        role=role,
        password_hash=crypto.hash_password(password),
        password_changed_at=auth.utcnow(),
    )
    await audit.record(
        action="user.created", actor=actor or user, target=email, details={"role": role}
    )
    return user


async def issue_setup_link(*, now: datetime | None = None) -> IssuedLink | None:
    """A one-time link to create the first owner; None once an owner exists."""
    if await has_owner():
        return None
    now = now or auth.utcnow()
    await OneTimeToken.filter(purpose=TokenPurpose.SETUP).delete()
    token = crypto.new_token()
    await OneTimeToken.create(
        token_hash=crypto.hash_token(token),
        purpose=TokenPurpose.SETUP,
        email="",
        role=Role.OWNER,
        expires_at=now + SETUP_TTL,
    )
    return _link("/setup", token)


async def find_token(
    *, token: str, purpose: TokenPurpose, now: datetime | None = None
) -> OneTimeToken | None:
    """The unused, unexpired token of this purpose, or None."""
    now = now or auth.utcnow()
    if not token or len(token) > 128:
        return None
    row = await OneTimeToken.get_or_none(token_hash=crypto.hash_token(token), purpose=purpose)
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    return row


async def _consume(row: OneTimeToken, now: datetime) -> bool:
    # Conditional update: of two submissions of one link only one proceeds.
    return bool(await OneTimeToken.filter(id=row.id, used_at__isnull=True).update(used_at=now))


async def complete_setup(
    *, token: str, email: str, name: str, password: str, now: datetime | None = None
) -> StaffUser:
    """Create the first owner from the printed setup link."""
    now = now or auth.utcnow()
    row = await find_token(token=token, purpose=TokenPurpose.SETUP, now=now)
    if row is None or await has_owner():
        raise TeamError("This setup link has expired or was already used.")
    async with in_transaction():
        if not await _consume(row, now):
            raise TeamError("This setup link has expired or was already used.")
        return await create_user(email=email, name=name, password=password, role=Role.OWNER)


async def invite(
    *, email: str, role: Role, actor: StaffUser, ip: str = "", now: datetime | None = None
) -> IssuedLink:
    """Email a teammate a link to join with a role."""
    now = now or auth.utcnow()
    email = auth.normalise_email(email)
    if "@" not in email or "." not in email.rsplit("@", 1)[-1] or len(email) > 254:
        raise TeamError("Enter a valid email address.")
    if role not in assignable_roles(actor.role):
        raise TeamError("You cannot give that role.")
    if await StaffUser.filter(email=email).exists():
        raise TeamError("This person already has an account.")
    await OneTimeToken.filter(
        purpose=TokenPurpose.INVITE, email=email, used_at__isnull=True
    ).delete()
    token = crypto.new_token()
    await OneTimeToken.create(
        token_hash=crypto.hash_token(token),
        purpose=TokenPurpose.INVITE,
        email=email,
        role=role,
        created_by=actor,
        expires_at=now + INVITE_TTL,
    )
    link = _link("/invite", token)
    await mail.send_now(
        to=email,
        subject=f"{actor.name} invited you to Encore",
        text=(
            f"{actor.name} invited you to join the team on Encore as {role.value}.\n\n"
            f"Accept the invitation and choose a password:\n{link.url}\n\n"
            f"The link works once and expires in {INVITE_TTL.days} days."
        ),
    )
    await audit.record(
        action="user.invited", actor=actor, target=email, ip=ip, details={"role": role}
    )
    return link


async def accept_invite(
    *, token: str, name: str, password: str, now: datetime | None = None
) -> StaffUser:
    """Create the invited account."""
    now = now or auth.utcnow()
    row = await find_token(token=token, purpose=TokenPurpose.INVITE, now=now)
    if row is None or row.role is None:
        raise TeamError("This invitation has expired or was already used. Ask for a new one.")
    async with in_transaction():
        if not await _consume(row, now):
            raise TeamError("This invitation has expired or was already used. Ask for a new one.")
        user: StaffUser = await create_user(
            email=row.email, name=name, password=password, role=row.role
        )
    return user


async def request_password_reset(*, email: str, ip: str = "", now: datetime | None = None) -> None:
    """Email a reset link if the account exists; says nothing either way to the caller."""
    now = now or auth.utcnow()
    user = await StaffUser.get_or_none(email=auth.normalise_email(email), is_active=True)
    await audit.record(action="password.reset_requested", actor=user, actor_email=email, ip=ip)
    if user is None:
        return
    recent = await OneTimeToken.filter(
        purpose=TokenPurpose.RESET, user=user, created_at__gte=now - timedelta(minutes=15)
    ).count()
    if recent >= 3:  # nobody can use this form to flood an inbox
        return
    token = crypto.new_token()
    await OneTimeToken.create(
        token_hash=crypto.hash_token(token),
        purpose=TokenPurpose.RESET,
        email=user.email,
        user=user,
        expires_at=now + RESET_TTL,
    )
    link = _link("/reset", token)
    await mail.send_now(
        to=user.email,
        subject="Reset your Encore password",
        text=(
            f"Hello {user.name},\n\nSomeone (hopefully you) asked to reset your Encore password.\n"
            f"Choose a new one here:\n{link.url}\n\n"
            "The link works once and expires in one hour. If you did not ask, ignore this email."
        ),
    )


async def reset_password(
    *, token: str, password: str, ip: str = "", now: datetime | None = None
) -> StaffUser:
    """Set a new password from a reset link and sign the user out everywhere."""
    now = now or auth.utcnow()
    row = await find_token(token=token, purpose=TokenPurpose.RESET, now=now)
    user = await StaffUser.get_or_none(id=row.user_id) if row and row.user_id else None  # type: ignore[attr-defined]
    if row is None or user is None or not user.is_active:
        raise TeamError("This reset link has expired or was already used. Ask for a new one.")
    problem = auth.password_problem(password, email=user.email, name=user.name)
    if problem:
        raise TeamError(problem)
    async with in_transaction():
        if not await _consume(row, now):
            raise TeamError("This reset link has expired or was already used. Ask for a new one.")
        await _set_password(user, password, now)
    await auth.end_all_sessions(user=user)
    await audit.record(action="password.reset", actor=user, ip=ip)
    return user


async def change_password(
    *, user: StaffUser, current: str, new: str, keep: StaffSession, ip: str = ""
) -> None:
    """Change one's own password; other browsers are signed out."""
    if not crypto.verify_password(user.password_hash, current):
        raise TeamError("Your current password is not correct.")
    problem = auth.password_problem(new, email=user.email, name=user.name)
    if problem:
        raise TeamError(problem)
    await _set_password(user, new, auth.utcnow())
    await auth.end_all_sessions(user=user, except_session=keep)
    await audit.record(action="password.changed", actor=user, ip=ip)


async def _set_password(user: StaffUser, password: str, now: datetime) -> None:
    user.password_hash = crypto.hash_password(password)
    user.password_changed_at = now
    await user.save(update_fields=["password_hash", "password_changed_at"])


async def _guard_owner_change(target: StaffUser, actor: StaffUser) -> None:
    if target.role == Role.OWNER and actor.role != Role.OWNER:
        raise TeamError("Only an owner can change another owner.")
    # A disabled owner is not one of the active owners this rule protects.
    if target.role == Role.OWNER and target.is_active:
        owners = await StaffUser.filter(role=Role.OWNER, is_active=True).count()
        if owners <= 1:
            raise TeamError("Encore needs at least one active owner.")


async def set_role(*, target: StaffUser, role: Role, actor: StaffUser, ip: str = "") -> None:
    """Give a teammate another role."""
    if role == target.role:
        return
    if role not in assignable_roles(actor.role):
        raise TeamError("You cannot give that role.")
    await _guard_owner_change(target, actor)
    previous = target.role
    target.role = role
    await target.save(update_fields=["role"])
    await audit.record(
        action="user.role_changed",
        actor=actor,
        target=target.email,
        ip=ip,
        details={"from": previous, "to": role},
    )


async def set_active(*, target: StaffUser, active: bool, actor: StaffUser, ip: str = "") -> None:
    """Disable (signing out at once) or re-enable a teammate."""
    if target.id == actor.id:
        raise TeamError("You cannot disable your own account.")
    if not assignable_roles(actor.role) or (target.role == Role.OWNER and actor.role != Role.OWNER):
        raise TeamError("Only an owner can change another owner.")
    if not active:
        await _guard_owner_change(target, actor)
    target.is_active = active
    await target.save(update_fields=["is_active"])
    if not active:
        await auth.end_all_sessions(user=target)
    await audit.record(
        action="user.enabled" if active else "user.disabled",
        actor=actor,
        target=target.email,
        ip=ip,
    )


async def pending_invites() -> list[OneTimeToken]:
    """Invitations not yet accepted and not expired."""
    return await OneTimeToken.filter(
        purpose=TokenPurpose.INVITE, used_at__isnull=True, expires_at__gt=auth.utcnow()
    ).order_by("-created_at")


async def revoke_invite(*, invite_id: int, actor: StaffUser, ip: str = "") -> None:
    """Withdraw an invitation so its link stops working."""
    row = await OneTimeToken.get_or_none(id=invite_id, purpose=TokenPurpose.INVITE)
    if row is None:
        raise TeamError("That invitation no longer exists.")
    await row.delete()
    await audit.record(action="user.invite_revoked", actor=actor, target=row.email, ip=ip)
