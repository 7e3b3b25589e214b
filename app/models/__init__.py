"""Tortoise models of the whole domain, one module per noun group."""

from app.models.analytics import (
    Account,
    AnalyticsEvent,
    Attendance,
    DailyVisitor,
    Segment,
)
from app.models.audit import AuditEvent
from app.models.emails import Audience, EmailState, EmailStep, OutboxMessage, PlannedEmail, StepKind
from app.models.people import Contact, Registrant, RegistrationAttempt
from app.models.room import ChatMessage, InteractionResponse, RoomRestriction
from app.models.staff import (
    LoginAttempt,
    OneTimeToken,
    RecoveryCode,
    Role,
    SessionStage,
    StaffSession,
    StaffUser,
    TokenPurpose,
    WorkspaceSetting,
)
from app.models.webinars import (
    Caption,
    Interaction,
    Presenter,
    Schedule,
    Upload,
    Video,
    VideoState,
    Webinar,
    WebinarSession,
    WebinarStatus,
)

__all__ = [
    "Account",
    "AnalyticsEvent",
    "Attendance",
    "Audience",
    "AuditEvent",
    "Caption",
    "ChatMessage",
    "Contact",
    "DailyVisitor",
    "EmailState",
    "EmailStep",
    "Interaction",
    "InteractionResponse",
    "LoginAttempt",
    "OneTimeToken",
    "OutboxMessage",
    "PlannedEmail",
    "Presenter",
    "RecoveryCode",
    "Registrant",
    "RegistrationAttempt",
    "Role",
    "RoomRestriction",
    "Schedule",
    "Segment",
    "SessionStage",
    "StaffSession",
    "StaffUser",
    "StepKind",
    "TokenPurpose",
    "Upload",
    "Video",
    "VideoState",
    "Webinar",
    "WebinarSession",
    "WebinarStatus",
    "WorkspaceSetting",
]
