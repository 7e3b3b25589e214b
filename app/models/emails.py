"""Emails as rows: planned messages to deliver, and the outbox of the embedded mode."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class EmailState(StrEnum):
    """`scheduled -> sending -> sent | failed | cancelled`."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class PlannedEmail(Model):
    """One email due at a moment, claimed atomically by the scheduler when due."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=32)
    to_email = fields.CharField(max_length=254)
    registrant: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "encore.Registrant", related_name="emails", null=True, on_delete=fields.CASCADE
    )
    registrant_id: int | None
    due_at = fields.DatetimeField(db_index=True)
    state = fields.CharEnumField(EmailState, max_length=16, default=EmailState.SCHEDULED)
    message_id = fields.CharField(max_length=255, unique=True)
    attempts = fields.IntField(default=0)
    claimed_at = fields.DatetimeField(null=True)
    sent_at = fields.DatetimeField(null=True)
    error = fields.TextField(null=True)
    context: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "planned_email"


class StepKind(StrEnum):
    """When a step of a webinar's email sequence goes out, relative to the session."""

    CONFIRMATION = "confirmation"  # at registration, with the join link and calendar file
    REMINDER = "reminder"  # `minutes` before the start
    STARTING = "starting"  # at the start ("starting now")
    FOLLOW_UP = "follow_up"  # `minutes` after the end, to one audience


class Audience(StrEnum):
    """Who a follow-up is for, by what they did in the session."""

    EVERYONE = "everyone"
    ATTENDED = "attended"  # watched to the end
    LEFT_EARLY = "left_early"  # joined, left before the end
    MISSED = "missed"  # never joined
    CLICKED_OFFER = "clicked_offer"  # clicked the offer during the session
    SEGMENT = "segment"  # the registrants who belong to a saved segment


class EmailStep(Model):
    """One email of a webinar's sequence: a reminder, "starting now" or a follow-up."""

    id = fields.IntField(primary_key=True)
    webinar: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        "encore.Webinar", related_name="email_steps", on_delete=fields.CASCADE
    )
    webinar_id: int
    kind = fields.CharEnumField(StepKind, max_length=16)
    minutes = fields.IntField(default=0)
    audience = fields.CharEnumField(Audience, max_length=16, default=Audience.EVERYONE)
    # With audience "segment": which one (a deleted segment switches the step off).
    segment: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "encore.Segment", related_name="email_steps", null=True, on_delete=fields.SET_NULL
    )
    enabled = fields.BooleanField(default=True)
    subject = fields.CharField(max_length=200)
    body = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "email_step"


class OutboxMessage(Model):
    """A message as it would have gone out over SMTP, kept when no SMTP server is configured."""

    id = fields.BigIntField(primary_key=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    message_id = fields.CharField(max_length=255, db_index=True)
    sender = fields.CharField(max_length=320)
    recipients = fields.TextField()
    subject = fields.CharField(max_length=998)
    content = fields.TextField()  # the RFC 5322 message as it would be sent

    class Meta:
        table = "outbox_message"
        ordering = ["-created_at", "-id"]
