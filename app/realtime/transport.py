"""Engine.IO's WebSocket transport inside uvicorn's WebSocket protocol, frames written straight.

python-engineio serves a WebSocket through ASGI: per connection a task runs the ASGI app, a
writer task waits on the socket's queue (each wait wrapped in `asyncio.wait_for`, itself a task),
another task sleeps until each ping, and every packet goes through uvicorn's ASGI `send`. For a
room of thousands that is most of the CPU a delivered message costs, and most of a connection's
memory.

Here a WebSocket opened on the Socket.IO path with `EIO=4&transport=websocket` (what the room page
and the console open) is served by the WebSocket protocol object itself:

- the handshake is checked as the engine checks it (protocol version, Origin) and the Socket.IO
  server's `connect` runs before the upgrade is accepted, as in the engine;
- each packet is written to the connection as one frame, synchronously, so packets keep the order
  in which they were sent and nothing waits for a writer; a room's packet is framed once and the
  same bytes written to every member (`LeanSocket.write_frame`);
- pings are loop timers, not tasks; a client that stops answering is closed after
  `ping_timeout`, and one that stops reading is closed once `MAX_BUFFERED` bytes wait for it
  (it would otherwise grow its buffer without end);
- each message from the client is handed to the Socket.IO server in a task of its own (as the
  engine does); at most `MAX_IN_FLIGHT` per connection, after which the connection is not read
  until one finishes; the few the hub answers without waiting for anything (the page's clock
  rounds and heartbeats, `app.realtime.quick`) are answered as they are read, when nothing
  from the same client is still being handled;
- at most `max_http_buffer_size` bytes per message, as the engine allows.

Sockets are kept in the engine's own `sockets` table and answer the calls the Socket.IO server
makes (`send`, `close`, `session`, `upgraded`), so the server, its managers and the hub do not
know which transport a client came by. Everything else (long-polling, an upgrade from polling,
other paths) goes to the ASGI app as before.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import urllib.parse
from typing import Any, ClassVar, Protocol

import engineio
import socketio
from engineio import packet as eio_packet
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from app.realtime.protocol import SOCKETIO_PATH

logger = logging.getLogger("encore.realtime")

# Bytes waiting to be sent to one client before it is taken for gone (about a thousand chat
# messages behind).
MAX_BUFFERED = 1024 * 1024
# Messages from one client being handled at once before its connection stops being read.
MAX_IN_FLIGHT = 8
# What the Socket.IO server sees of the request (the hub reads the cookie; the engine the Origin).
ENVIRON_HEADERS = {
    "host": "HTTP_HOST",
    "origin": "HTTP_ORIGIN",
    "cookie": "HTTP_COOKIE",
    "user-agent": "HTTP_USER_AGENT",
    "accept-language": "HTTP_ACCEPT_LANGUAGE",
    "x-forwarded-for": "HTTP_X_FORWARDED_FOR",
    "x-forwarded-proto": "HTTP_X_FORWARDED_PROTO",
    "x-forwarded-host": "HTTP_X_FORWARDED_HOST",
}

_TEXT = 0x81  # FIN and the text opcode
_BINARY = 0x82


def frame(payload: bytes, first: int = _TEXT) -> bytes:
    """One unmasked WebSocket frame (server to client) carrying `payload`."""
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


def packet_frame(pkt: eio_packet.Packet) -> bytes:
    """An Engine.IO packet as the one frame that carries it over WebSocket."""
    encoded = pkt.encode()
    if isinstance(encoded, str):
        return frame(encoded.encode())
    return frame(bytes(encoded), _BINARY)


def frames_for(encoded: str | bytes | list[Any]) -> list[bytes]:
    """The frames of one encoded Socket.IO packet (more than one when it has binary attachments)."""
    parts = encoded if isinstance(encoded, list) else [encoded]
    return [packet_frame(eio_packet.Packet(eio_packet.MESSAGE, part)) for part in parts]


class AnswerNow(Protocol):
    """Answers a client's message as it is read, or leaves it to the Socket.IO server."""

    def __call__(self, eio_sid: str, message: str) -> str | None:
        """The Socket.IO packet to send back ('' for none), or None for the server's way."""


PING_FRAME = frame(b"2")
CLOSE_FRAME = frame(b"1")
NOOP_FRAME = frame(b"6")


class LeanSocket:
    """An Engine.IO socket whose packets are written to its WebSocket as they are sent."""

    __slots__ = (
        "backlog",
        "closed",
        "closing",
        "connection",
        "in_flight",
        "last_ping",
        "server",
        "session",
        "sid",
        "timer",
    )
    # What the engine and the Socket.IO server read of a socket.
    connected = True
    upgraded = True
    upgrading = False

    def __init__(self, server: engineio.AsyncServer, sid: str, connection: EngineProtocol) -> None:
        self.server = server
        self.sid = sid
        self.connection = connection
        self.last_ping: float | None = None  # set while a ping waits for its pong
        self.closing = False
        self.closed = False
        self.session: dict[str, Any] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.in_flight = 0
        self.backlog: list[Any] = []  # messages read while MAX_IN_FLIGHT were being handled

    # Sending.

    def write_frame(self, data: bytes) -> None:
        """Write one prepared frame (unless closed); drop a client that stopped reading."""
        if self.closed:
            return
        transport = self.connection.transport
        if transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > MAX_BUFFERED:
            transport.abort()  # connection_lost follows and closes the socket

    async def send(self, pkt: eio_packet.Packet) -> None:
        """Send an Engine.IO packet to the client."""
        self.write_frame(packet_frame(pkt))

    async def check_ping_timeout(self) -> bool:
        """True while the socket is open (pings are watched by the socket's own timer)."""
        return not self.closed

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """Close the socket: the server's disconnect runs, then the WebSocket is closed."""
        del wait  # nothing is queued: every packet is already written
        if self.closed or self.closing:
            return
        self.closing = True
        self._stop_timer()
        try:
            await self.server._trigger_event(
                "disconnect",
                self.sid,
                reason or self.server.reason.SERVER_DISCONNECT,
                run_async=False,
            )
        finally:
            if not abort:
                self.write_frame(CLOSE_FRAME)
            self.closed = True
            if self.server.sockets.get(self.sid) is self:
                del self.server.sockets[self.sid]
            self.connection.close_websocket()

    # Pings: the server pings every ping_interval, the client answers within ping_timeout.

    def start_pings(self) -> None:
        """Ping after the interval, as the engine does."""
        self.timer = self.connection.loop.call_later(self.server.ping_interval, self._ping)

    def _ping(self) -> None:
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        self.write_frame(PING_FRAME)
        self.timer = self.connection.loop.call_later(self.server.ping_timeout, self._pong_missed)

    def _pong_missed(self) -> None:
        self.timer = None
        self.connection.spawn(self.close(wait=False, reason=self.server.reason.PING_TIMEOUT))

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # Receiving.

    def receive(self, data: str | bytes) -> None:
        """One message from the client."""
        if self.closing or self.closed:
            return
        if self.in_flight == 0 and type(data) is str and data.startswith("4"):
            # A message answered at once never overtakes one still being handled.
            answer_now = self.connection.answer_now
            if answer_now is not None:
                reply = answer_now(self.sid, data[1:])
                if reply is not None:
                    if reply:
                        self.write_frame(frame(("4" + reply).encode()))
                    return
        try:
            pkt = eio_packet.Packet(encoded_packet=data)
        except (ValueError, IndexError):
            self.connection.spawn(self.close(abort=True, reason=self.server.reason.TRANSPORT_ERROR))
            return
        kind = pkt.packet_type
        if kind == eio_packet.MESSAGE:
            self._handle_message(pkt.data)
        elif kind == eio_packet.PONG:
            if self.last_ping is not None:
                self.last_ping = None
                self._stop_timer()
                self.start_pings()
        elif kind == eio_packet.CLOSE:
            self.connection.spawn(
                self.close(wait=False, abort=True, reason=self.server.reason.CLIENT_DISCONNECT)
            )
        elif kind == eio_packet.UPGRADE:
            self.write_frame(NOOP_FRAME)
        # Anything else (an OPEN or PING from a client, a NOOP) is ignored, as the engine does.

    def _handle_message(self, data: Any) -> None:
        if self.in_flight >= MAX_IN_FLIGHT:
            # One read can bring several messages: those past the bound wait their turn here.
            self.backlog.append(data)
            return
        self.in_flight += 1
        if self.in_flight >= MAX_IN_FLIGHT:
            self.connection.pause()
        self.connection.spawn(self._run(data))

    async def _run(self, data: Any) -> None:
        while True:
            handler = self.server.handlers.get("message")
            try:
                if handler is not None:
                    await handler(self.sid, data)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.server.logger.exception("message async handler error")
            if not self.backlog or self.closed:
                break
            data = self.backlog.pop(0)
        self.in_flight -= 1
        if self.in_flight < MAX_IN_FLIGHT:
            self.connection.resume()

    def lost(self) -> None:
        """The connection is gone: the socket closes without a goodbye."""
        if not (self.closing or self.closed):
            self.connection.spawn(
                self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
            )


class EngineProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, serving Engine.IO WebSockets of one engine itself."""

    engine: ClassVar[engineio.AsyncServer]
    engine_path: ClassVar[str]
    answer_now: ClassVar[AnswerNow | None] = None
    socket: LeanSocket | None = None
    reading_paused = False
    lean = False  # served here, not by the ASGI app

    def handle_connect(self, event: Request) -> None:
        """Serve an Engine.IO WebSocket here; anything else goes to the ASGI app."""
        raw_path, _, query = event.path.partition("?")
        if (
            self.root_path + urllib.parse.unquote(raw_path) != self.engine_path
            or not _is_websocket_open(query)
            or "websocket" not in self.engine.transports
        ):
            super().handle_connect(event)
            return
        self.request = event
        self.response = self.conn.accept(event)
        self.handshake_initiated = True
        if self.response.status_code != 101:
            self._refuse(None)
            return
        environ = self._environ(event, raw_path, query)
        engine = self.engine
        if engine.cors_allowed_origins != []:
            origin = environ.get("HTTP_ORIGIN")
            if origin:
                allowed = engine._cors_allowed_origins(environ)
                if allowed is not None and origin not in allowed:
                    self._refuse(f"{origin} is not an accepted origin.")
                    return
        self.transport.pause_reading()  # nothing more is read before the upgrade is answered
        self.reading_paused = True
        self.lean = True
        # What only the ASGI path uses: about 4 KB per connection, for thousands of them.
        del self.queue, self.writable
        self.spawn(self._open(environ))

    async def _open(self, environ: dict[str, Any]) -> None:
        engine = self.engine
        socket = LeanSocket(engine, engine.generate_id(), self)
        try:
            await self._let_in(socket, environ)
        except Exception:
            logger.exception("opening an Engine.IO WebSocket failed")
            if not self.handshake_complete:
                self._refuse("Internal Server Error", status=500)
            self.transport.close()
            if not socket.closed:  # the Socket.IO server forgets it too
                socket.closed = True
                engine.sockets.pop(socket.sid, None)
                await engine._trigger_event(
                    "disconnect", socket.sid, engine.reason.TRANSPORT_ERROR, run_async=False
                )

    async def _let_in(self, socket: LeanSocket, environ: dict[str, Any]) -> None:
        engine = self.engine
        sid = socket.sid
        engine.sockets[sid] = socket
        try:
            accepted = await engine._trigger_event("connect", sid, environ, run_async=False)
        except Exception:
            accepted = False
        refused = accepted is not None and accepted is not True
        if refused or self.transport.is_closing():
            socket.closed = True
            engine.sockets.pop(sid, None)
            if refused:
                if not self.transport.is_closing():
                    self._refuse("Unauthorized", status=401)
            else:  # the client left while it was being let in
                await engine._trigger_event(
                    "disconnect", sid, engine.reason.TRANSPORT_CLOSE, run_async=False
                )
            return
        opening = packet_frame(
            eio_packet.Packet(
                eio_packet.OPEN,
                {
                    "sid": sid,
                    "upgrades": [],
                    "pingTimeout": int(engine.ping_timeout * 1000),
                    "pingInterval": int(engine.ping_interval + engine.ping_interval_grace_period)
                    * 1000,
                    "maxPayload": engine.max_http_buffer_size,
                },
            )
        )
        headers = self.response.headers
        if "Server" in headers:  # the library's name and version (uvicorn adds its own if asked)
            del headers["Server"]
        for name, value in self.default_headers:
            if name != b"date":  # the handshake's own Date stands
                headers[name.decode("latin-1")] = value.decode("latin-1")
        self.conn.send_response(self.response)
        self.conn.max_message_size = engine.max_http_buffer_size
        self.handshake_complete = True
        self.transport.write(b"".join(self.conn.data_to_send()) + opening)
        self.socket = socket
        # The request's headers (about 2 KB) stay referenced by the handshake parser: emptied.
        self.request.headers.clear()
        del self.request, self.response
        socket.start_pings()
        self.resume()

    def _environ(self, event: Request, raw_path: str, query: str) -> dict[str, Any]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": self.root_path + urllib.parse.unquote(raw_path),
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client[0] if self.client else "",
            "wsgi.url_scheme": "https" if self.scheme == "wss" else "http",
            "HTTP_UPGRADE": "websocket",
        }
        for name, value in event.headers.raw_items():
            key = ENVIRON_HEADERS.get(name.lower())
            if key is not None:
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _refuse(self, reason: str | None, status: int = 400) -> None:
        self.handshake_complete = True
        self.close_sent = True
        response = self.response if reason is None else self.conn.reject(status, reason + "\n")
        self.conn.send_response(response)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()

    # Frames from the client.

    def send_receive_event_to_app(self) -> None:
        """Hand a whole message to the socket (or to the ASGI app for other connections)."""
        socket = self.socket
        if socket is None:
            if not self.lean:
                super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return
        message: str | bytes = bytes(data)
        if self.curr_msg_data_type == "text":
            try:
                message = bytes(data).decode()
            except UnicodeDecodeError:
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        socket.receive(message)

    def handle_parser_exception(self) -> None:
        """A frame broke the protocol or the size limit: close at once."""
        if not self.lean:
            super().handle_parser_exception()
            return
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()

    def handle_close(self, event: Any) -> None:
        """The client's closing frame (or its answer to ours)."""
        if not self.lean or self.close_sent:
            super().handle_close(event)
            return
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """The TCP connection is gone; its socket closes."""
        if not self.lean:
            super().connection_lost(exc)
            return
        self.connections.discard(self)
        self.handshake_complete = True
        self.disconnected = True
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        if exc is None:
            self.transport.close()
        if self.socket is not None:
            self.socket.lost()  # (one still being let in is seen to by _open)

    def shutdown(self) -> None:
        """The server is stopping: going away (1001), as a browser is told."""
        if not self.lean:
            super().shutdown()
            return
        if not self.close_sent and not self.transport.is_closing():
            self.conn.send_close(1001)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
        self.transport.close()

    # Helpers for the socket.

    def close_websocket(self) -> None:
        """Send the closing frame; the connection ends with the client's answer or a timeout."""
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.send_close(1000)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.reading_paused:
            self.resume()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    def pause(self) -> None:
        """Stop reading from the client."""
        if not self.reading_paused and not self.transport.is_closing():
            self.reading_paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        """Read from the client again."""
        if self.reading_paused:
            self.reading_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def spawn(self, work: Any) -> None:
        """Run a coroutine for this connection; uvicorn waits for it at shutdown."""
        task = self.loop.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _is_websocket_open(query: str) -> bool:
    """Whether the query opens a new Engine.IO 4 WebSocket (no session, no JSONP)."""
    values = urllib.parse.parse_qs(query)
    return (
        values.get("EIO") == ["4"]
        and values.get("transport") == ["websocket"]
        and "sid" not in values
        and "j" not in values
    )


def websocket_protocol(
    sio: socketio.AsyncServer,
    path: str = SOCKETIO_PATH,
    answer_now: AnswerNow | None = None,
) -> type[EngineProtocol]:
    """The WebSocket protocol class for uvicorn, serving the Engine.IO WebSockets of `sio`.

    `answer_now(engine sid, message)` may answer a client's message as it is read (see
    `EngineProtocol.answer_now`).
    """
    return type(
        "EngineProtocol",
        (EngineProtocol,),
        {
            "engine": sio.eio,
            "engine_path": f"/{path.strip('/')}/",
            "answer_now": staticmethod(answer_now) if answer_now is not None else None,
        },
    )
