"""The Socket.IO server: who may connect, what each event may do, and batched delivery.

Attendees connect with their join token (`auth={"token": ...}`), staff with their signed-in
session cookie; python-socketio refuses other origins. Every event is checked on arrival: its
sender's kind, a per-connection rate limit and the payload's shape. Chat going to a room is
gathered for one short tick and sent as one batch, so a busy session costs one packet per
attendee per tick instead of one per message; heartbeats are written to the database in
batches too. The services decide; this module only carries their answers to the right rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import socketio
from starlette.requests import cookie_parser

from app import i18n
from app.models import SessionStage, StaffUser, WebinarSession
from app.realtime import fanout, protocol, quick
from app.services import attendance, auth, chat, console, interactions, room
from app.services.permissions import Permission, can
from app.settings import Settings

log = logging.getLogger("encore.realtime")
# What a client hears when handling its event failed on the server (the log has the details).
FAILED = "Something went wrong on our side. Please try again."

CHAT_TICK = 0.1  # at most one chat batch per room per this many seconds
SLOW_TICK = 1.0  # heartbeats written, results and attendance broadcast
EVENT_RATE = 10.0  # events per second a connection may send on average
EVENT_BURST = 30.0
CHAT_RATE = 1.0  # chat messages per second, on top of the room's slow mode
CHAT_BURST = 5.0
MAX_REFUSED = 200  # refused this many times within REFUSED_WINDOW: a flood, disconnected
REFUSED_WINDOW = 60.0
MAX_TABS = 5  # connections one attendee may hold open on one web process
HEARTBEAT_EVERY = 5.0  # seconds: a connection's heartbeats closer than this are not stored
STAFF_CHECK = 10.0  # seconds between checks that the team's open consoles are still signed in
TEAM_TTL = 60  # seconds a web process's count of connected staff stays valid in Redis
TEAM_CACHE = 2.0  # seconds an answer to "is the team online?" is reused


class Bucket:
    """A token bucket: `rate` per second on average, up to `burst` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def refund(self) -> None:
        """Give back the token of an attempt that did not count."""
        self.tokens = min(self.burst, self.tokens + 1.0)


@dataclass
class Limits:
    """The rate limits of one person: an attendee's tabs share them (and the chat's order)."""

    events: Bucket = field(default_factory=lambda: Bucket(EVENT_RATE, EVENT_BURST))
    chats: Bucket = field(default_factory=lambda: Bucket(CHAT_RATE, CHAT_BURST))
    chat_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # slow mode: check, then write
    sockets: int = 0


@dataclass
class Connection:
    """One socket: an attendee's (with their admission) or a staff member's."""

    attendee: room.Attendee | None = None
    staff_id: int | None = None
    staff_token: str = ""  # the sign-in the console connected with: it must stay valid
    moderates: bool = False  # counted as the team being online (may answer the chat)
    limits: Limits = field(default_factory=Limits)
    refused: int = 0
    refused_since: float = 0.0
    last_heartbeat: float = -HEARTBEAT_EVERY
    clicked: set[int] = field(default_factory=set)


def _allowed_origins(settings: Settings) -> list[str]:
    base = urlsplit(settings.public_base_url)
    return [f"{base.scheme}://{base.netloc}"]


def _cookie(environ: dict[str, Any], name: str) -> str:
    # Starlette's parser, as for the pages: other sites' odd cookie names do not hide ours.
    return cookie_parser(environ.get("HTTP_COOKIE", "")).get(name, "")


def ok(**values: Any) -> dict[str, Any]:
    """A successful acknowledgement."""
    return {"ok": True, **values}


def refused(code: str, message: str) -> dict[str, Any]:
    """A refused event's acknowledgement (protocol.ErrorPayload inside)."""
    return {"ok": False, "error": {"code": code, "message": message}}


def _server_error(connection: Connection) -> dict[str, Any]:
    """The refusal of an attendee's event that failed on the server, in their language."""
    assert connection.attendee is not None
    failed = room.RoomError("server_error", FAILED, connection.attendee.language)
    return refused(failed.code, failed.message)


class Hub:
    """The live room's transport for one web process."""

    def __init__(self, sio: socketio.AsyncServer, settings: Settings) -> None:
        self.sio = sio
        self.settings = settings
        self.connections: dict[str, Connection] = {}
        self.outbox: dict[str, list[dict[str, Any]]] = {}
        self.heartbeats = attendance.HeartbeatBuffer()
        self.dirty_results: dict[tuple[int, int], Any] = {}
        self.dirty_clicks: dict[tuple[int, int], Any] = {}
        self.dirty_sessions: set[int] = set()
        self.local_staff = 0  # connected team members who may answer the chat
        self.limits: dict[int, Limits] = {}  # per registrant with a connection here
        self._staff_checked = time.monotonic()
        self._closing: set[asyncio.Task[None]] = set()
        self.process_key = f"{settings.redis_channel}:team:{os.getpid()}:{id(self)}"
        self._redis: Any = None
        self._team_cache: tuple[float, bool] = (0.0, False)
        self._ticker: asyncio.Task[None] | None = None
        self._chat_loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_sent: dict[str, float] = {}  # monotonic time of each room's last batch
        self._stopping = False
        # The page's clock rounds and heartbeats, answered by the transport as they are read.
        self.answer_now = quick.QuickEvents(
            sio, {protocol.SYNC: self._sync_now, protocol.HEARTBEAT: self._heartbeat_now}
        )

    # --- lifecycle -----------------------------------------------------------------------------

    def ensure_ticker(self) -> None:
        """Start the two loops on the first connection (they need the running event loop)."""
        if self._ticker is None or self._ticker.done():
            loop = asyncio.get_running_loop()
            self._ticker = loop.create_task(self._tick_loop())
            self._chat_loop_task = loop.create_task(self._chat_loop())

    async def shutdown(self) -> None:
        """Stop the room, then disconnect every socket; once, however often it is called."""
        if self._stopping:
            return
        await self.stop()
        await self.sio.shutdown()

    async def stop(self) -> None:
        """Write what is pending and stop the loop (the web process is shutting down)."""
        self._stopping = True
        for task in (self._ticker, self._chat_loop_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ticker = self._chat_loop_task = None
        with contextlib.suppress(Exception):
            await self._flush_chat()
            await self.heartbeats.flush()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.delete(self.process_key)
                await self._redis.aclose()
            self._redis = None

    async def _tick_loop(self) -> None:
        # Apart from the chat: what this loop waits for (the database) never holds up a message.
        while True:
            await asyncio.sleep(SLOW_TICK)
            try:
                await self._slow_tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room tick failed")

    async def _chat_loop(self) -> None:
        # A room that has had nothing for a tick gets its next message at once; what follows
        # within the tick waits and goes with the rest of the batch. Quiet rooms see no delay,
        # busy ones one packet per tick.
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                wait = await self._flush_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("chat flush failed")
                wait = CHAT_TICK
            if wait is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.set()

    async def _flush_due(self) -> float | None:
        """Send the batches of rooms whose tick has passed; how long until the next is due."""
        now = time.monotonic()
        soonest: float | None = None
        for target in list(self.outbox):
            wait = self._last_sent.get(target, -CHAT_TICK) + CHAT_TICK - now
            if wait > 0:
                soonest = wait if soonest is None else min(soonest, wait)
                continue
            messages = self.outbox.pop(target)
            self._last_sent[target] = now
            await self.sio.emit(protocol.CHAT, {"messages": messages}, room=target)
        if len(self._last_sent) > 10_000:
            self._last_sent = {t: at for t, at in self._last_sent.items() if now - at < CHAT_TICK}
        return soonest

    async def _flush_chat(self) -> None:
        """Send every waiting batch now (before a removal, and at shutdown)."""
        batches, self.outbox = self.outbox, {}
        now = time.monotonic()
        for target, messages in batches.items():
            self._last_sent[target] = now
            await self.sio.emit(protocol.CHAT, {"messages": messages}, room=target)

    async def _slow_tick(self) -> None:
        await self.heartbeats.flush()
        dirty, self.dirty_results = self.dirty_results, {}
        for (_interaction_id, session_id), interaction in dirty.items():
            results = await room.tally(interaction, session_id, fresh=True)
            # Attendees who have not answered a quiz yet must not find its answer on the wire.
            shared = {**results, "results": interactions.for_everyone(results["results"])}
            await self.sio.emit(protocol.RESULTS, shared, room=protocol.session_room(session_id))
            await self.sio.emit(protocol.RESULTS, results, room=protocol.STAFF_ROOM)
        clicked, self.dirty_clicks = self.dirty_clicks, {}
        for (_interaction_id, session_id), interaction in clicked.items():
            # Click counts are for the team only.
            for counted in await room.click_results(session_id, [interaction]):
                await self.sio.emit(protocol.RESULTS, counted, room=protocol.STAFF_ROOM)
        sessions, self.dirty_sessions = self.dirty_sessions, set()
        if sessions:
            counts = await attendance.online_counts(sessions, auth.utcnow())
            for session_id, online in counts.items():
                payload: protocol.AttendancePayload = {"session_id": session_id, "online": online}
                await self.sio.emit(protocol.ATTENDANCE, payload, room=protocol.STAFF_ROOM)
        if time.monotonic() - self._staff_checked >= STAFF_CHECK:
            self._staff_checked = time.monotonic()
            await self._check_staff()
            await self._check_bans()
        if self.settings.redis_url and self.local_staff:
            await self._publish_team()

    async def _check_staff(self) -> None:
        """Close the consoles whose sign-in ended; follow role changes of the others."""
        staff = {sid: c for sid, c in self.connections.items() if c.staff_id is not None}
        if not staff:
            return
        live = await auth.signed_in({c.staff_token for c in staff.values()})
        for sid, connection in staff.items():
            role = live.get(connection.staff_token)
            if role is None:
                await self.drop(sid)
            else:
                await self._set_moderates(connection, can(role, Permission.MODERATE))

    async def _check_bans(self) -> None:
        """Close attendees banned by a team member connected to another web process."""
        attendees = {
            sid: c.attendee for sid, c in self.connections.items() if c.attendee is not None
        }
        if not attendees:
            return
        banned = await chat.banned_in({a.session_id for a in attendees.values()})
        for sid, attendee in attendees.items():
            if (attendee.session_id, attendee.registrant_id) in banned:
                await self.drop(sid)

    async def _set_moderates(self, connection: Connection, moderates: bool) -> None:
        """Count a team member as able to answer the chat, or no longer."""
        if connection.moderates == moderates:
            return
        connection.moderates = moderates
        self.local_staff += 1 if moderates else -1
        if self.local_staff == (1 if moderates else 0) and not self._stopping:
            await self._team_changed()

    def send(self, target: str, message: dict[str, Any]) -> None:
        """Queue one chat item for its room's batch (sent at once if the room was quiet)."""
        self.outbox.setdefault(target, []).append(message)
        self._wake.set()

    # --- the team's presence -------------------------------------------------------------------

    async def _redis_client(self) -> Any:
        if self._redis is None:
            import redis.asyncio as redis_asyncio

            self._redis = redis_asyncio.Redis.from_url(self.settings.redis_url)
        return self._redis

    async def _publish_team(self) -> None:
        client = await self._redis_client()
        if self.local_staff:
            await client.set(self.process_key, self.local_staff, ex=TEAM_TTL)
        else:
            await client.delete(self.process_key)

    async def team_online(self) -> bool:
        """Whether someone from the team has the console open (on any web process)."""
        if self.local_staff:
            return True
        if not self.settings.redis_url:
            return False
        stamp, cached = self._team_cache
        if time.monotonic() - stamp < TEAM_CACHE:
            return cached
        client = await self._redis_client()
        found = False
        async for _key in client.scan_iter(
            match=f"{self.settings.redis_channel}:team:*", count=100
        ):
            found = True
            break
        self._team_cache = (time.monotonic(), found)
        return found

    async def _team_changed(self) -> None:
        if self.settings.redis_url:
            await self._publish_team()
            self._team_cache = (0.0, False)
        payload: protocol.TeamPayload = {"online": await self.team_online()}
        await self.sio.emit(protocol.TEAM, payload)

    # --- connect and disconnect ----------------------------------------------------------------

    async def connect(self, sid: str, environ: dict[str, Any], auth_data: Any) -> bool:
        """Admit an attendee by join token, or a signed-in staff member by cookie."""
        self.ensure_ticker()
        token = auth_data.get("token") if isinstance(auth_data, dict) else None
        try:
            if isinstance(token, str) and token:
                return await self._connect_attendee(sid, token)
            return await self._connect_staff(sid, environ)
        except socketio.exceptions.ConnectionRefusedError:
            await self._forget(sid)
            raise
        except Exception:
            # Anything else would leave the socket half connected, and never disconnected.
            log.exception("connect failed")
            await self._forget(sid)
            raise socketio.exceptions.ConnectionRefusedError(
                FAILED, {"code": "server_error"}
            ) from None

    async def _connect_attendee(self, sid: str, token: str) -> bool:
        now = auth.utcnow()
        try:
            admission = await room.admit(token, now)
        except room.RoomError as error:
            raise socketio.exceptions.ConnectionRefusedError(
                error.message, {"code": error.code}
            ) from None
        attendee = admission.attendee
        limits = self.limits.get(attendee.registrant_id)
        if limits is not None and limits.sockets >= MAX_TABS:
            raise socketio.exceptions.ConnectionRefusedError(
                i18n.gettext(attendee.language, "This link is open in too many tabs already."),
                {"code": "too_many_tabs"},
            )
        if limits is None:
            limits = self.limits[attendee.registrant_id] = Limits()
        limits.sockets += 1
        self.connections[sid] = Connection(attendee=attendee, limits=limits)
        await self.sio.enter_room(sid, protocol.session_room(attendee.session_id))
        await self.sio.enter_room(sid, protocol.attendee_room(attendee.registrant_id))
        admission.payload["team_online"] = await self.team_online()
        await fanout.send_to_one(self.sio, sid, protocol.ROOM, admission.payload)
        position = attendee.position(now)
        await attendance.record(attendance.JOIN, attendee.presence, now, position)
        self.dirty_sessions.add(attendee.session_id)
        return True

    async def _connect_staff(self, sid: str, environ: dict[str, Any]) -> bool:
        token = _cookie(environ, "encore_session")
        session = await auth.resolve_session(token)
        if session is None or session.stage != SessionStage.FULL:
            # (message, data): the client's connect_error then carries both as they are;
            # a single dict argument would reach it as its Python repr.
            raise socketio.exceptions.ConnectionRefusedError(
                "Sign in to connect.", {"code": "unauthenticated"}
            )
        user = session.user
        assert isinstance(user, StaffUser)
        connection = Connection(staff_id=user.id, staff_token=token)
        self.connections[sid] = connection
        await self.sio.enter_room(sid, protocol.STAFF_ROOM)
        hello: protocol.HelloPayload = {"role": user.role.value, "name": user.name}
        await self.sio.emit(protocol.HELLO, hello, to=sid)
        await self._set_moderates(connection, can(user.role, Permission.MODERATE))
        return True

    async def drop(self, sid: str) -> None:
        """Disconnect a client and close its connection.

        The Socket.IO disconnect alone leaves the WebSocket to the client, which a page closes
        itself; a client that ignores it would otherwise keep its connection and go on sending.
        """
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        await self.sio.disconnect(sid)
        if eio_sid is not None:
            await self.sio.eio.disconnect(eio_sid)

    def _close_soon(self, sid: str) -> None:
        """Disconnect a socket once the refusal being answered has gone out to it."""

        async def close() -> None:
            await asyncio.sleep(0.2)
            await self.drop(sid)

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _forget(self, sid: str) -> None:
        """Undo what a connection holds here (its rate limits, its place in the team count)."""
        connection = self.connections.pop(sid, None)
        if connection is None:
            return
        if connection.attendee is not None:
            limits = connection.limits
            limits.sockets -= 1
            if limits.sockets <= 0:
                self.limits.pop(connection.attendee.registrant_id, None)
        if connection.moderates:
            connection.moderates = False
            self.local_staff -= 1
            if self.local_staff == 0 and not self._stopping:
                with contextlib.suppress(Exception):
                    await self._team_changed()

    async def disconnect(self, sid: str) -> None:
        """Record an attendee's leave; tell attendees when the last team member left."""
        connection = self.connections.get(sid)
        if connection is None:
            return
        await self._forget(sid)
        if connection.attendee is not None and connection.limits.sockets <= 0:
            # The attendee left when their last tab closed (another open tab is still watching).
            attendee = connection.attendee
            now = auth.utcnow()
            position = attendee.position(now)
            if attendee.mode(now) in ("replay", "on_demand"):
                position = attendee.reported_position
            if not self._stopping:
                await attendance.record(attendance.LEAVE, attendee.presence, now, position)
                self.dirty_sessions.add(attendee.session_id)

    # --- guards --------------------------------------------------------------------------------

    async def _allowed(
        self, sid: str, connection: Connection | None, chat_event: bool
    ) -> dict[str, Any] | None:
        if connection is None:
            return refused("not_connected", "Connect first.")
        limits = connection.limits
        if not limits.events.take() or (chat_event and not limits.chats.take()):
            now = time.monotonic()
            if now - connection.refused_since > REFUSED_WINDOW:
                connection.refused, connection.refused_since = 0, now
            connection.refused += 1
            if connection.refused >= MAX_REFUSED:
                log.warning("disconnecting a flooding connection", extra={"sid": sid})
                await self.drop(sid)
            language = connection.attendee.language if connection.attendee else "en"
            return refused(
                "rate_limited", i18n.gettext(language, "Too many messages at once. Wait a moment.")
            )
        return None

    async def attendee_event(
        self,
        sid: str,
        data: Any,
        handler: Callable[[room.Attendee, dict[str, Any]], Awaitable[dict[str, Any]]],
        *,
        chat_event: bool = False,
    ) -> dict[str, Any]:
        """Run an attendee's event after the guards; errors become refusals."""
        connection = self.connections.get(sid)
        problem = await self._allowed(sid, connection, chat_event)
        if problem is not None:
            return problem
        assert connection is not None
        if connection.attendee is None:
            return refused("forbidden", "Only attendees send this.")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return refused("bad_request", "The message must be an object.")
        try:
            return await handler(connection.attendee, data)
        except (room.RoomError, chat.ChatError) as error:
            if chat_event:
                # A message the room refused (empty, too long...) is not held against the
                # sender's chat rate; every event still counts against the general one.
                connection.limits.chats.refund()
            return refused(error.code, error.message)
        except Exception:
            log.exception("attendee event failed")
            return _server_error(connection)

    async def staff_event(
        self,
        sid: str,
        data: Any,
        handler: Callable[[StaffUser, dict[str, Any]], Awaitable[dict[str, Any]]],
        *,
        permission: Permission = Permission.MODERATE,
    ) -> dict[str, Any]:
        """Run a staff member's event after the guards, as the user they are now."""
        connection = self.connections.get(sid)
        problem = await self._allowed(sid, connection, False)
        if problem is not None:
            return problem
        assert connection is not None
        if connection.staff_id is None:
            return refused("forbidden", "Only the team sends this.")
        # Read again on every event: a sign-out, a disabled account or a role taken away holds
        # at once (and an idle console is closed by the periodic check).
        session = await auth.resolve_session(connection.staff_token)
        if (
            session is None
            or session.stage != SessionStage.FULL
            or session.user.id != connection.staff_id
        ):
            self._close_soon(sid)
            return refused("unauthenticated", "Sign in again.")
        user = session.user
        assert isinstance(user, StaffUser)
        await self._set_moderates(connection, can(user.role, Permission.MODERATE))
        if not can(user.role, permission):
            return refused("forbidden", "Your role may not do this.")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return refused("bad_request", "The message must be an object.")
        try:
            return await handler(user, data)
        except (room.RoomError, chat.ChatError, interactions.InteractionError) as error:
            code = getattr(error, "code", "bad_request")
            return refused(code, getattr(error, "message", str(error)))
        except Exception:
            log.exception("staff event failed")
            return refused("server_error", FAILED)

    # --- attendee events -----------------------------------------------------------------------

    def _quick_guard(
        self, sid: str, arguments: list[Any]
    ) -> tuple[Connection, dict[str, Any]] | None:
        """An attendee's connection and the event's object, when the event may be answered now.

        None leaves the event to `attendee_event`, which answers it with the reason (not
        connected, not an attendee, no object, or over the rate limit, which counts against a
        flood there).
        """
        connection = self.connections.get(sid)
        if connection is None or connection.attendee is None or len(arguments) > 1:
            return None
        data = arguments[0] if arguments else None
        if data is None:
            data = {}
        if not isinstance(data, dict) or not connection.limits.events.take():
            return None
        return connection, data

    def _sync_now(self, sid: str, arguments: list[Any]) -> dict[str, Any] | None:
        if self._quick_guard(sid, arguments) is None:
            return None
        return self._sync()

    def _heartbeat_now(self, sid: str, arguments: list[Any]) -> dict[str, Any] | None:
        guarded = self._quick_guard(sid, arguments)
        if guarded is None:
            return None
        connection, data = guarded
        try:
            return self._heartbeat(connection, data)
        except Exception:
            log.exception("attendee event failed")
            return _server_error(connection)

    @staticmethod
    def _sync() -> dict[str, Any]:
        return ok(server_ms=room.ms(auth.utcnow()))

    def _heartbeat(self, connection: Connection, payload: dict[str, Any]) -> dict[str, Any]:
        attendee = connection.attendee
        assert attendee is not None
        position = payload.get("position")
        if not isinstance(position, int | float) or isinstance(position, bool):
            return refused("bad_request", "position must be a number of seconds.")
        now = auth.utcnow()
        seconds = attendee.clamp_reported(float(position), now)
        attendee.reported_position = seconds
        if attendee.mode(now) in ("waiting", "ended"):
            return ok()  # nothing plays before the start or after the end of a session
        if time.monotonic() - connection.last_heartbeat < HEARTBEAT_EVERY:
            return ok()  # the player reports every 20 s: more often is not stored
        connection.last_heartbeat = time.monotonic()
        self.heartbeats.add(attendee.presence, now, seconds, playing=payload.get("playing") is True)
        return ok()

    async def on_sync(self, sid: str, data: Any = None) -> dict[str, Any]:
        """The server's clock, for the client's offset."""

        async def run(attendee: room.Attendee, payload: dict[str, Any]) -> dict[str, Any]:
            del attendee, payload
            return self._sync()

        connection = self.connections.get(sid)
        if connection is not None and connection.staff_id is not None:
            problem = await self._allowed(sid, connection, False)
            return problem or self._sync()
        return await self.attendee_event(sid, data, run)

    async def on_chat_send(self, sid: str, data: Any = None) -> dict[str, Any]:
        """An attendee writes in the chat."""

        async def run(attendee: room.Attendee, payload: dict[str, Any]) -> dict[str, Any]:
            team_online = await self.team_online()
            # One message of a person at a time, so slow mode sees the one before (other tabs too).
            async with self.connections[sid].limits.chat_lock:
                posted = await chat.post(
                    attendee, payload.get("body"), auth.utcnow(), team_online=team_online
                )
            message = posted.message
            if message["visibility"] == "public":
                self.send(protocol.session_room(attendee.session_id), message)
            else:
                self.send(protocol.attendee_room(attendee.registrant_id), message)
            self.send(protocol.STAFF_ROOM, posted.staff_message)
            if posted.auto_reply is not None:
                self.send(protocol.attendee_room(attendee.registrant_id), posted.auto_reply)
            return ok(message=message)

        return await self.attendee_event(sid, data, run, chat_event=True)

    async def on_answer(self, sid: str, data: Any = None) -> dict[str, Any]:
        """An attendee answers a poll, quiz, rating, NPS or question."""

        async def run(attendee: room.Attendee, payload: dict[str, Any]) -> dict[str, Any]:
            answered = await room.answer(
                attendee, payload.get("interaction_id"), payload.get("answer"), auth.utcnow()
            )
            if answered.question is not None:
                self.send(protocol.attendee_room(attendee.registrant_id), answered.question.message)
                self.send(protocol.STAFF_ROOM, answered.question.staff_message)
            if answered.results is None:
                return ok()
            interaction = answered.interaction
            self.dirty_results[(interaction.id, attendee.session_id)] = interaction
            return ok(results=answered.results)

        return await self.attendee_event(sid, data, run)

    async def on_click(self, sid: str, data: Any = None) -> dict[str, Any]:
        """An attendee opens an offer, a download or a link."""

        async def run(attendee: room.Attendee, payload: dict[str, Any]) -> dict[str, Any]:
            connection = self.connections[sid]
            target = payload.get("interaction_id")
            if isinstance(target, int) and target in connection.clicked:
                return ok()  # counted already: opening it again adds nothing
            interaction = await room.click(attendee, payload.get("interaction_id"), auth.utcnow())
            connection.clicked.add(interaction.id)
            self.dirty_clicks[(interaction.id, attendee.session_id)] = interaction
            return ok()

        return await self.attendee_event(sid, data, run)

    async def on_heartbeat(self, sid: str, data: Any = None) -> dict[str, Any]:
        """Where an attendee's player is; written with the next batch."""

        async def run(attendee: room.Attendee, payload: dict[str, Any]) -> dict[str, Any]:
            del attendee
            return self._heartbeat(self.connections[sid], payload)

        return await self.attendee_event(sid, data, run)

    async def on_start(self, sid: str, data: Any = None) -> dict[str, Any]:
        """An attendee of an on-demand session pressed play (or resumed at `position`)."""

        async def run(attendee: room.Attendee, payload: dict[str, Any]) -> dict[str, Any]:
            position = payload.get("position", 0.0)
            if not isinstance(position, int | float) or isinstance(position, bool):
                position = 0.0
            started = room.start_on_demand(attendee, auth.utcnow(), float(position))
            return ok(started_ms=room.ms(started))

        return await self.attendee_event(sid, data, run)

    # --- staff events --------------------------------------------------------------------------

    async def on_console(self, sid: str, data: Any = None) -> dict[str, Any]:
        """The console's first view."""

        async def run(user: StaffUser, payload: dict[str, Any]) -> dict[str, Any]:
            del user, payload
            view = await console.overview(auth.utcnow())
            view["team_online"] = self.local_staff
            return ok(console=view)

        return await self.staff_event(sid, data, run, permission=Permission.VIEW_SESSIONS)

    async def on_watch(self, sid: str, data: Any = None) -> dict[str, Any]:
        """One session in detail."""

        async def run(user: StaffUser, payload: dict[str, Any]) -> dict[str, Any]:
            del user
            return ok(**await console.watch(payload.get("session_id"), auth.utcnow()))

        return await self.staff_event(sid, data, run, permission=Permission.VIEW_SESSIONS)

    async def on_read(self, sid: str, data: Any = None) -> dict[str, Any]:
        """Mark a session's messages read."""

        async def run(user: StaffUser, payload: dict[str, Any]) -> dict[str, Any]:
            del user
            marked = await chat.mark_read(payload.get("session_id"), auth.utcnow())
            read: protocol.ReadPayload = {
                "session_id": payload["session_id"],
                "registrant_id": None,
            }
            await self.sio.emit(protocol.READ, read, room=protocol.STAFF_ROOM)
            return ok(marked=marked)

        return await self.staff_event(sid, data, run)

    async def on_reply(self, sid: str, data: Any = None) -> dict[str, Any]:
        """A team member writes to one attendee or to the whole session."""

        async def run(user: StaffUser, payload: dict[str, Any]) -> dict[str, Any]:
            public = payload.get("public")
            if not isinstance(public, bool):
                return refused("bad_request", "public must be true or false.")
            replied = await chat.reply(
                user,
                session_id=payload.get("session_id"),
                body=payload.get("body"),
                reply_to=payload.get("reply_to"),
                registrant_id=payload.get("registrant_id"),
                public=public,
                now=auth.utcnow(),
            )
            message = replied.message
            if replied.registrant_id is None:
                self.send(protocol.session_room(message["session_id"]), message)
            else:
                self.send(protocol.attendee_room(replied.registrant_id), message)
                read: protocol.ReadPayload = {
                    "session_id": message["session_id"],
                    "registrant_id": replied.registrant_id,
                }
                await self.sio.emit(protocol.READ, read, room=protocol.STAFF_ROOM)
            self.send(protocol.STAFF_ROOM, replied.staff_message)
            return ok(message=replied.staff_message, emailed=replied.emailed)

        return await self.staff_event(sid, data, run)

    async def on_moderate(self, sid: str, data: Any = None) -> dict[str, Any]:
        """Approve, pin, unpin or delete a message."""

        async def run(user: StaffUser, payload: dict[str, Any]) -> dict[str, Any]:
            done = await chat.moderate(
                user,
                message_id=payload.get("message_id"),
                action=payload.get("action"),
                now=auth.utcnow(),
            )
            targets = [protocol.STAFF_ROOM]
            if done.registrant_id is not None:
                targets.append(protocol.attendee_room(done.registrant_id))
            if done.was_public or (
                done.message is not None and done.message["visibility"] == "public"
            ):
                targets.append(protocol.session_room(done.session_id))
            if done.removed is not None:
                removed: protocol.RemovedPayload = {"ids": [done.removed]}
                await self._flush_chat()  # a removal must not overtake the message it removes
                for target in targets:
                    await self.sio.emit(protocol.CHAT_REMOVED, removed, room=target)
                return ok()
            assert done.message is not None
            assert done.staff_message is not None
            for target in targets:
                self.send(
                    target, done.staff_message if target == protocol.STAFF_ROOM else done.message
                )
            return ok()

        return await self.staff_event(sid, data, run)

    async def on_restrict(self, sid: str, data: Any = None) -> dict[str, Any]:
        """Mute, ban or lift a restriction on an attendee."""

        async def run(user: StaffUser, payload: dict[str, Any]) -> dict[str, Any]:
            session_id, registrant_id, action = await chat.restrict(
                user,
                session_id=payload.get("session_id"),
                registrant_id=payload.get("registrant_id"),
                action=payload.get("action"),
            )
            target = protocol.attendee_room(registrant_id)
            if action == "lift":
                lifted: protocol.RestrictedPayload = {"kind": "lift"}
                await self.sio.emit(protocol.RESTRICTED, lifted, room=target)
                return ok()
            restricted: protocol.RestrictedPayload = {"kind": "ban" if action == "ban" else "mute"}
            await self.sio.emit(protocol.RESTRICTED, restricted, room=target)
            if action == "ban":
                # Connections on this process go now; a ban also refuses every later connect.
                for other, connection in list(self.connections.items()):
                    attendee = connection.attendee
                    if (
                        attendee is not None
                        and attendee.registrant_id == registrant_id
                        and attendee.session_id == session_id
                    ):
                        await self.drop(other)
            return ok()

        return await self.staff_event(sid, data, run)

    async def on_push(self, sid: str, data: Any = None) -> dict[str, Any]:
        """Push an ad-hoc poll, offer or announcement into a running session."""

        async def run(user: StaffUser, payload: dict[str, Any]) -> dict[str, Any]:
            session_id = payload.get("session_id")
            if not isinstance(session_id, int) or isinstance(session_id, bool):
                return refused("bad_request", "session_id must be a number.")
            session = await WebinarSession.get_or_none(id=session_id)
            if session is None:
                return refused("unknown_session", "That session does not exist.")
            now = auth.utcnow()
            kind = payload.get("kind")
            title = payload.get("title")
            target = protocol.session_room(session.id)
            if kind == "announcement":
                config = payload.get("config")
                words = config.get("text") if isinstance(config, dict) else None
                text = chat.clean_body(words or payload.get("text") or title, "en")
                announcement: protocol.AnnouncementPayload = {"text": text}
                await self.sio.emit(protocol.ANNOUNCEMENT, announcement, room=target)
                return ok()
            if kind not in ("poll", "offer"):
                return refused("bad_request", "kind must be poll, offer or announcement.")
            config = payload.get("config")
            if not isinstance(config, dict) or not isinstance(title, str):
                return refused("bad_request", "title and config are required.")
            opens_at = 0.0
            if session.kind != "on_demand":
                opens_at = max((now - session.starts_at).total_seconds(), 0.0)
            interaction = await interactions.create_pushed(
                session=session,
                kind=kind,
                title=title,
                config=config,
                opens_at=opens_at,
                actor=user,
            )
            room.forget_session(session.id)  # later joiners get it in their timeline
            item = interactions.public_item(interaction)
            await self.sio.emit(protocol.INTERACTION, item, room=target)
            for_staff = {**item, "session_id": session.id}
            await self.sio.emit(protocol.INTERACTION, for_staff, room=protocol.STAFF_ROOM)
            return ok(interaction=for_staff)

        return await self.staff_event(sid, data, run)


def create_server(settings: Settings) -> socketio.AsyncServer:
    """An AsyncServer on the in-memory manager, or on Redis when REDIS_URL is set."""
    manager = (
        fanout.FanoutRedisManager(settings.redis_url, channel=settings.redis_channel)
        if settings.redis_url
        else fanout.FanoutManager()
    )
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        cors_allowed_origins=_allowed_origins(settings),
        max_http_buffer_size=protocol.MAX_PAYLOAD_BYTES,
        # Each event is handled in the task that received it (one per message, as the engine
        # starts), so the transport's bound on messages in flight per connection holds.
        async_handlers=False,
        logger=False,
        engineio_logger=False,
    )
    hub = Hub(sio, settings)
    _register(sio, hub)
    sio.hub = hub
    return sio


def create_emitter(settings: Settings) -> socketio.AsyncRedisManager:
    """A write-only manager with which other processes (the scheduler) emit into the rooms."""
    return socketio.AsyncRedisManager(
        settings.redis_url, channel=settings.redis_channel, write_only=True
    )


def _one_argument(
    handler: Callable[[str, Any], Awaitable[dict[str, Any]]],
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The handler, answering a refusal when the event carries more than one argument."""

    async def run(sid: str, data: Any = None, *extra: Any) -> dict[str, Any]:
        if extra:
            return refused("bad_request", "Send one object with this event.")
        return await handler(sid, data)

    return run


def _register(sio: socketio.AsyncServer, hub: Hub) -> None:
    async def connect(sid: str, environ: dict[str, Any], auth_data: Any = None) -> bool:
        return await hub.connect(sid, environ, auth_data)

    async def disconnect(sid: str, reason: Any = None) -> None:
        del reason
        await hub.disconnect(sid)

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    handlers: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
        protocol.SYNC: hub.on_sync,
        protocol.CHAT_SEND: hub.on_chat_send,
        protocol.ANSWER: hub.on_answer,
        protocol.CLICK: hub.on_click,
        protocol.HEARTBEAT: hub.on_heartbeat,
        protocol.START: hub.on_start,
        protocol.CONSOLE: hub.on_console,
        protocol.WATCH: hub.on_watch,
        protocol.READ: hub.on_read,
        protocol.REPLY: hub.on_reply,
        protocol.MODERATE: hub.on_moderate,
        protocol.RESTRICT: hub.on_restrict,
        protocol.PUSH: hub.on_push,
    }
    for name, handler in handlers.items():
        sio.on(name, _one_argument(handler))

    async def unknown(event: str, sid: str, *data: Any) -> dict[str, Any]:
        del data
        connection = hub.connections.get(sid)
        if connection is not None:
            connection.refused += 1
            if connection.refused >= MAX_REFUSED:
                await hub.drop(sid)
        return refused("unknown_event", f"There is no event named {event[:40]!r}.")

    sio.on("*", unknown)
