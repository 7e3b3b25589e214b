"""Append-only engagement events."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class AnalyticsEvent(Model):
    """Something a visitor or attendee did, keyed by webinar, session, registrant and contact."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=32, db_index=True)
    at = fields.DatetimeField(db_index=True)
    webinar_id = fields.IntField(null=True, db_index=True)
    session_id = fields.IntField(null=True, db_index=True)
    registrant_id = fields.IntField(null=True, db_index=True)
    contact_id = fields.IntField(null=True, db_index=True)
    video_seconds = fields.FloatField(null=True)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "analytics_event"
