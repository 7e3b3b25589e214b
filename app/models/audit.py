"""The audit log of security-relevant actions."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class AuditEvent(Model):
    """Who did what, when and from where (append-only)."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(auto_now_add=True, db_index=True)
    actor: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "encore.StaffUser", related_name="audit_events", null=True, on_delete=fields.SET_NULL
    )
    actor_email = fields.CharField(max_length=254, default="")
    action = fields.CharField(max_length=64, db_index=True)
    target = fields.CharField(max_length=255, default="")
    ip = fields.CharField(max_length=64, default="")
    details: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "audit_event"
        ordering = ["-at", "-id"]
