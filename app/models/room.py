"""What happens in the live room: chat and interaction responses."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class ChatMessage(Model):
    """A chat message with its moment in the video, so replays can show it in sync."""

    id = fields.BigIntField(primary_key=True)
    session: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        "encore.WebinarSession", related_name="chat_messages", on_delete=fields.CASCADE
    )
    registrant: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "encore.Registrant", related_name="chat_messages", null=True, on_delete=fields.CASCADE
    )
    staff: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "encore.StaffUser", related_name="chat_messages", null=True, on_delete=fields.SET_NULL
    )
    body = fields.TextField()
    visibility = fields.CharField(max_length=16, default="private")  # private, pending, public
    sender_name = fields.CharField(max_length=120, default="")  # as shown when it was written
    pinned = fields.BooleanField(default=False)
    automatic = fields.BooleanField(default=False)  # the room's auto-response, not a person
    reply_to: fields.ForeignKeyNullableRelation[ChatMessage] = fields.ForeignKeyField(
        "encore.ChatMessage", related_name="replies", null=True, on_delete=fields.SET_NULL
    )
    media_seconds = fields.FloatField(default=0.0)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    deleted_at = fields.DatetimeField(null=True)
    # A team reply to someone who had left the room is emailed to them; set once it is queued.
    emailed_at = fields.DatetimeField(null=True)
    read_at = fields.DatetimeField(null=True)  # an attendee's message seen by the team

    class Meta:
        table = "chat_message"
        # A session's messages, by conversation (chat figures, slow mode's last message).
        indexes = (("session_id", "registrant_id"),)


class InteractionResponse(Model):
    """An attendee's answer to a poll, quiz, rating or question, or a click on an offer."""

    id = fields.BigIntField(primary_key=True)
    interaction: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        "encore.Interaction", related_name="responses", on_delete=fields.CASCADE
    )
    session: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        "encore.WebinarSession", related_name="responses", on_delete=fields.CASCADE
    )
    registrant: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        "encore.Registrant", related_name="responses", on_delete=fields.CASCADE
    )
    answer: fields.JSONField[Any] = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "interaction_response"
        unique_together = (("interaction", "registrant", "session"),)
        # An attendee's answers in a session, read at every join.
        indexes = (("session_id", "registrant_id"),)


class RoomRestriction(Model):
    """A muted or banned attendee of one session (banned: may not enter the room again)."""

    id = fields.IntField(primary_key=True)
    session: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        "encore.WebinarSession", related_name="restrictions", on_delete=fields.CASCADE
    )
    registrant: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        "encore.Registrant", related_name="restrictions", on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=8)  # mute, ban
    staff: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "encore.StaffUser", related_name="restrictions", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "room_restriction"
        unique_together = (("session", "registrant"),)
