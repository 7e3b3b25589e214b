"""The presenter console's view: sessions live now and next, the inbox and the queue."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from app.models import Registrant, RoomRestriction, Video, WebinarSession
from app.services import attendance, chat, ids, interactions, room
from app.services.calendar import ON_DEMAND

# Sessions that started within this long are looked at (the longest video bounds it further).
LOOKBACK = timedelta(hours=12)
UPCOMING = timedelta(hours=24)
MAX_SESSIONS = 50


async def _durations(webinar_ids: set[int]) -> dict[int, float]:
    rows = await Video.filter(webinars__id__in=webinar_ids).values_list(
        "webinars__id", "duration_seconds"
    )
    found = {int(w): float(d) for w, d in rows if d is not None and math.isfinite(d) and d > 0}
    default = room.DEFAULT_DURATION.total_seconds()
    return {webinar_id: found.get(webinar_id, default) for webinar_id in webinar_ids}


async def overview(now: datetime) -> dict[str, Any]:
    """What the console shows first (protocol.ConsolePayload, without team_online)."""
    candidates = (
        await WebinarSession.filter(starts_at__gte=now - LOOKBACK, starts_at__lte=now + UPCOMING)
        .exclude(kind=ON_DEMAND)
        .order_by("starts_at", "id")
        .limit(MAX_SESSIONS * 4)
        .prefetch_related("webinar")
    )
    durations = await _durations({s.webinar_id for s in candidates})  # type: ignore[attr-defined]
    listed = []
    for session in candidates:
        duration = durations[session.webinar_id]  # type: ignore[attr-defined]
        elapsed = (now - session.starts_at).total_seconds()
        if elapsed >= duration:
            continue
        listed.append((session, "live" if elapsed >= 0 else "waiting", duration))
    listed = listed[:MAX_SESSIONS]
    ids = [session.id for session, _, _ in listed]
    online = await attendance.online_counts(ids, now)
    unread = await chat.unread_counts(ids)
    inbox, queue = await chat.inbox()
    return {
        "sessions": [
            {
                "id": session.id,
                "webinar_id": session.webinar.id,
                "webinar_title": session.webinar.title,
                "starts_at_ms": room.ms(session.starts_at),
                "mode": mode,
                "duration": duration,
                "online": online.get(session.id, 0),
                "unread": unread.get(session.id, 0),
            }
            for session, mode, duration in listed
        ],
        "inbox": inbox,
        "queue": queue,
    }


async def watch(session_id: object, now: datetime) -> dict[str, Any]:
    """One session in detail: its conversation, attendees, interactions and their results."""
    if not isinstance(session_id, int) or isinstance(session_id, bool):
        raise chat.ChatError("bad_request", "session_id must be a number.")
    session = await WebinarSession.get_or_none(id=session_id) if ids.is_id(session_id) else None
    if session is None:
        raise chat.ChatError("unknown_session", "That session does not exist.")
    history = await chat.session_history_for_staff(session_id)
    online = await attendance.online_registrants(session.id, now)
    registrants = (
        await Registrant.filter(session_id=session.id)
        .order_by("id")
        .limit(2000)
        .values_list("id", "contact__name", "contact__email")
    )
    found = await interactions.timeline(session.webinar_id, session.id)  # type: ignore[attr-defined]
    results = [
        await room.tally(interaction, session.id)
        for interaction in found
        if interactions.shows_results(interaction.kind)
    ] + await room.click_results(session.id, found)
    restricted = dict(
        await RoomRestriction.filter(session_id=session.id).values_list("registrant_id", "kind")
    )
    return {
        "chat": history,
        "attendees": [
            {
                "registrant_id": rid,
                "name": name or "",
                "email": email,
                "online": rid in online,
                "restriction": restricted.get(rid),
            }
            for rid, name, email in registrants
        ],
        "results": results,
        "timeline": [interactions.public_item(item) for item in found],
    }
