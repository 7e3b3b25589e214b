"""Append-only engagement events."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class AnalyticsEvent(Model):
    """Something a visitor or attendee did, keyed by webinar, session, registrant and contact."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=32)
    at = fields.DatetimeField(db_index=True)
    webinar_id = fields.IntField(null=True)
    session_id = fields.IntField(null=True)
    registrant_id = fields.IntField(null=True)
    contact_id = fields.IntField(null=True, db_index=True)
    video_seconds = fields.FloatField(null=True)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "analytics_event"
        # Composite instead of one index per column (a heartbeat insert pays for each index):
        # who is online in a session lately, one attendee's latest event, a webinar's events of
        # one kind; `at` alone serves the retention clean-up.
        indexes = (
            ("session_id", "at"),
            ("registrant_id", "session_id", "at"),
            ("webinar_id", "kind"),
        )


class Attendance(Model):
    """What one registrant did in one session, kept up to date as their events arrive.

    The dashboards read these rows (one per attendee and session) instead of every event:
    `minutes` lists the minutes of the video they were watching (for the drop-off curve),
    `watched_seconds` adds up the time between their heartbeats while the video played.
    """

    id = fields.BigIntField(primary_key=True)
    webinar_id = fields.IntField(db_index=True)
    session_id = fields.IntField()  # the unique index below starts with it
    registrant_id = fields.IntField(db_index=True)
    contact_id = fields.IntField(db_index=True)
    first_join_at = fields.DatetimeField(null=True)
    last_seen_at = fields.DatetimeField(null=True)
    watched_seconds = fields.FloatField(default=0.0)
    furthest_seconds = fields.FloatField(default=0.0)
    minutes: fields.JSONField[list[int]] = fields.JSONField(default=list)
    stayed_to_end = fields.BooleanField(default=False)
    clicked_offer = fields.BooleanField(default=False)
    chat_messages = fields.IntField(default=0)
    responses = fields.IntField(default=0)
    downloads = fields.IntField(default=0)
    # The offers, links and downloads (interaction ids) this attendee opened, each once.
    clicked: fields.JSONField[list[int]] = fields.JSONField(default=list)

    class Meta:
        table = "attendance"
        unique_together = (("session_id", "registrant_id"),)


class DailyVisitor(Model):
    """One landing-page visitor (the random id of their cookie) on one UTC day, per webinar.

    Counting distinct visitors over a date range reads these few rows instead of every view.
    """

    id = fields.BigIntField(primary_key=True)
    webinar_id = fields.IntField()
    day = fields.DateField()
    visitor = fields.BigIntField()

    class Meta:
        table = "daily_visitor"
        unique_together = (("webinar_id", "day", "visitor"),)


class Account(Model):
    """A customer company: the people whose addresses end in its domains."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    domains: fields.JSONField[list[str]] = fields.JSONField(default=list)
    notes = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "account"


class Segment(Model):
    """A saved filter over contacts (its rules are JSON, read by app.services.segments)."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    rules: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_by: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "encore.StaffUser", related_name="segments", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "segment"
