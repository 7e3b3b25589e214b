"""The room benchmark's load generator: many raw WebSocket clients per process, speaking Engine.IO.

Each client is an asyncio protocol over the `websockets` sans-I/O state machine: no task, no
queue and no Socket.IO client library per connection, so one process holds thousands of them.
It speaks Engine.IO 4 / Socket.IO 5 on the wire: the open packet `0{...}`, the namespace connect
`40{"token": ...}`, ping `2` / pong `3`, events `42[...]` and acknowledgements `43<id>[...]`.
As socket.io-client does, events that arrive before the namespace's connect answer (the server
sends the `room` payload from inside its connect handler) are held until that answer.

An attendee behaves as the room page does: it takes the server's clock from the `room` payload,
refines it with `sync` rounds 200 ms apart (the round trip with the least delay wins; up to five,
until one comes back within 100 ms),
sends a heartbeat every 20 s, and decides when to show each interaction of the timeline from
`starts_at_ms`, `opens_at` and its clock offset, on the page's 250 ms tick. Each client runs on a
deliberately wrong local clock (up to two seconds off), so only the offset makes it right.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

SYNC_ROUNDS = 5  # as the page: up to five rounds, 200 ms apart,
SYNC_GAP = 0.2
SYNC_GOOD_RTT_MS = 100.0  # until one comes back this fast
PAGE_TICK = 0.25  # the page looks at its timeline every 250 ms
HEARTBEAT_SECONDS = 20.0
MAX_SKEW_MS = 2000.0

Ack = Callable[[Any], None]


def raise_open_files() -> None:
    """Allow as many open sockets as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 16
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def stamp_of(body: str) -> float:
    """The send time a benchmark message carries as its last word."""
    return float(body.rsplit(" ", 1)[1])


@dataclass
class Join:
    """How one client's join went."""

    seconds: float | None = None
    error: str | None = None
    slip: float = 0.0  # how late the generator opened it against its schedule
    done: float = 0.0  # wall time the room arrived


@dataclass
class Swarm:
    """The clients of one process and what they measured."""

    host: str
    port: int
    deflate: bool = False
    behave: bool = True  # sync rounds, heartbeats and interaction timing, as the page
    clients: dict[int, Lean] = field(default_factory=dict)
    joins: dict[int, Join] = field(default_factory=dict)
    last_receipt: dict[str, float] = field(default_factory=dict)
    worst: dict[str, dict[int, float]] = field(default_factory=dict)  # group -> number -> latency
    latencies: dict[str, list[float]] = field(default_factory=dict)
    received: dict[str, dict[int, int]] = field(default_factory=dict)
    shows: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    offset_errors: list[float] = field(default_factory=list)
    acks_failed: int = 0
    on_room: Callable[[Lean, dict[str, Any]], None] | None = None

    def open(self, index: int, auth: dict[str, Any] | None, cookie: str = "") -> None:
        """Open one client now (the join is timed from here to its `room` event)."""
        asyncio.get_running_loop().create_task(self._open(index, auth, cookie))

    async def _open(self, index: int, auth: dict[str, Any] | None, cookie: str) -> None:
        loop = asyncio.get_running_loop()
        client = Lean(self, index, auth, cookie)
        self.clients[index] = client
        self.joins.setdefault(index, Join())
        try:
            await loop.create_connection(lambda: client, self.host, self.port)
        except OSError as error:
            self.joins[index].error = f"connect: {error.__class__.__name__}"
            self.clients.pop(index, None)

    def schedule(self, items: list[tuple[int, str]], start: float, rate: float) -> None:
        """Open client `index` at wall time `start + index / rate`, each on its own schedule."""
        loop = asyncio.get_running_loop()
        for index, token in items:
            due = start + index / rate
            loop.call_later(max(0.0, due - time.time()), self._due, index, token, due)

    def _due(self, index: int, token: str, due: float) -> None:
        self.joins[index] = Join(slip=max(0.0, time.time() - due))
        self.open(index, {"token": token})

    def record_chat(self, index: int, messages: list[dict[str, Any]]) -> None:
        """Delivery latencies of the chat messages one client just received, by group."""
        now = time.time()
        for message in messages:
            body = message["body"]
            group, number, _stamp = body.split(" ", 2)
            latency = now - stamp_of(body)
            self.latencies.setdefault(group, []).append(latency)
            worst = self.worst.setdefault(group, {})
            worst[int(number)] = max(worst.get(int(number), 0.0), latency)
            counts = self.received.setdefault(group, {})
            counts[index] = counts.get(index, 0) + 1
            self.last_receipt[group] = now

    def close_from(self, first: int) -> int:
        """Close every client whose index is `first` or more; how many were closed."""
        closing = [index for index in self.clients if index >= first]
        for index in closing:
            self.clients.pop(index).close()
        return len(closing)


class Lean(asyncio.Protocol):
    """One Socket.IO connection over WebSocket, driven by callbacks only."""

    def __init__(
        self, swarm: Swarm, index: int, auth: dict[str, Any] | None, cookie: str = ""
    ) -> None:
        self.swarm = swarm
        self.index = index
        self.auth = auth
        self.cookie = cookie
        self.transport: asyncio.Transport | None = None
        extensions = [ClientPerMessageDeflateFactory(client_max_window_bits=True)]
        self.ws = ClientProtocol(
            parse_uri(f"ws://{swarm.host}:{swarm.port}/socket.io/?EIO=4&transport=websocket"),
            extensions=extensions if swarm.deflate else None,
            max_size=None,
        )
        self.opened = time.perf_counter()
        self.skew_ms = random.uniform(-MAX_SKEW_MS, MAX_SKEW_MS)
        self.offset_ms = 0.0
        self.best_rtt = float("inf")
        self.acks: dict[int, Ack] = {}
        self.next_id = 0
        self.connected = False
        self.early: list[tuple[str, Any]] = []  # events that came before the connect answer
        self.joined = False
        self.closed = False
        self.room: dict[str, Any] | None = None
        # The page's ticks run from its load, a moment before the socket opens.
        self.tick_origin = asyncio.get_running_loop().time() - random.uniform(0.0, PAGE_TICK)

    # --- transport ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        request = self.ws.connect()
        if self.cookie:
            request.headers["Cookie"] = self.cookie
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self._packet(bytes(event.data).decode())
            elif isinstance(event, Response) and self.ws.handshake_exc is not None:
                self._failed(f"handshake: {event.status_code}")
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.joined:
            self._failed("closed before the room arrived")

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            else:
                transport.close()
                return

    def _send(self, text: str) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            return
        self.ws.send_text(text.encode())
        self._flush()

    def close(self) -> None:
        """Leave politely: a close frame, then the socket."""
        if self.closed or self.transport is None:
            return
        self.closed = True
        self.joined = True  # a planned close is no failed join
        with contextlib.suppress(InvalidState):  # the server closed it first
            self.ws.send_close(1000)
            self._flush()
        self.transport.close()

    def _failed(self, error: str) -> None:
        join = self.swarm.joins.setdefault(self.index, Join())
        if join.seconds is None and join.error is None:
            join.error = error

    # --- Engine.IO / Socket.IO ---------------------------------------------------------------

    def emit(self, event: str, data: Any, ack: Ack | None = None) -> None:
        """Send an event, with an acknowledgement callback when given."""
        if ack is None:
            self._send("42" + json.dumps([event, data], separators=(",", ":")))
            return
        self.next_id += 1
        self.acks[self.next_id] = ack
        self._send(f"42{self.next_id}" + json.dumps([event, data], separators=(",", ":")))

    def _packet(self, text: str) -> None:
        kind = text[:1]
        if kind == "4":
            sub = text[1:2]
            if sub == "2":
                name, *args = json.loads(text[2:])
                if self.connected:
                    self._event(name, args[0] if args else None)
                else:  # as socket.io-client does: held until the namespace is connected
                    self.early.append((name, args[0] if args else None))
            elif sub == "3":
                start = text.index("[")
                ack = self.acks.pop(int(text[2:start]), None)
                if ack is not None:
                    values = json.loads(text[start:])
                    ack(values[0] if values else None)
            elif sub == "0":
                self.connected = True
                early, self.early = self.early, []
                for name, data in early:
                    self._event(name, data)
            elif sub == "4":
                self._failed(f"refused: {text[2:200]}")
        elif kind == "2":
            self._send("3")
        elif kind == "0":
            payload = "" if self.auth is None else json.dumps(self.auth, separators=(",", ":"))
            self._send("40" + payload)

    def _event(self, name: str, data: Any) -> None:
        if name == "chat":
            self.swarm.record_chat(self.index, data["messages"])
        elif name == "room":
            self._room(data)

    # --- the page's behaviour ----------------------------------------------------------------

    def local_ms(self) -> float:
        """This client's own (wrong) clock."""
        return time.time() * 1000.0 + self.skew_ms

    def _room(self, payload: dict[str, Any]) -> None:
        join = self.swarm.joins.setdefault(self.index, Join())
        if join.seconds is None:
            join.seconds = time.perf_counter() - self.opened
            join.done = time.time()
        self.joined = True
        self.room = payload
        self.offset_ms = payload["server_ms"] - self.local_ms()
        if self.swarm.on_room is not None:
            self.swarm.on_room(self, payload)
        if not self.swarm.behave or self.auth is None:
            return
        loop = asyncio.get_running_loop()
        self._sync(SYNC_ROUNDS)
        loop.call_later(random.uniform(0.0, HEARTBEAT_SECONDS), self._heartbeat)

    def _sync(self, left: int) -> None:
        if self.closed:
            return
        if left <= 0:
            self.swarm.offset_errors.append(self.offset_ms + self.skew_ms)
            self._plan_shows()
            return
        sent = self.local_ms()

        def answered(ack: Any) -> None:
            now = self.local_ms()
            if isinstance(ack, dict) and ack.get("ok"):
                rtt = now - sent
                if rtt <= self.best_rtt:
                    self.best_rtt = rtt
                    self.offset_ms = ack["server_ms"] + rtt / 2 - now
                if rtt <= SYNC_GOOD_RTT_MS:
                    self._sync(0)  # close enough: no more rounds
                    return
            else:
                self.swarm.acks_failed += 1
            asyncio.get_running_loop().call_later(SYNC_GAP, self._sync, left - 1)

        self.emit("sync", {}, answered)

    def _heartbeat(self) -> None:
        if self.closed or self.room is None:
            return

        def answered(ack: Any) -> None:
            if not (isinstance(ack, dict) and ack.get("ok")):
                self.swarm.acks_failed += 1

        position = (self.local_ms() + self.offset_ms - self.room["session"]["starts_at_ms"]) / 1000
        self.emit("heartbeat", {"position": round(position, 1), "playing": True}, answered)
        asyncio.get_running_loop().call_later(HEARTBEAT_SECONDS, self._heartbeat)

    def _media_time(self) -> float:
        assert self.room is not None
        starts: float = self.room["session"]["starts_at_ms"]
        return (self.local_ms() + self.offset_ms - starts) / 1000.0

    def _plan_shows(self) -> None:
        """Once the clock is synced: for each interaction ahead, the page's ticks and a timer."""
        assert self.room is not None
        loop = asyncio.get_running_loop()
        now_media = self._media_time()
        for item in self.room["timeline"]:
            ahead = item["opens_at"] - now_media
            if ahead <= 0.5:
                continue  # open at join or nearly: not a timing measurement
            exact = loop.time() + ahead
            # The page's ticks from a second before the estimate on (the offset no longer
            # changes once the sync rounds are done); each one checks with the offset as it is.
            ticks = math.ceil((max(exact - 1.0, loop.time()) - self.tick_origin) / PAGE_TICK)
            first_tick = self.tick_origin + ticks * PAGE_TICK
            entry: dict[str, float] = {}
            loop.call_at(first_tick, self._tick, item, first_tick, entry)
            loop.call_at(exact, self._exact, item, entry)

    def _lateness_ms(self, item: dict[str, Any]) -> float:
        assert self.room is not None
        true_at: float = self.room["session"]["starts_at_ms"] + item["opens_at"] * 1000.0
        return time.time() * 1000.0 - true_at

    def _tick(self, item: dict[str, Any], at: float, entry: dict[str, float]) -> None:
        if self.closed:
            return
        if self._media_time() >= item["opens_at"]:
            entry["tick"] = self._lateness_ms(item)
            self._shown(item, entry)
            return
        asyncio.get_running_loop().call_at(at + PAGE_TICK, self._tick, item, at + PAGE_TICK, entry)

    def _exact(self, item: dict[str, Any], entry: dict[str, float]) -> None:
        if self.closed:
            return
        entry["exact"] = self._lateness_ms(item)
        self._shown(item, entry)

    def _shown(self, item: dict[str, Any], entry: dict[str, float]) -> None:
        if "tick" in entry and "exact" in entry:
            self.swarm.shows.setdefault(item["id"], []).append((entry["tick"], entry["exact"]))


# --- a worker process: commands from the benchmark over a pipe --------------------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _serve(pipe: Any, swarm: Swarm) -> None:
    loop = asyncio.get_running_loop()
    while True:
        command, *args = await loop.run_in_executor(None, pipe.recv)
        reply: Any = None
        if command == "join":
            items, start, rate = args
            swarm.schedule(items, start, rate)
        elif command == "joins":
            reply = {
                index: (j.seconds, j.error, j.slip, j.done) for index, j in swarm.joins.items()
            }
        elif command == "count":
            reply = len(swarm.latencies.get(args[0], []))
        elif command == "chat":
            group = args[0]
            found = swarm.received.get(group, {})
            reply = (
                swarm.latencies.get(group, []),
                found,
                swarm.last_receipt.get(group, 0.0),
                swarm.worst.get(group, {}),
            )
        elif command == "shows":
            reply = (swarm.shows, swarm.offset_errors, swarm.acks_failed)
        elif command == "close_from":
            reply = swarm.close_from(args[0])
        elif command == "cpu":
            reply = _cpu_seconds()
        elif command == "quit":
            swarm.close_from(0)
            await asyncio.sleep(0.2)
            pipe.send(None)
            return
        pipe.send(reply)


def worker_main(pipe: Any, host: str, port: int, deflate: bool, behave: bool) -> None:
    """Run one generator process until told to quit."""
    raise_open_files()
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    swarm = Swarm(host, port, deflate=deflate, behave=behave)
    try:
        loop.run_until_complete(_serve(pipe, swarm))
    finally:
        loop.close()
