"""Chat in the live room: attendees' messages, the team's replies and moderation.

A message belongs to one session. Its `registrant` is the attendee whose conversation it is
part of (the writer, or whom a team member answered privately); `staff` is set when the team
wrote it; `automatic` marks the room's own auto-response. Visibility is `private` (the attendee
and the team), `pending` (public once approved) or `public` (everyone in the session).
Replies to an attendee who has left the room are emailed to them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from tortoise import connections
from tortoise.transactions import in_transaction

from app import i18n
from app.models import (
    ChatMessage,
    Contact,
    Interaction,
    Registrant,
    RoomRestriction,
    StaffUser,
    Webinar,
    WebinarSession,
)
from app.services import (
    attendance,
    audit,
    crypto,
    delivery,
    ids,
    room_settings,
    unsubscribe,
)
from app.services.rows import placeholders
from app.settings import get_settings

if TYPE_CHECKING:
    from app.services.room import Attendee

REPLY_EMAIL = "chat_reply"
MAX_CHAT_CHARS = 1000
HISTORY_LIMIT = 200
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_BLANK_LINES = re.compile(r"\n{3,}")


class ChatError(Exception):
    """A refused chat action: `code` is stable, the message is for the person who acted."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def clean_body(raw: object, language: str) -> str:
    """A message body as stored: text, trimmed, no control characters, within the limit."""
    if not isinstance(raw, str):
        raise ChatError("bad_request", _t(language, "The message must be text."))
    text = unicodedata.normalize("NFC", raw.replace("\r\n", "\n").replace("\r", "\n"))
    text = _BLANK_LINES.sub("\n\n", _CONTROL.sub("", text)).strip()
    if not text:
        raise ChatError("empty", _t(language, "Write a message first."))
    if len(text) > MAX_CHAT_CHARS:
        raise ChatError(
            "too_long",
            _t(language, "Messages can be up to {limit} characters long.").format(
                limit=MAX_CHAT_CHARS
            ),
        )
    return text


def _t(language: str, message: str) -> str:
    return i18n.gettext(language, message)


def item(
    message: ChatMessage | ChatRow, *, staff_view: bool = False, **extra: Any
) -> dict[str, Any]:
    """A message as the wire carries it (protocol.ChatItem)."""
    row: Any = message  # a model (its foreign keys read as *_id) or a plain row
    answer: dict[str, Any] = {
        "id": row.id,
        "session_id": row.session_id,
        "sender": "team" if row.staff_id or row.automatic else "attendee",
        "name": row.sender_name,
        "body": row.body,
        "visibility": row.visibility,
        "reply_to": row.reply_to_id,
        "media_seconds": round(row.media_seconds, 2),
        "at_ms": int(row.created_at.timestamp() * 1000),
        "pinned": row.pinned,
    }
    registrant_id = row.registrant_id
    if registrant_id is not None and (staff_view or row.visibility != "public"):
        answer["registrant_id"] = registrant_id
    if staff_view:
        answer["read"] = row.read_at is not None or bool(row.staff_id)
    answer.update(extra)
    return answer


class ChatRow(NamedTuple):
    """A chat message read as a plain row (what `item` needs of it)."""

    id: int
    session_id: int
    staff_id: int | None
    automatic: bool
    sender_name: str
    body: str
    visibility: str
    reply_to_id: int | None
    media_seconds: float
    created_at: datetime
    pinned: bool
    registrant_id: int | None
    read_at: datetime | None = None


# Public messages and the attendee's own conversation, newest first. The join reads it for every
# attendee, so it is one plain statement rather than an ORM query built each time.
_HISTORY_COLUMNS = (
    "id",
    "session_id",
    "staff_id",
    "automatic",
    "sender_name",
    "body",
    "visibility",
    "reply_to_id",
    "media_seconds",
    "created_at",
    "pinned",
    "registrant_id",
)
_HISTORY_SQL = """
SELECT {columns}
FROM chat_message
WHERE session_id = {session} AND deleted_at IS NULL
  AND (visibility = 'public' OR registrant_id = {registrant})
ORDER BY id DESC LIMIT {limit}
"""
# The same rows as one JSON array, for the join's single statement.
_HISTORY_JSON = {
    "postgres": "(SELECT json_agg(json_build_array({columns})) FROM ({rows}) h)",
    "sqlite": "(SELECT json_group_array(json_array({columns})) FROM ({rows}) h)",
}
_CREATED_AT = ChatMessage._meta.fields_map["created_at"]


def history_subquery(dialect: str, session: str, registrant: str) -> str:
    """The history of `history_for_attendee` (live, so HISTORY_LIMIT) as one JSON array column.

    `session` and `registrant` are SQL expressions of the enclosing statement: the join reads
    the history in the same statement as the attendee's admission. `history_items` reads it.
    """
    rows = _HISTORY_SQL.format(
        columns=", ".join(_HISTORY_COLUMNS),
        session=session,
        registrant=registrant,
        limit=HISTORY_LIMIT,
    )
    columns = ", ".join(f"h.{name}" for name in _HISTORY_COLUMNS)
    return _HISTORY_JSON[dialect].format(columns=columns, rows=rows)


async def history_for_attendee(
    session_id: int, registrant_id: int, *, replay: bool
) -> list[dict[str, Any]]:
    """What an attendee sees at join: the session's public chat and their own conversation."""
    connection = connections.get("default")
    session, registrant, limit = placeholders(connection, 0, 3).split(", ")
    sql = _HISTORY_SQL.format(
        columns=", ".join(_HISTORY_COLUMNS), session=session, registrant=registrant, limit=limit
    )
    _count, rows = await connection.execute_query(
        sql, [session_id, registrant_id, 2000 if replay else HISTORY_LIMIT]
    )
    return history_items((tuple(row) for row in rows), registrant_id)


def history_items(rows: Iterable[Sequence[Any]], registrant_id: int) -> list[dict[str, Any]]:
    """History rows (from the statement or its JSON array) as the page's items, oldest first."""
    found = []
    for values in sorted(rows, key=lambda values: int(values[0])):
        message = ChatRow(
            id=values[0],
            session_id=values[1],
            staff_id=values[2],
            automatic=bool(values[3]),
            sender_name=values[4],
            body=values[5],
            visibility=values[6],
            reply_to_id=values[7],
            media_seconds=float(values[8]),
            created_at=_CREATED_AT.to_python_value(values[9]),
            pinned=bool(values[10]),
            registrant_id=values[11],
        )
        # The attendee's own messages keep naming them once public: the page shows them as theirs.
        if message.registrant_id == registrant_id:
            found.append(item(message, registrant_id=registrant_id))
        else:
            found.append(item(message))
    return found


@dataclass
class Posted:
    """An attendee's message, and the auto-response it drew (if any)."""

    message: dict[str, Any]
    staff_message: dict[str, Any]
    auto_reply: dict[str, Any] | None = None


async def post(attendee: Attendee, raw: object, now: datetime, *, team_online: bool) -> Posted:
    """Store an attendee's chat message after the room's rules allow it."""
    language = attendee.language
    body = clean_body(raw, language)
    webinar = await Webinar.get(id=attendee.webinar_id)
    settings = room_settings.room_settings(webinar)
    if not settings.chat_enabled:
        raise ChatError("chat_off", _t(language, "The chat is closed for this session."))
    restriction = await RoomRestriction.get_or_none(
        session_id=attendee.session_id, registrant_id=attendee.registrant_id
    ).values_list("kind", flat=True)
    if restriction is not None:
        raise ChatError("muted", _t(language, "You can no longer write in this chat."))
    word = room_settings.find_banned_word(settings, body)
    if word is not None:
        raise ChatError(
            "banned_word",
            _t(language, "Please rephrase: “{word}” is not allowed in this chat.").format(
                word=word
            ),
        )
    earlier = (
        await ChatMessage.filter(
            session_id=attendee.session_id, registrant_id=attendee.registrant_id, staff_id=None
        )
        .filter(automatic=False)
        .order_by("-id")
        .first()
        .values_list("created_at", flat=True)
    )
    wait = settings.slow_mode_seconds
    if wait and earlier is not None and now - earlier < timedelta(seconds=wait):
        left = wait - int((now - earlier).total_seconds())
        raise ChatError(
            "slow_mode",
            _t(language, "Slow mode is on: you can write again in {seconds} s.").format(
                seconds=max(left, 1)
            ),
        )
    visibility = {"open": "public", "moderated": "pending"}.get(settings.chat_mode, "private")
    message = await ChatMessage.create(
        session_id=attendee.session_id,
        registrant_id=attendee.registrant_id,
        body=body,
        visibility=visibility,
        sender_name=_first_name(attendee.name),
        media_seconds=attendee.position(now),
        created_at=now,
    )
    attendance.note_chat(attendee.presence)
    contact_email = await Contact.get(id=attendee.contact_id).values_list("email", flat=True)
    posted = Posted(
        message=item(message),
        staff_message=item(
            message,
            staff_view=True,
            email=contact_email,
            webinar_title=webinar.title,
            name=attendee.name or message.sender_name,
        ),
    )
    if earlier is None and settings.auto_response and not team_online:
        auto = await ChatMessage.create(
            session_id=attendee.session_id,
            registrant_id=attendee.registrant_id,
            body=settings.auto_response,
            visibility="private",
            sender_name=_t(language, "Automatic reply"),
            automatic=True,
            reply_to_id=message.id,
            media_seconds=message.media_seconds,
            created_at=now,
            read_at=now,
        )
        posted.auto_reply = item(auto)
    return posted


def _first_name(name: str) -> str:
    words = name.split()
    return words[0][:60] if words else ""


async def question_asked(
    attendee: Attendee, interaction: Interaction, text: str, now: datetime
) -> Posted:
    """A question-to-the-presenter answer, put into the team's inbox as a private message."""
    webinar = await Webinar.get(id=attendee.webinar_id)
    message = await ChatMessage.create(
        session_id=attendee.session_id,
        registrant_id=attendee.registrant_id,
        body=f"{interaction.title}\n{text}"[: MAX_CHAT_CHARS + 200],
        visibility="private",
        sender_name=_first_name(attendee.name),
        media_seconds=attendee.position(now),
        created_at=now,
    )
    email = await Contact.get(id=attendee.contact_id).values_list("email", flat=True)
    return Posted(
        message=item(message),
        staff_message=item(
            message,
            staff_view=True,
            email=email,
            webinar_title=webinar.title,
            name=attendee.name or message.sender_name,
        ),
    )


# --- The team's side ---------------------------------------------------------------------------


@dataclass
class Replied:
    """A team message and where it goes."""

    message: dict[str, Any]
    staff_message: dict[str, Any]
    registrant_id: int | None  # private: to this attendee; None: public to the session
    emailed: bool = False
    updated: list[dict[str, Any]] = field(default_factory=list)


async def _session(session_id: object) -> WebinarSession:
    if not isinstance(session_id, int) or isinstance(session_id, bool):
        raise ChatError("bad_request", "session_id must be a number.")
    session = None
    if ids.is_id(session_id):
        session = await WebinarSession.get_or_none(id=session_id).prefetch_related("webinar")
    if session is None:
        raise ChatError("unknown_session", "That session does not exist.")
    return session


async def reply(
    staff: StaffUser,
    *,
    session_id: object,
    body: object,
    reply_to: object,
    registrant_id: object,
    public: bool,
    now: datetime,
) -> Replied:
    """A team member writes: privately to one attendee, or publicly to the session."""
    session = await _session(session_id)
    webinar = session.webinar
    assert isinstance(webinar, Webinar)
    text = clean_body(body, "en")
    original: ChatMessage | None = None
    if reply_to is not None:
        if not isinstance(reply_to, int) or isinstance(reply_to, bool):
            raise ChatError("bad_request", "reply_to must be a message id.")
        if ids.is_id(reply_to, big=True):
            original = await ChatMessage.get_or_none(id=reply_to, session_id=session.id)
        if original is None:
            raise ChatError("unknown_message", "That message is not in this session.")
    target: int | None = None
    if not public:
        if original is not None:
            target = original.registrant_id  # type: ignore[attr-defined]
        elif ids.is_id(registrant_id):
            assert isinstance(registrant_id, int)
            target = registrant_id
        if target is None or not await Registrant.exists(id=target, session_id=session.id):
            raise ChatError(
                "unknown_attendee", "Choose a message or an attendee of this session to answer."
            )
    position = 0.0
    if session.kind != "on_demand":
        position = max((now - session.starts_at).total_seconds(), 0.0)
    async with in_transaction():
        message = await ChatMessage.create(
            session_id=session.id,
            registrant_id=target,
            staff_id=staff.id,
            body=text,
            visibility="public" if public else "private",
            sender_name=staff.name[:120],
            reply_to_id=None if original is None else original.id,
            media_seconds=position,
            created_at=now,
        )
        if target is not None:
            # Answering a conversation reads it.
            await ChatMessage.filter(
                session_id=session.id, registrant_id=target, staff_id=None, read_at=None
            ).update(read_at=now)
    replied = Replied(
        message=item(message),
        staff_message=item(message, staff_view=True, webinar_title=webinar.title),
        registrant_id=target,
    )
    if target is not None and not await attendance.is_online(session.id, target, now):
        replied.emailed = await _email_reply(message, target, webinar, now)
    return replied


async def _email_reply(
    message: ChatMessage, registrant_id: int, webinar: Webinar, now: datetime
) -> bool:
    registrant = await Registrant.get_or_none(id=registrant_id).prefetch_related("contact")
    if registrant is None:
        return False
    contact = registrant.contact
    assert isinstance(contact, Contact)
    if contact.unsubscribed_at is not None or contact.suppressed_at is not None:
        return False
    await delivery.plan(
        REPLY_EMAIL,
        to_email=contact.email,
        due_at=now,
        registrant_id=registrant.id,
        context={"message_id": message.id, "name": contact.name},
    )
    await ChatMessage.filter(id=message.id).update(emailed_at=now)
    return True


@delivery.renderer(REPLY_EMAIL)
async def _render_reply(row: Any, now: datetime) -> delivery.Rendered:
    """A team reply for an attendee who had left the room, with their question quoted."""
    del now
    message = await ChatMessage.get_or_none(id=row.context.get("message_id")).prefetch_related(
        "session__webinar", "reply_to"
    )
    if message is None or message.deleted_at is not None:
        return delivery.Rendered(skip="the reply was deleted")
    registrant = await Registrant.get_or_none(id=row.registrant_id).prefetch_related("contact")
    if registrant is None:
        return delivery.Rendered(skip="the registration was deleted")
    contact = registrant.contact
    assert isinstance(contact, Contact)
    if contact.unsubscribed_at is not None or contact.suppressed_at is not None:
        return delivery.Rendered(skip="the contact unsubscribed")
    session = message.session
    assert isinstance(session, WebinarSession)
    webinar = session.webinar
    assert isinstance(webinar, Webinar)
    language = webinar.language
    name = str(row.context.get("name") or "")
    lines = [
        _t(language, "Hello {name},").format(name=name) if name else _t(language, "Hello,"),
        "",
        _t(language, "{staff} answered your message in “{title}”:").format(
            staff=message.sender_name, title=webinar.title
        ),
        "",
    ]
    original = message.reply_to
    if isinstance(original, ChatMessage):
        lines += [f"> {line}" for line in original.body.splitlines()] + [""]
    lines += [message.body, ""]
    token = crypto.unseal(registrant.join_token_sealed) if registrant.join_token_sealed else None
    if token:
        lines += [
            _t(language, "Your personal link to the session:"),
            f"{get_settings().public_base_url}/j/{token}",
        ]
    subject = _t(language, "Your question about “{title}”").format(title=webinar.title)
    return delivery.Rendered(
        to=row.to_email,
        to_name=contact.name or None,
        subject=subject,
        text="\n".join(lines) + "\n",
        headers=unsubscribe.headers_for(contact.id),
    )


@dataclass
class Moderated:
    """What a moderation action changed, for the hub to tell the rooms."""

    session_id: int
    registrant_id: int | None
    message: dict[str, Any] | None  # the changed message (None when deleted)
    staff_message: dict[str, Any] | None
    removed: int | None = None
    was_public: bool = False


async def moderate(
    staff: StaffUser, *, message_id: object, action: object, now: datetime
) -> Moderated:
    """Approve, pin, unpin or delete one message."""
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise ChatError("bad_request", "message_id must be a number.")
    if action not in ("approve", "pin", "unpin", "delete"):
        raise ChatError("bad_request", "action must be approve, pin, unpin or delete.")
    message = None
    if ids.is_id(message_id, big=True):
        message = await ChatMessage.get_or_none(id=message_id, deleted_at=None)
    if message is None:
        raise ChatError("unknown_message", "That message does not exist or was deleted.")
    was_public = message.visibility == "public"
    if action == "delete":
        await ChatMessage.filter(id=message.id).update(deleted_at=now)
        result = Moderated(
            session_id=message.session_id,  # type: ignore[attr-defined]
            registrant_id=message.registrant_id,  # type: ignore[attr-defined]
            message=None,
            staff_message=None,
            removed=message.id,
            was_public=was_public,
        )
    else:
        if action == "approve":
            if message.visibility != "pending":
                raise ChatError(
                    "not_pending", "Only messages waiting for approval can be approved."
                )
            message.visibility = "public"
        elif message.visibility != "public":
            raise ChatError("not_public", "Only public messages can be pinned.")
        else:
            message.pinned = action == "pin"
        message.read_at = message.read_at or now
        await message.save(update_fields=["visibility", "pinned", "read_at"])
        result = Moderated(
            session_id=message.session_id,  # type: ignore[attr-defined]
            registrant_id=message.registrant_id,  # type: ignore[attr-defined]
            message=item(message),
            staff_message=item(message, staff_view=True),
            was_public=was_public,
        )
    await audit.record(
        action=f"chat.{action}",
        actor=staff,
        target=f"chat message {message.id}",
        ip="",
        details={"session_id": result.session_id},
    )
    return result


async def banned_in(session_ids: set[int]) -> set[tuple[int, int]]:
    """The (session, registrant) pairs banned from these sessions."""
    rows = await RoomRestriction.filter(session_id__in=session_ids, kind="ban").values_list(
        "session_id", "registrant_id"
    )
    return {(int(session_id), int(registrant_id)) for session_id, registrant_id in rows}


async def restrict(
    staff: StaffUser, *, session_id: object, registrant_id: object, action: object
) -> tuple[int, int, str]:
    """Mute, ban or lift; answers (session id, registrant id, action)."""
    session = await _session(session_id)
    if not isinstance(registrant_id, int) or isinstance(registrant_id, bool):
        raise ChatError("bad_request", "registrant_id must be a number.")
    if action not in ("mute", "ban", "lift"):
        raise ChatError("bad_request", "action must be mute, ban or lift.")
    if not ids.is_id(registrant_id) or not await Registrant.exists(
        id=registrant_id, session_id=session.id
    ):
        raise ChatError("unknown_attendee", "That attendee is not in this session.")
    if action == "lift":
        await RoomRestriction.filter(session_id=session.id, registrant_id=registrant_id).delete()
    else:
        updated = await RoomRestriction.filter(
            session_id=session.id, registrant_id=registrant_id
        ).update(kind=action, staff_id=staff.id)
        if not updated:
            await RoomRestriction.create(
                session_id=session.id, registrant_id=registrant_id, kind=action, staff_id=staff.id
            )
    await audit.record(
        action=f"chat.{action}",
        actor=staff,
        target=f"registrant {registrant_id}",
        ip="",
        details={"session_id": session.id},
    )
    return session.id, registrant_id, str(action)


async def mark_read(session_id: object, now: datetime) -> int:
    """Mark a session's attendee messages read; how many were unread."""
    session = await _session(session_id)
    return (
        await ChatMessage.filter(
            session_id=session.id, staff_id=None, automatic=False, read_at=None
        )
        .exclude(registrant_id=None)
        .update(read_at=now)
    )


async def session_history_for_staff(session_id: int) -> list[dict[str, Any]]:
    """A session's whole conversation as the console shows it."""
    session = await _session(session_id)
    webinar = session.webinar
    assert isinstance(webinar, Webinar)
    messages = (
        await ChatMessage.filter(session_id=session.id, deleted_at=None)
        .order_by("-id")
        .limit(500)
        .prefetch_related("registrant__contact")
    )
    return [_staff_item(message, webinar.title) for message in reversed(messages)]


def _staff_item(message: ChatMessage, webinar_title: str) -> dict[str, Any]:
    extra: dict[str, Any] = {"webinar_title": webinar_title}
    registrant = message.registrant
    if isinstance(registrant, Registrant) and isinstance(registrant.contact, Contact):
        extra["email"] = registrant.contact.email
        if not message.staff_id and not message.automatic:  # type: ignore[attr-defined]
            extra["name"] = registrant.contact.name or message.sender_name
    return item(message, staff_view=True, **extra)


async def inbox(limit: int = 100) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Recent attendee messages across all sessions (unread first) and the approval queue."""
    base = ChatMessage.filter(staff_id=None, automatic=False, deleted_at=None).exclude(
        registrant_id=None
    )
    unread = (
        await base.filter(read_at=None)
        .order_by("-id")
        .limit(limit)
        .prefetch_related("registrant__contact", "session__webinar")
    )
    recent = (
        await base.exclude(read_at=None)
        .order_by("-id")
        .limit(max(limit - len(unread), 0))
        .prefetch_related("registrant__contact", "session__webinar")
    )
    queue = (
        await base.filter(visibility="pending")
        .order_by("id")
        .limit(limit)
        .prefetch_related("registrant__contact", "session__webinar")
    )

    def title(message: ChatMessage) -> str:
        session = message.session
        webinar = session.webinar if isinstance(session, WebinarSession) else None
        return webinar.title if isinstance(webinar, Webinar) else ""

    return (
        [_staff_item(message, title(message)) for message in [*unread, *recent]],
        [_staff_item(message, title(message)) for message in queue],
    )


async def unread_counts(session_ids: list[int]) -> dict[int, int]:
    """Unread attendee messages per session."""
    counts = dict.fromkeys(session_ids, 0)
    rows: list[Any] = (
        await ChatMessage.filter(
            session_id__in=session_ids,
            staff_id=None,
            automatic=False,
            read_at=None,
            deleted_at=None,
        )
        .exclude(registrant_id=None)
        .values_list("session_id", flat=True)
    )
    for session_id in rows:
        counts[int(session_id)] = counts.get(int(session_id), 0) + 1
    return counts
