"""Every Socket.IO event name and payload shape, in one place.

Attendees connect with `auth={"token": <join token>}`; staff connect with their signed-in session
cookie. Every client -> server event is answered through its acknowledgement with either
`{"ok": true, ...}` or `{"ok": false, "error": {"code", "message"}}`; server -> client events carry
the payloads below. Times on the wire are milliseconds since the Unix epoch (`*_ms`) or seconds
into the video (`media_seconds`, `opens_at`, `closes_at`).
"""

from __future__ import annotations

from typing import Any, Final, Literal, NotRequired, TypedDict

from app.services.chat import MAX_CHAT_CHARS as MAX_CHAT_CHARS

NAMESPACE: Final = "/"
SOCKETIO_PATH: Final = "socket.io"
MAX_PAYLOAD_BYTES: Final = 16 * 1024
# How often a player reports where it is; the server records one heartbeat per report.
HEARTBEAT_SECONDS: Final = 20

# Server -> client
HELLO: Final = "hello"  # staff, after connect: HelloPayload
ROOM: Final = "room"  # attendee, after connect: RoomPayload
CHAT: Final = "chat"  # a batch of new or changed messages: ChatBatch
CHAT_REMOVED: Final = "chat:removed"  # RemovedPayload
INTERACTION: Final = "interaction"  # one interaction pushed into a running session: InteractionItem
RESULTS: Final = "results"  # live results of one interaction: ResultsPayload
ANNOUNCEMENT: Final = "announcement"  # AnnouncementPayload
TEAM: Final = "team"  # whether someone from the team is online: TeamPayload
RESTRICTED: Final = "restricted"  # the attendee was muted or banned: RestrictedPayload
ATTENDANCE: Final = "attendance"  # staff: who is in which session: AttendancePayload
ERROR: Final = "error"

# Client -> server (attendee)
SYNC: Final = "sync"  # {} -> {"ok", "server_ms"}: the client estimates its clock offset
CHAT_SEND: Final = "chat:send"  # ChatSend -> {"ok", "message": ChatItem}
ANSWER: Final = "answer"  # AnswerSend -> {"ok", "results"?: ResultsPayload}
CLICK: Final = "click"  # ClickSend (offer, download or link) -> {"ok"}
HEARTBEAT: Final = "heartbeat"  # HeartbeatSend -> {"ok"}
START: Final = "start"  # on demand: the attendee pressed play; {} -> {"ok", "started_ms"}

# Client -> server (staff console)
CONSOLE: Final = "console"  # {} -> {"ok", "console": ConsolePayload}
WATCH: Final = "watch"  # {"session_id"} -> {"ok", "chat": [ChatItem], "attendees": [...]}
REPLY: Final = "chat:reply"  # ReplySend -> {"ok", "message": ChatItem}
MODERATE: Final = "chat:moderate"  # ModerateSend -> {"ok"}
RESTRICT: Final = "restrict"  # RestrictSend -> {"ok"}
PUSH: Final = "push"  # PushSend -> {"ok", "interaction"?: InteractionItem}
READ: Final = "chat:read"  # {"session_id"} -> {"ok"}: marks that session's inbox read
# ...and server -> staff: ReadPayload, when any team member read messages (so every console agrees)

# Rooms
STAFF_ROOM: Final = "staff"


def session_room(session_id: int) -> str:
    """Everyone in one session: public chat, pushed interactions, announcements."""
    return f"s:{session_id}"


def attendee_room(registrant_id: int) -> str:
    """Every connection (tab) of one attendee: their private conversation with the team."""
    return f"r:{registrant_id}"


ChatVisibility = Literal["private", "pending", "public"]
Mode = Literal["live", "replay", "on_demand", "waiting", "ended", "unscheduled"]


class HelloPayload(TypedDict):
    """Sent once to staff after a connection is accepted."""

    role: str
    name: str


class ErrorPayload(TypedDict):
    """A refused event: `code` is stable, `message` is for people."""

    code: str
    message: str


class ChatItem(TypedDict):
    """One chat message as attendees see it (staff also get the ids of who wrote it)."""

    id: int
    session_id: int
    sender: Literal["attendee", "team"]
    name: str
    body: str
    visibility: ChatVisibility
    reply_to: int | None
    media_seconds: float
    at_ms: int
    pinned: bool
    # Staff only, and the attendee's own messages: whose conversation this is.
    registrant_id: NotRequired[int]
    # Staff only: who wrote it and where, for the inbox across all webinars.
    email: NotRequired[str]
    webinar_title: NotRequired[str]
    read: NotRequired[bool]


class ChatBatch(TypedDict):
    """Messages sent to one room in one tick, oldest first."""

    messages: list[ChatItem]


class RemovedPayload(TypedDict):
    """Messages a moderator deleted."""

    ids: list[int]


class InteractionItem(TypedDict):
    """One timed interaction as the room shows it; `config` depends on `kind`."""

    id: int
    kind: str
    title: str
    opens_at: float
    closes_at: float | None
    required: bool
    config: dict[str, Any]
    session_id: NotRequired[int]  # to staff: the session it was pushed into


class ResultsPayload(TypedDict):
    """What an interaction's answers in one session add up to (shape depends on the kind)."""

    interaction_id: int
    session_id: int
    results: dict[str, Any]


class SessionInfo(TypedDict):
    """The session an attendee is in."""

    id: int
    kind: str
    starts_at_ms: int | None
    duration: float
    mode: Mode
    # Replays may be watched until then; None without an expiry.
    replay_until_ms: int | None


class RoomPayload(TypedDict):
    """Everything an attendee's page needs at join (and again after a reconnect)."""

    server_ms: int
    name: str
    session: SessionInfo
    hls_url: str | None
    poster_url: str | None
    position: float  # where playback is now (live), or where this attendee left off
    timeline: list[InteractionItem]
    answered: dict[str, Any]  # interaction id (as a string) -> the attendee's answer
    results: list[ResultsPayload]  # results the attendee may see (answered, or no answer needed)
    chat: list[ChatItem]
    chat_mode: str
    team_online: bool
    muted: bool
    settings: dict[str, Any]  # the room's words: notice, welcome, end screen


class TeamPayload(TypedDict):
    """Whether someone from the team is in the console now."""

    online: bool


class AnnouncementPayload(TypedDict):
    """A line from the presenter shown over the player."""

    text: str


class RestrictedPayload(TypedDict):
    """The attendee may no longer chat (muted) or stay (banned), or may chat again (lift)."""

    kind: Literal["mute", "ban", "lift"]


class ChatSend(TypedDict):
    """An attendee's chat message."""

    body: str


class AnswerSend(TypedDict):
    """An attendee's answer to a poll, quiz, rating, NPS or question."""

    interaction_id: int
    answer: Any


class ClickSend(TypedDict):
    """An attendee opened an offer, a download or a link."""

    interaction_id: int


class HeartbeatSend(TypedDict):
    """Where the attendee's player is."""

    position: float
    playing: bool


class ReplySend(TypedDict):
    """A team member's message: a reply to one message, or a new one in a session."""

    session_id: int
    body: str
    reply_to: NotRequired[int | None]
    registrant_id: NotRequired[int | None]  # a private message to this attendee
    public: bool


class ModerateSend(TypedDict):
    """Approve, pin, unpin or delete a message."""

    message_id: int
    action: Literal["approve", "pin", "unpin", "delete"]


class RestrictSend(TypedDict):
    """Mute or ban an attendee of a session (or lift it: action "lift")."""

    session_id: int
    registrant_id: int
    action: Literal["mute", "ban", "lift"]


class PushSend(TypedDict):
    """Push an ad-hoc poll, offer or announcement (its words in `config.text`) into a session."""

    session_id: int
    kind: Literal["poll", "offer", "announcement"]
    title: str
    config: dict[str, Any]


class ReadPayload(TypedDict):
    """Messages the team has read: a session's, or one attendee's conversation in it."""

    session_id: int
    registrant_id: int | None


class AttendancePayload(TypedDict):
    """How many attendees are in a session now."""

    session_id: int
    online: int


class ConsoleSession(TypedDict):
    """A session live now or starting next, as the console lists it."""

    id: int
    webinar_id: int
    webinar_title: str
    starts_at_ms: int | None
    mode: Mode
    duration: float
    online: int  # attendees connected now
    unread: int  # attendee messages no one from the team has read


class ConsolePayload(TypedDict):
    """The presenter console's first view."""

    sessions: list[ConsoleSession]
    inbox: list[ChatItem]  # recent attendee messages across all sessions, unread first
    queue: list[ChatItem]  # public messages waiting for approval
    team_online: int
