"""Contacts (one per email across webinars) and their registrations."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Contact(Model):
    """One person, identified by email address, across every webinar."""

    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    name = fields.CharField(max_length=200, default="")
    phone = fields.CharField(max_length=40, default="")
    company_domain = fields.CharField(max_length=253, default="", db_index=True)
    unsubscribed_at = fields.DatetimeField(null=True)
    suppressed_at = fields.DatetimeField(null=True)  # hard bounce or complaint
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "contact"


class Registrant(Model):
    """A contact's registration for one session of a webinar, with a personal join token."""

    id = fields.IntField(primary_key=True)
    contact: fields.ForeignKeyRelation[Contact] = fields.ForeignKeyField(
        "encore.Contact", related_name="registrations", on_delete=fields.CASCADE
    )
    webinar: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        "encore.Webinar", related_name="registrants", on_delete=fields.CASCADE
    )
    session: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "encore.WebinarSession", related_name="registrants", null=True, on_delete=fields.SET_NULL
    )
    join_token_hash = fields.CharField(max_length=64, unique=True)
    # The token itself, encrypted, so the same personal link can be sent again on request.
    join_token_sealed = fields.TextField(default="")
    timezone = fields.CharField(max_length=64, default="UTC")
    language = fields.CharField(max_length=8, default="en")
    answers: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    utm: fields.JSONField[dict[str, str]] = fields.JSONField(default=dict)
    referrer = fields.CharField(max_length=500, default="")
    link_sent_at = fields.DatetimeField(null=True)  # last time the join link was emailed
    link_sends = fields.IntField(default=0)
    # The email sequence of this registration: 1 to plan (new), 2 to plan again (a change of
    # session or sequence), 0 planned. The scheduler's planner picks up the non-zero ones.
    plan_state = fields.SmallIntField(default=1, db_index=True)
    contact_id: int
    webinar_id: int
    session_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "registrant"
        unique_together = (("contact", "webinar"),)
        # Counting a webinar's (or a session's) registrants for the dashboards.
        indexes = (("webinar_id", "session_id"),)


class RegistrationAttempt(Model):
    """One registration request, counted per client for rate limiting (the address is hashed)."""

    id = fields.BigIntField(primary_key=True)
    client_hash = fields.CharField(max_length=64, db_index=True)
    at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "registration_attempt"
