"""Staff accounts, their sessions, sign-in attempts, one-time tokens and workspace settings."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class Role(StrEnum):
    """What a staff member may do; permissions per role live in app.services.permissions."""

    OWNER = "owner"
    ADMIN = "admin"
    EDITOR = "editor"
    MODERATOR = "moderator"
    ANALYST = "analyst"


class StaffUser(Model):
    """A member of the team who signs in to the admin."""

    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    name = fields.CharField(max_length=120)
    role = fields.CharEnumField(Role, max_length=16)
    password_hash = fields.CharField(max_length=255)
    is_active = fields.BooleanField(default=True)
    totp_secret = fields.CharField(max_length=255, null=True)  # encrypted with the secret key
    totp_enabled_at = fields.DatetimeField(null=True)
    totp_last_step = fields.BigIntField(default=0)  # last accepted time step: no code twice
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)
    password_changed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "staff_user"

    @property
    def has_totp(self) -> bool:
        """Whether two-factor sign-in is switched on for this user."""
        return self.totp_enabled_at is not None


class RecoveryCode(Model):
    """A one-time two-factor recovery code, stored only as a keyed hash."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[StaffUser] = fields.ForeignKeyField(
        "encore.StaffUser", related_name="recovery_codes", on_delete=fields.CASCADE
    )
    code_hash = fields.CharField(max_length=64, db_index=True)
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "staff_recovery_code"


class SessionStage(StrEnum):
    """How far a sign-in has got: password only, or fully signed in."""

    PASSWORD = "password"  # noqa: S105 - password accepted, second factor still due
    ENROL = "enrol"  # password accepted, 2FA required but not yet set up
    FULL = "full"


class StaffSession(Model):
    """A signed-in browser: the cookie holds a random token, the row only its hash."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    user: fields.ForeignKeyRelation[StaffUser] = fields.ForeignKeyField(
        "encore.StaffUser", related_name="sessions", on_delete=fields.CASCADE
    )
    stage = fields.CharEnumField(SessionStage, max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_seen_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)
    ip = fields.CharField(max_length=64, default="")
    user_agent = fields.CharField(max_length=255, default="")

    class Meta:
        table = "staff_session"


class LoginAttempt(Model):
    """A failed sign-in, counted per account and per IP address for rate limiting."""

    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=254, db_index=True)
    ip = fields.CharField(max_length=64, db_index=True)
    at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "staff_login_attempt"


class TokenPurpose(StrEnum):
    """What a one-time emailed link is for."""

    INVITE = "invite"
    RESET = "reset"
    SETUP = "setup"  # the first owner's setup link printed at first start


class OneTimeToken(Model):
    """An emailed or printed single-use link (invite, password reset, first setup)."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    purpose = fields.CharEnumField(TokenPurpose, max_length=16)
    email = fields.CharField(max_length=254)
    role = fields.CharEnumField(Role, max_length=16, null=True)
    user: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "encore.StaffUser", related_name="tokens", null=True, on_delete=fields.CASCADE
    )
    created_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "encore.StaffUser", related_name="issued_tokens", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "staff_token"


class WorkspaceSetting(Model):
    """One workspace-wide setting changed in the admin (JSON value under a key)."""

    key = fields.CharField(max_length=64, primary_key=True)
    value: fields.JSONField[Any] = fields.JSONField()
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "workspace_setting"
