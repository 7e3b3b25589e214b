"""Workspace-wide settings edited in the admin (no code, no restart)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from app.models import WorkspaceSetting


@dataclass(frozen=True)
class WorkspaceSettings:
    """Settings an owner or admin changes in the web UI."""

    name: str = "Encore"
    require_2fa: bool = False
    # The sender of every email (see app.services.sender); empty means the MAIL_FROM setting.
    sender_name: str = ""
    sender_address: str = ""
    reply_to: str = ""
    dkim_selector: str = ""
    dkim_key_sealed: str = ""  # RSA private key (PEM), sealed with the app key
    dkim_enabled: bool = False
    # Engagement events older than this many days are deleted (0: kept forever); the
    # dashboards' per-attendee rows stay.
    analytics_retention_days: int = 395


def _unwrap(stored: Any) -> Any:
    # Values are stored as {"value": ...}: Tortoise's JSONField takes a bare str for encoded JSON
    # and refuses plain text like a workspace name. Bare values written before still read.
    if isinstance(stored, dict) and set(stored) == {"value"}:
        return stored["value"]
    return stored


async def load() -> WorkspaceSettings:
    """The current workspace settings, with defaults for what was never set."""
    rows = {row.key: _unwrap(row.value) for row in await WorkspaceSetting.all()}
    known = {f.name for f in fields(WorkspaceSettings)}
    return WorkspaceSettings(**{k: v for k, v in rows.items() if k in known})


async def update(**changes: Any) -> WorkspaceSettings:
    """Store changed settings and return the new whole."""
    current = asdict(await load())
    for key, value in changes.items():
        if key not in current:
            raise KeyError(key)
        await WorkspaceSetting.update_or_create(key=key, defaults={"value": {"value": value}})
    return await load()
