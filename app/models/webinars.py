"""Webinars, their recordings, schedules, sessions and timed interactions."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class VideoState(StrEnum):
    """`uploaded -> transcoding -> ready | failed`."""

    UPLOADED = "uploaded"
    TRANSCODING = "transcoding"
    READY = "ready"
    FAILED = "failed"


class Video(Model):
    """An uploaded recording and, once transcoded, its HLS renditions."""

    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=200)
    original_filename = fields.CharField(max_length=255, default="")
    source_key = fields.CharField(max_length=512)  # storage key of the uploaded file (private)
    size_bytes = fields.BigIntField(default=0)
    content_type = fields.CharField(max_length=100, default="")
    state = fields.CharEnumField(VideoState, max_length=16, default=VideoState.UPLOADED)
    probe: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    duration_seconds = fields.FloatField(null=True)
    width = fields.IntField(null=True)
    height = fields.IntField(null=True)
    audio_only = fields.BooleanField(default=False)
    # Playable as soon as a first rendition is published, before the whole ladder is done.
    playable = fields.BooleanField(default=False)
    hls_key = fields.CharField(max_length=512, null=True)  # master playlist, once published
    poster_key = fields.CharField(max_length=512, null=True)
    thumbnails_key = fields.CharField(max_length=512, null=True)  # WebVTT map of the sprite
    renditions: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list)
    stage = fields.CharField(max_length=32, default="")  # what the transcoder is doing now
    progress = fields.FloatField(default=0.0)  # percent of the current stage
    eta_seconds = fields.FloatField(null=True)
    error = fields.TextField(null=True)
    error_reason = fields.CharField(max_length=32, null=True)
    attempts = fields.IntField(default=0)
    cancel_requested = fields.BooleanField(default=False)
    claimed_at = fields.DatetimeField(null=True)
    heartbeat_at = fields.DatetimeField(null=True, db_index=True)
    created_by: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "encore.StaffUser", related_name="videos", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    ready_at = fields.DatetimeField(null=True)

    class Meta:
        table = "video"


class Caption(Model):
    """A subtitle track of a video in one language, stored as WebVTT."""

    id = fields.IntField(primary_key=True)
    video: fields.ForeignKeyRelation[Video] = fields.ForeignKeyField(
        "encore.Video", related_name="captions", on_delete=fields.CASCADE
    )
    language = fields.CharField(max_length=35)  # BCP 47 tag, e.g. en, de, pt-BR
    label = fields.CharField(max_length=80)
    key = fields.CharField(max_length=512)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "caption"
        unique_together = (("video", "language"),)


class Upload(Model):
    """A resumable upload in progress (tus to local disk, or browser-direct S3 multipart)."""

    id = fields.CharField(max_length=64, primary_key=True)  # random, unguessable
    backend = fields.CharField(max_length=8)  # local | s3
    filename = fields.CharField(max_length=255)
    content_type = fields.CharField(max_length=100, default="")
    size = fields.BigIntField()
    offset = fields.BigIntField(default=0)  # bytes received so far (local)
    storage_key = fields.CharField(max_length=512)
    s3_upload_id = fields.CharField(max_length=1024, null=True)
    meta: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_by: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "encore.StaffUser", related_name="uploads", null=True, on_delete=fields.SET_NULL
    )
    video: fields.ForeignKeyNullableRelation[Video] = fields.ForeignKeyField(
        "encore.Video", related_name="uploads", null=True, on_delete=fields.SET_NULL
    )
    # The foreign key columns, for type checkers (Tortoise adds them from the relations above).
    created_by_id: int | None
    video_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(db_index=True)
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "upload"


class WebinarStatus(StrEnum):
    """Drafts are editable and private; published webinars have a public landing page."""

    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class Webinar(Model):
    """A recorded presentation that runs as scheduled sessions."""

    id = fields.IntField(primary_key=True)
    slug = fields.CharField(max_length=80, unique=True)
    title = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    language = fields.CharField(max_length=8, default="en")
    status = fields.CharEnumField(WebinarStatus, max_length=16, default=WebinarStatus.DRAFT)
    video: fields.ForeignKeyNullableRelation[Video] = fields.ForeignKeyField(
        "encore.Video", related_name="webinars", null=True, on_delete=fields.SET_NULL
    )
    video_id: int | None
    theme: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    landing: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    registration_fields: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list)
    # Who may register: allowed and blocked email domains, and the disposable-address block.
    registration_rules: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    published_at = fields.DatetimeField(null=True)
    chat_mode = fields.CharField(max_length=16, default="private")
    # The live room's words and chat rules (notice, welcome, auto-response, slow mode, banned
    # words, end screen); app.services.room_settings reads it with defaults.
    room: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # The email sequence: whether its default steps were created, and what someone who
    # registers after a reminder's moment gets instead ("skip" or "latest": that one at once).
    emails_configured = fields.BooleanField(default=False)
    late_reminders = fields.CharField(max_length=16, default="skip")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webinar"


class Presenter(Model):
    """A person shown on a webinar's landing page."""

    id = fields.IntField(primary_key=True)
    webinar: fields.ForeignKeyRelation[Webinar] = fields.ForeignKeyField(
        "encore.Webinar", related_name="presenters", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=120)
    title = fields.CharField(max_length=120, default="")
    bio = fields.TextField(default="")
    photo_key = fields.CharField(max_length=512, null=True)
    position = fields.IntField(default=0)

    class Meta:
        table = "presenter"


class Schedule(Model):
    """When a webinar runs: rules kept as local wall times plus an IANA zone."""

    id = fields.IntField(primary_key=True)
    webinar: fields.OneToOneRelation[Webinar] = fields.OneToOneField(
        "encore.Webinar", related_name="schedule", on_delete=fields.CASCADE
    )
    webinar_id: int
    kind = fields.CharField(max_length=16, default="recurring")
    timezone = fields.CharField(max_length=64, default="UTC")
    attendee_local = fields.BooleanField(default=False)
    rules: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    blackout_dates: fields.JSONField[list[str]] = fields.JSONField(default=list)
    # What happens to registrants of a session an edit removes: "move" to the nearest session,
    # or "notify" them to pick a new time.
    orphan_policy = fields.CharField(max_length=16, default="move")
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "schedule"


class WebinarSession(Model):
    """One run of a webinar starting at an instant (stored in UTC)."""

    id = fields.IntField(primary_key=True)
    webinar: fields.ForeignKeyRelation[Webinar] = fields.ForeignKeyField(
        "encore.Webinar", related_name="sessions", on_delete=fields.CASCADE
    )
    starts_at = fields.DatetimeField(db_index=True)
    kind = fields.CharField(max_length=16, default="scheduled")  # scheduled, jit, on_demand
    capacity = fields.IntField(null=True)
    closed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webinar_session"
        unique_together = (("webinar", "starts_at", "kind"),)


class Interaction(Model):
    """A poll, question, offer, download or link that opens at a moment in the video."""

    id = fields.IntField(primary_key=True)
    webinar: fields.ForeignKeyRelation[Webinar] = fields.ForeignKeyField(
        "encore.Webinar", related_name="interactions", on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=16)
    title = fields.CharField(max_length=200)
    config: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    opens_at_seconds = fields.FloatField()
    closes_at_seconds = fields.FloatField(null=True)
    required = fields.BooleanField(default=False)
    # Set for an interaction a presenter pushed into one running session; None: every session.
    session: fields.ForeignKeyNullableRelation[WebinarSession] = fields.ForeignKeyField(
        "encore.WebinarSession",
        related_name="pushed_interactions",
        null=True,
        on_delete=fields.CASCADE,
    )
    position = fields.IntField(default=0)

    class Meta:
        table = "interaction"
