"""Files attendees download from the room: stored under `downloads/`, served through their link.

An editor's upload gets a fresh key `downloads/<random>/<safe name>` (nothing else shares it,
nobody can guess it); the interaction keeps the key, the original name, the size and the type.
Attendees fetch it at `/j/<token>/files/<interaction id>`, which records who took it. A copied
webinar shares its original's files, so a file is removed only once no interaction offers it.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import re
import secrets
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

from app.models import AnalyticsEvent, Interaction, Registrant, RoomRestriction
from app.services import attendance
from media.storage import Storage, StorageError

log = logging.getLogger("encore.downloads")

# Multipart forms are read whole by the CSRF check (at most 32 MiB), so a file stays well below.
MAX_DOWNLOAD_BYTES = 25_000_000
DOWNLOAD_PREFIX = "downloads/"
FILE_NAME_MAX = 150
# Served as plain bytes: a browser must never render these from our origin.
_ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
    }
)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _one_line(text: str) -> str:
    kept = "".join(" " if unicodedata.category(char) == "Cc" else char for char in text)
    return " ".join(kept.split())


def safe_file_name(name: str) -> str:
    """A file name fit for a storage key: ASCII letters, digits, dots, dashes, underscores."""
    base = re.split(r"[/\\]", name)[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    stem, dot, extension = ascii_name.rpartition(".")
    if not dot:
        stem, extension = ascii_name, ""
    stem = _SAFE_NAME.sub("-", stem).strip("-._")[:90].rstrip("-._") or "file"
    extension = _SAFE_NAME.sub("", extension).strip("-._")[:10]
    return f"{stem}.{extension}" if extension else stem


def display_file_name(name: str) -> str:
    """The name attendees' browsers save a file as: no folders, quotes or control characters."""
    base = re.split(r"[/\\]", name)[-1]
    cleaned = _one_line(base.replace('"', "'"))[:FILE_NAME_MAX].strip()
    return cleaned or "file"


def file_fields(file_name: str, size: int) -> dict[str, Any]:
    """The config of a new file: a fresh key under downloads/, its name, size and type."""
    name = display_file_name(file_name)
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return {
        "file_key": f"{DOWNLOAD_PREFIX}{secrets.token_urlsafe(12)}/{safe_file_name(name)}",
        "file_name": name,
        "size": size,
        "content_type": served_type(guessed),
    }


def served_type(content_type: str) -> str:
    """The Content-Type a stored file is served with (active content only as plain bytes)."""
    main = content_type.split(";", 1)[0].strip().lower()
    if not main or main in _ACTIVE_TYPES or "/" not in main:
        return "application/octet-stream"
    return main


async def store_file(storage: Storage, key: str, source: Path, *, content_type: str) -> None:
    """Store an uploaded file under its key (StorageError when the store refuses)."""
    await asyncio.to_thread(storage.put_file, key, source, content_type=content_type)


async def drop_file(storage: Storage, key: str) -> bool:
    """Remove a stored file unless an interaction (such as a copied webinar's) still offers it."""
    configs = await Interaction.filter(kind="download").values_list("config", flat=True)
    if any(isinstance(config, dict) and config.get("file_key") == key for config in configs):
        return False
    try:
        await asyncio.to_thread(storage.delete, key)
    except StorageError:
        log.exception("removing a download failed", extra={"key": key})
        return False
    return True


async def download_for(registrant: Registrant, interaction_id: int) -> Interaction | None:
    """A download the registrant's room offers (their webinar's, or pushed into their session)."""
    interaction = await Interaction.get_or_none(
        id=interaction_id, webinar_id=registrant.webinar_id, kind="download"
    )
    if interaction is None:
        return None
    pushed_to = getattr(interaction, "session_id", None)
    if pushed_to is not None and pushed_to != registrant.session_id:
        return None
    if not isinstance((interaction.config or {}).get("file_key"), str):
        return None
    if await RoomRestriction.exists(
        session_id=registrant.session_id, registrant_id=registrant.id, kind="ban"
    ):
        return None  # banned from the room: its files too
    return interaction


async def record_download(
    *, registrant: Registrant, interaction: Interaction, now: datetime
) -> AnalyticsEvent:
    """Note that a registrant fetched a file (an analytics event of kind `download`)."""
    event = await AnalyticsEvent.create(
        kind="download",
        at=now,
        webinar_id=registrant.webinar_id,
        session_id=registrant.session_id,
        registrant_id=registrant.id,
        contact_id=registrant.contact_id,
        data={"interaction_id": interaction.id},
    )
    await attendance.note_download(
        webinar_id=registrant.webinar_id,
        session_id=registrant.session_id,
        registrant_id=registrant.id,
        contact_id=registrant.contact_id,
        interaction_id=interaction.id,
    )
    return event
