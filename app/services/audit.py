"""The audit trail of security-relevant actions."""

from __future__ import annotations

from typing import Any

from app.models import AuditEvent, StaffUser


async def record(
    *,
    action: str,
    actor: StaffUser | None = None,
    actor_email: str = "",
    target: str = "",
    ip: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit log."""
    return await AuditEvent.create(
        action=action,
        actor=actor,
        actor_email=actor.email if actor else actor_email,
        target=target[:255],
        ip=ip[:64],
        details=details or {},
    )


async def recent(*, limit: int = 100, offset: int = 0) -> list[AuditEvent]:
    """The newest audit events first."""
    return await AuditEvent.all().order_by("-at", "-id").offset(offset).limit(limit)
