"""The live room of one attendee: admission, where playback is, interactions and their answers.

The room never invents anything: the attendee sees the recording at the position the session's
start gives, the team's real messages, and the real answers of the session's attendees.
Positions come from the server's clock; the attendee's player only reports what it shows.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.exceptions import IntegrityError

from app import db, i18n
from app.models import (
    AnalyticsEvent,
    Interaction,
    InteractionResponse,
    RoomRestriction,
    Video,
    Webinar,
    WebinarSession,
)
from app.schedule import PlaybackState, playback_position, replay_window
from app.services import (
    attendance,
    chat,
    crypto,
    ids,
    interactions,
    registration,
    room_settings,
    sessions,
)
from app.services.calendar import ON_DEMAND
from app.services.rows import marks
from app.services.storage import shared_storage
from app.services.videos import playback_url
from app.settings import get_settings

# Without a video (or before it is ready) a session is taken to last this long.
DEFAULT_DURATION = timedelta(minutes=60)
# Answers are tallied at most this often per interaction and session (results are broadcast
# on a tick, not once per vote).
TALLY_TTL = 1.0


class RoomError(Exception):
    """A refused request: `code` is stable for clients, the message is for people."""

    def __init__(self, code: str, message: str, language: str = "en") -> None:
        message = i18n.gettext(language, message)
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Attendee:
    """One admitted attendee connection: who it is and what it may do."""

    registrant_id: int
    contact_id: int
    webinar_id: int
    session_id: int
    session_kind: str
    starts_at: datetime | None
    duration: float
    name: str
    language: str
    token: str
    replay_until: datetime | None = None
    # On demand: when this attendee pressed play (the session's start for them).
    started_at: datetime | None = None
    # Where the player last said it was (replays and on demand).
    reported_position: float = 0.0

    @property
    def presence(self) -> attendance.Presence:
        """The keys of this attendee's events."""
        return attendance.Presence(
            webinar_id=self.webinar_id,
            session_id=self.session_id,
            registrant_id=self.registrant_id,
            contact_id=self.contact_id,
        )

    def mode(self, now: datetime) -> str:
        """waiting, live, replay, ended or on_demand, by the server's clock."""
        if self.session_kind == ON_DEMAND:
            return "on_demand"
        assert self.starts_at is not None
        state = playback_position(self.starts_at, now, timedelta(seconds=self.duration)).state
        if state is PlaybackState.WAITING:
            return "waiting"
        if state is PlaybackState.LIVE:
            return "live"
        if self.replay_until is not None and now < self.replay_until:
            return "replay"
        return "ended"

    def position(self, now: datetime) -> float:
        """Seconds into the video by the server's clock (what the player reports in replays)."""
        if self.session_kind == ON_DEMAND:
            if self.started_at is None:
                return 0.0
            elapsed = (now - self.started_at).total_seconds()
            return min(max(elapsed, 0.0), self.duration)
        assert self.starts_at is not None
        mode = self.mode(now)
        if mode == "live":
            return (now - self.starts_at).total_seconds()
        if mode == "waiting":
            return 0.0
        return min(max(self.reported_position, 0.0), self.duration)

    def clamp_reported(self, seconds: float, now: datetime) -> float:
        """A position a player reported, kept within what it may have shown."""
        if not math.isfinite(seconds):
            return 0.0
        upper = self.duration
        if self.mode(now) == "live":
            # No one watches ahead of the live position in a scheduled session.
            upper = min(upper, self.position(now) + 2.0)
        return min(max(seconds, 0.0), upper)


@dataclass
class Admission:
    """An admitted attendee and the first view of the room."""

    attendee: Attendee
    payload: dict[str, Any]
    muted: bool


def ms(moment: datetime) -> int:
    """An instant as milliseconds since the epoch (the wire's time unit)."""
    return int(moment.timestamp() * 1000)


def first_name(name: str) -> str:
    """What other attendees see of a name: its first word (no surnames in public chat)."""
    words = name.split()
    return words[0][:60] if words else ""


@dataclass
class _SessionView:
    """What every attendee of one session is shown alike, read once per VIEW_TTL."""

    duration: float
    replay_until: datetime | None
    hls_url: str | None
    poster_url: str | None
    timeline: list[Interaction]
    settings: room_settings.RoomSettings
    made: float
    webinar_updated: datetime  # a saved webinar is read afresh at once


# Joins come in bursts at a session's start: the session's shared part is read once per few
# seconds per process, so an editor's change reaches new joiners within VIEW_TTL.
VIEW_TTL = 5.0
_views: dict[int, _SessionView] = {}
_loading: dict[int, asyncio.Future[_SessionView]] = {}


def forget_session(session_id: int) -> None:
    """Read a session's shared view afresh at the next join (after a push into it)."""
    _views.pop(session_id, None)


def forget_all() -> None:
    """Drop every cached view and tally (a process whose database was replaced)."""
    _views.clear()
    _tallies.entries.clear()


async def _duration(webinar: Webinar) -> tuple[float, Video | None]:
    video = await Video.get_or_none(webinars__id=webinar.id)
    seconds = video.duration_seconds if video is not None else None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return DEFAULT_DURATION.total_seconds(), video
    return float(seconds), video


async def _session_view(
    webinar_id: int, webinar_updated: datetime, session: _SessionRow
) -> _SessionView:
    view = _views.get(session.id)
    fresh = view is not None and time.monotonic() - view.made < VIEW_TTL
    if view is not None and fresh and view.webinar_updated == webinar_updated:
        return view
    # At a session's start a thousand attendees arrive at once: one of them reads the view,
    # the others wait for it instead of each reading it again.
    loading = _loading.get(session.id)
    if loading is not None:
        return await asyncio.shield(loading)
    future: asyncio.Future[_SessionView] = asyncio.get_running_loop().create_future()
    _loading[session.id] = future
    try:
        view = await _read_view(webinar_id, session)
        future.set_result(view)
    except BaseException as error:
        future.set_exception(error)
        future.exception()  # retrieved: a failure here is raised to every waiter, not logged
        raise
    finally:
        _loading.pop(session.id, None)
    if len(_views) > 1000:
        _views.clear()
    _views[session.id] = view
    return view


async def _read_view(webinar_id: int, session: _SessionRow) -> _SessionView:
    webinar = await Webinar.get(id=webinar_id)
    duration, video = await _duration(webinar)
    replay_until = None
    if session.kind != ON_DEMAND:
        rules = await sessions.load_rules(webinar)
        window = (
            None
            if rules is None
            else replay_window(session.starts_at, timedelta(seconds=duration), rules)
        )
        replay_until = None if window is None else window[1]
    hls, poster = _media_urls(video)
    return _SessionView(
        duration=duration,
        replay_until=replay_until,
        hls_url=hls,
        poster_url=poster,
        timeline=await interactions.timeline(webinar.id, session.id),
        settings=room_settings.room_settings(webinar),
        made=time.monotonic(),
        webinar_updated=webinar.updated_at,
    )


@dataclass(frozen=True)
class _SessionRow:
    id: int
    kind: str
    starts_at: datetime


# Everything a join needs, in one statement: the registrant, their session and webinar, a
# restriction, the answers they gave and the chat they see (the last two as JSON arrays). The ORM
# spent more time building the joined query than the database spent answering it, and each
# statement costs the web process a round trip through the driver and the pool.
_ADMISSION_SQL = """
SELECT r.id, r.contact_id, r.webinar_id, r.session_id, c.name, w.language, w.updated_at,
       s.kind, s.starts_at, rr.kind, {answers}, {history}
FROM registrant r
JOIN contact c ON c.id = r.contact_id
JOIN webinar w ON w.id = r.webinar_id
LEFT JOIN webinar_session s ON s.id = r.session_id
LEFT JOIN room_restriction rr ON rr.session_id = r.session_id AND rr.registrant_id = r.id
WHERE r.join_token_hash = {hash}
"""
_ANSWERS = {
    "postgres": "json_agg(json_build_array(a.interaction_id, a.answer))",
    "sqlite": "json_group_array(json_array(a.interaction_id, json(a.answer)))",
}
_ANSWERS_SQL = """(SELECT {aggregate} FROM interaction_response a
   WHERE a.session_id = r.session_id AND a.registrant_id = r.id)"""
_STARTS_AT = WebinarSession._meta.fields_map["starts_at"]
_UPDATED_AT = Webinar._meta.fields_map["updated_at"]


@functools.cache
def _admission_statement(dialect: str) -> str:
    return _ADMISSION_SQL.format(
        hash=marks(dialect, 0, 1),
        answers=_ANSWERS_SQL.format(aggregate=_ANSWERS[dialect]),
        history=chat.history_subquery(dialect, "r.session_id", "r.id"),
    )


async def _admission_row(token: str) -> Any:
    if not isinstance(token, str) or not token or len(token) > registration.TOKEN_MAX:
        return None
    connection = connections.get("default")
    sql = _admission_statement(connection.capabilities.dialect)
    values = [crypto.hash_token(token)]
    rows = db.read_now(connection, sql, values)
    if rows is None:
        _count, rows = await connection.execute_query(sql, values)
    return rows[0] if rows else None


def _json_rows(value: Any) -> list[Any]:
    """A JSON array column (text from either driver, NULL when PostgreSQL aggregated nothing)."""
    if value is None:
        return []
    rows = json.loads(value) if isinstance(value, str | bytes) else value
    return list(rows)


async def admit(token: str, now: datetime) -> Admission:
    """Let the holder of a join token into their session's room, or raise RoomError."""
    row = await _admission_row(token)
    if row is None:
        raise RoomError(
            "unknown_link", "This join link is not known. Use the link from your email."
        )
    registrant_id, contact_id, webinar_id, session_id, name, language = tuple(row)[:6]
    updated_at, session_kind, starts_at, restriction, answered, history = tuple(row)[6:]
    if session_id is None:
        raise RoomError("no_session", "You are not registered for a session yet.", language)
    if restriction == "ban":
        raise RoomError("banned", "You can no longer join this session.", language)
    session = _SessionRow(
        id=int(session_id), kind=str(session_kind), starts_at=_STARTS_AT.to_python_value(starts_at)
    )
    view = await _session_view(int(webinar_id), _UPDATED_AT.to_python_value(updated_at), session)
    attendee = Attendee(
        registrant_id=int(registrant_id),
        contact_id=int(contact_id),
        webinar_id=int(webinar_id),
        session_id=session.id,
        session_kind=session.kind,
        starts_at=None if session.kind == ON_DEMAND else session.starts_at,
        duration=view.duration,
        name=str(name),
        language=str(language),
        token=token,
        replay_until=view.replay_until,
    )
    mode = attendee.mode(now)
    left_at = None
    if mode in ("replay", "on_demand"):
        left_at = await attendance.last_position(session.id, attendee.registrant_id)
        attendee.reported_position = left_at or 0.0
    answers = {
        int(interaction_id): interactions.given_answer(answer)
        for interaction_id, answer in _json_rows(answered)
    }
    if mode in ("replay", "ended"):  # the whole chat, not only the last HISTORY_LIMIT messages
        seen = await chat.history_for_attendee(session.id, attendee.registrant_id, replay=True)
    else:
        seen = chat.history_items(_json_rows(history), attendee.registrant_id)
    payload = await _payload(
        attendee,
        view,
        now,
        left_at=left_at,
        muted=restriction == "mute",
        answers=answers,
        history=seen,
    )
    return Admission(attendee=attendee, payload=payload, muted=restriction == "mute")


def _media_urls(video: Video | None) -> tuple[str | None, str | None]:
    if video is None or not video.playable or not video.hls_key:
        return None, None
    storage = shared_storage()
    ttl = get_settings().media_url_ttl_seconds
    hls = playback_url(storage, video.hls_key, expires_in=ttl)
    poster = playback_url(storage, video.poster_key, expires_in=ttl) if video.poster_key else None
    return hls, poster


def public_items(attendee: Attendee, found: list[Interaction]) -> list[dict[str, Any]]:
    """The interactions as this attendee's page shows them."""
    items = []
    for interaction in found:
        url = (
            interactions.download_path(attendee.token, interaction.id)
            if interaction.kind == "download"
            else None
        )
        items.append(interactions.public_item(interaction, download_url=url))
    return items


async def _payload(
    attendee: Attendee,
    view: _SessionView,
    now: datetime,
    *,
    left_at: float | None,
    muted: bool,
    answers: dict[int, Any],
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    mode = attendee.mode(now)
    found = view.timeline
    results = []
    for interaction in found:
        if interactions.shows_results(interaction.kind) and (
            interaction.id in answers or mode in ("replay", "ended")
        ):
            results.append(await tally(interaction, attendee.session_id))
    settings = view.settings
    if mode == "live":
        position = attendee.position(now)
    elif mode in ("replay", "on_demand"):
        position = left_at or 0.0
    else:
        position = 0.0
    return {
        "server_ms": ms(now),
        "name": attendee.name,
        "session": {
            "id": attendee.session_id,
            "kind": attendee.session_kind,
            "starts_at_ms": None if attendee.starts_at is None else ms(attendee.starts_at),
            "duration": attendee.duration,
            "mode": mode,
            "replay_until_ms": None if attendee.replay_until is None else ms(attendee.replay_until),
        },
        "hls_url": view.hls_url,
        "poster_url": view.poster_url,
        "position": position,
        "timeline": public_items(attendee, found),
        "answered": {str(key): value for key, value in answers.items()},
        "results": results,
        "chat": history,
        "chat_mode": settings.chat_mode,
        "team_online": False,  # the hub knows; it fills this in
        "muted": muted,
        "settings": room_settings.public_settings(settings),
    }


def start_on_demand(attendee: Attendee, now: datetime, position: float = 0.0) -> datetime:
    """The attendee pressed play in an on-demand session (at `position`, when resuming)."""
    if attendee.session_kind != ON_DEMAND:
        raise RoomError(
            "not_on_demand", "This session plays at its scheduled time.", attendee.language
        )
    position = min(max(position, 0.0), attendee.duration) if math.isfinite(position) else 0.0
    attendee.started_at = now - timedelta(seconds=position)
    return attendee.started_at


# --- Answers and clicks ------------------------------------------------------------------------


@dataclass
class _Tally:
    at: float
    results: dict[str, Any]


@dataclass
class TallyCache:
    """Recent tallies per (interaction, session), so a burst of votes reads the answers once."""

    entries: dict[tuple[int, int], _Tally] = field(default_factory=dict)

    def get(self, key: tuple[int, int]) -> dict[str, Any] | None:
        """A tally younger than TALLY_TTL, or None."""
        entry = self.entries.get(key)
        if entry is None or time.monotonic() - entry.at > TALLY_TTL:
            return None
        return entry.results

    def put(self, key: tuple[int, int], results: dict[str, Any]) -> None:
        """Keep a fresh tally."""
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[key] = _Tally(time.monotonic(), results)


_tallies = TallyCache()


async def tally(
    interaction: Interaction, session_id: int, *, fresh: bool = False
) -> dict[str, Any]:
    """The results of one interaction in one session (protocol.ResultsPayload)."""
    key = (interaction.id, session_id)
    cached = None if fresh else _tallies.get(key)
    if cached is None:
        answers = await InteractionResponse.filter(
            interaction_id=interaction.id, session_id=session_id
        ).values_list("answer", flat=True)
        cached = interactions.tally(interaction, map(interactions.given_answer, answers))
        _tallies.put(key, cached)
    return {"interaction_id": interaction.id, "session_id": session_id, "results": cached}


async def _interaction_for(attendee: Attendee, interaction_id: object) -> Interaction:
    if not isinstance(interaction_id, int) or isinstance(interaction_id, bool):
        raise RoomError("bad_request", "interaction_id must be a number.")
    if not ids.is_id(interaction_id):
        raise RoomError(
            "unknown_interaction",
            "This interaction is not part of your session.",
            attendee.language,
        )
    interaction = await Interaction.get_or_none(id=interaction_id, webinar_id=attendee.webinar_id)
    if interaction is None or interaction.session_id not in (None, attendee.session_id):  # type: ignore[attr-defined]
        raise RoomError(
            "unknown_interaction",
            "This interaction is not part of your session.",
            attendee.language,
        )
    return interaction


def _ensure_open(attendee: Attendee, interaction: Interaction, now: datetime) -> None:
    mode = attendee.mode(now)
    if mode in ("replay", "ended"):
        raise RoomError(
            "closed", "Answers are collected during the session only.", attendee.language
        )
    if mode == "waiting":
        raise RoomError("closed", "The session has not started yet.", attendee.language)
    if mode == "on_demand" and attendee.started_at is None:
        raise RoomError("closed", "Press play first.", attendee.language)
    if not interactions.is_open(interaction, attendee.position(now)):
        raise RoomError(
            "closed", "This is not open for answers at this point of the video.", attendee.language
        )


@dataclass
class Answered:
    """An accepted answer: the results the attendee may now see, and a question for the team."""

    interaction: Interaction
    results: dict[str, Any] | None
    question: chat.Posted | None = None


async def answer(
    attendee: Attendee, interaction_id: object, raw: object, now: datetime
) -> Answered:
    """Store an attendee's answer (a question also goes to the team's inbox)."""
    interaction = await _interaction_for(attendee, interaction_id)
    _ensure_open(attendee, interaction, now)
    try:
        value = interactions.parse_answer(interaction, raw, language=attendee.language)
    except interactions.InteractionError as error:
        raise RoomError("bad_answer", str(error)) from None
    if interaction.kind == "question" and await RoomRestriction.exists(
        session_id=attendee.session_id, registrant_id=attendee.registrant_id
    ):
        # A question goes to the team's inbox like a chat message: muted is muted for both.
        raise RoomError("muted", "You can no longer write in this chat.", attendee.language)
    try:
        await InteractionResponse.create(
            interaction_id=interaction.id,
            session_id=attendee.session_id,
            registrant_id=attendee.registrant_id,
            answer=interactions.stored_answer(interaction, value),
        )
    except IntegrityError:
        raise RoomError(
            "already_answered", "You have already answered this.", attendee.language
        ) from None
    attendance.note_response(attendee.presence, question=interaction.kind == "question")
    if interaction.kind == "question":
        return Answered(
            interaction, None, await chat.question_asked(attendee, interaction, value, now)
        )
    if not interactions.shows_results(interaction.kind):
        return Answered(interaction, None)
    return Answered(interaction, await tally(interaction, attendee.session_id, fresh=True))


# The event each clickable kind is counted by (downloads are counted where they are served).
CLICK_EVENTS = {
    "offer": attendance.OFFER_CLICK,
    "link": attendance.LINK_CLICK,
    "download": attendance.DOWNLOAD,
}


async def click(attendee: Attendee, interaction_id: object, now: datetime) -> Interaction:
    """Count an attendee opening an offer or a link (downloads count where they are served)."""
    interaction = await _interaction_for(attendee, interaction_id)
    kind = CLICK_EVENTS.get(interaction.kind)
    if kind is None:
        raise RoomError("bad_request", "Only offers, links and downloads can be clicked.")
    mode = attendee.mode(now)
    if mode == "waiting" or (
        mode == "live"
        and attendee.position(now) < interaction.opens_at_seconds - interactions.OPEN_EARLY
    ):
        raise RoomError("closed", "This is not open yet.", attendee.language)
    if interaction.kind != "download":
        await attendance.record(
            kind, attendee.presence, now, attendee.position(now), interaction_id=interaction.id
        )
    return interaction


async def click_results(session_id: int, found: list[Interaction]) -> list[dict[str, Any]]:
    """How many people clicked each offer, link and download in one session (for the team)."""
    clickable = {i.id: CLICK_EVENTS[i.kind] for i in found if i.kind in CLICK_EVENTS}
    if not clickable:
        return []
    people: dict[int, set[int]] = {iid: set() for iid in clickable}
    events: list[Any] = await AnalyticsEvent.filter(
        session_id=session_id, kind__in=set(clickable.values())
    ).values_list("kind", "data", "registrant_id")
    for kind, data, registrant_id in events:
        target = data.get("interaction_id") if isinstance(data, dict) else None
        if target in clickable and clickable[target] == kind:
            people[target].add(registrant_id)
    return [
        {"interaction_id": iid, "session_id": session_id, "results": {"total": len(who)}}
        for iid, who in people.items()
    ]
