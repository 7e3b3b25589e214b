"""The Engine.IO WebSocket transport of app.realtime.transport over real sockets.

A bare Socket.IO server runs under uvicorn on loopback with the transport, and raw WebSocket
clients speak Engine.IO 4 / Socket.IO 5 to it by hand, so every frame on the wire is seen.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import socketio
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.realtime import transport
from app.realtime.fanout import FanoutManager
from app.realtime.quick import QuickEvents
from tests.realtime.live import STEP_TIMEOUT, serve_on_loopback, until

GOOD_ORIGIN = "http://good.example"
MAX_PAYLOAD = 4096


@dataclass
class Bare:
    """The bare server: its WebSocket URL, its AsyncServer and what its handlers saw."""

    url: str
    sio: socketio.AsyncServer
    connects: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    disconnects: list[tuple[str, Any]] = field(default_factory=list)
    held: int = 0
    most_held: int = 0
    handled: list[Any] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    answered_now: list[tuple[str, list[Any]]] = field(default_factory=list)


@asynccontextmanager
async def bare(**options: Any) -> AsyncIterator[Bare]:
    """A Socket.IO server whose clients enter the room their auth token names."""
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=FanoutManager(),
        cors_allowed_origins=[GOOD_ORIGIN],
        max_http_buffer_size=MAX_PAYLOAD,
        async_handlers=False,  # as the hub's: handlers run in the task that received the message
        logger=False,
        engineio_logger=False,
        **options,
    )
    state = Bare(url="", sio=sio)

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if auth == {"token": "no"}:
            raise socketio.exceptions.ConnectionRefusedError("not you")
        state.connects.append((sid, environ))
        if isinstance(auth, dict) and auth.get("token"):
            await sio.enter_room(sid, auth["token"])

    async def disconnect(sid: str, reason: Any = None) -> None:
        state.disconnects.append((sid, reason))

    async def echo(sid: str, data: Any = None) -> Any:
        return data

    async def hold(sid: str, data: Any = None) -> None:
        state.held += 1
        state.most_held = max(state.most_held, state.held)
        await state.release.wait()
        state.held -= 1
        state.handled.append(data)

    async def now_the_library_way(sid: str, *data: Any) -> Any:
        return {"by": "library", "args": list(data)}

    def now(sid: str, arguments: list[Any]) -> dict[str, Any] | None:
        if arguments == ["later"]:
            return None  # left to the library
        state.answered_now.append((sid, arguments))
        return {"by": "transport", "args": arguments}

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    sio.on("echo", echo)
    sio.on("hold", hold)
    sio.on("now", now_the_library_way)
    async with serve_on_loopback(
        socketio.ASGIApp(sio),
        sio,
        lifespan="off",
        stop=sio.shutdown,
        answer_now=QuickEvents(sio, {"now": now}),
    ) as url:
        state.url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        yield state


async def open_engine(url: str, **headers: str) -> tuple[ClientConnection, dict[str, Any]]:
    """A raw WebSocket with its Engine.IO OPEN packet read."""
    ws = await ws_connect(url, additional_headers=headers or None, compression=None)
    first = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
    assert isinstance(first, str)
    assert first[0] == "0"
    return ws, json.loads(first[1:])


def close_code(error: ConnectionClosed) -> int:
    """The code of the closing frame the server sent."""
    assert error.rcvd is not None
    return error.rcvd.code


async def join(url: str, room: str = "", **headers: str) -> ClientConnection:
    """A raw client connected to the default namespace (in `room` when given)."""
    ws, _ = await open_engine(url, **headers)
    await ws.send("40" + (json.dumps({"token": room}) if room else ""))
    answer = await next_packet(ws)
    assert answer.startswith("40{"), answer
    return ws


async def next_packet(ws: ClientConnection) -> str:
    """The next packet that is not a ping (pings are answered)."""
    while True:
        data = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
        assert isinstance(data, str)
        if data == "2":
            await ws.send("3")
            continue
        return data


async def test_the_handshake_an_event_and_its_acknowledgement() -> None:
    async with bare() as server:
        ws, opening = await open_engine(server.url, Origin=GOOD_ORIGIN, Cookie="a=b; c=d")
        assert ws.response is not None
        assert ws.response.headers.get_all("Date")  # one, as in any HTTP response
        assert len(ws.response.headers.get_all("Date")) == 1
        assert "websockets" not in str(ws.response.headers.get("Server"))
        assert opening["upgrades"] == []
        assert opening["maxPayload"] == MAX_PAYLOAD
        assert opening["pingInterval"] == 25000
        assert opening["pingTimeout"] == 20000
        assert server.sio.eio.sockets[opening["sid"]].upgraded
        await ws.send('40{"token":"room"}')
        assert (await next_packet(ws)).startswith('40{"sid":')
        sid, environ = server.connects[0]
        assert environ["HTTP_COOKIE"] == "a=b; c=d"
        assert environ["HTTP_ORIGIN"] == GOOD_ORIGIN
        assert environ["QUERY_STRING"] == "EIO=4&transport=websocket"
        await ws.send('421["echo",{"x":"ü"}]')
        assert await next_packet(ws) == '431[{"x":"\\u00fc"}]'
        await server.sio.emit("hello", "room", room="room")
        assert await next_packet(ws) == '42["hello","room"]'
        await server.sio.emit("only", 1, to=sid)
        assert await next_packet(ws) == '42["only",1]'
        await ws.close()
        await until(lambda: server.disconnects == [(sid, "transport close")], "the disconnect")
        assert server.sio.eio.sockets == {}


async def test_a_refused_connect_is_answered_and_leaves_nothing() -> None:
    async with bare() as server:
        ws, opening = await open_engine(server.url)
        await ws.send('40{"token":"no"}')
        assert await next_packet(ws) == '44{"message":"not you"}'
        await ws.close()
        await until(lambda: opening["sid"] not in server.sio.eio.sockets, "the socket to go")
        assert server.connects == []


async def test_a_failure_while_letting_a_client_in_is_answered_and_cleaned_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with bare() as server:
        real = transport.packet_frame

        def broken(pkt: Any) -> bytes:
            raise RuntimeError("boom")

        monkeypatch.setattr(transport, "packet_frame", broken)  # the OPEN packet fails
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(server.url)
        assert refused.value.response.status_code == 500
        assert server.sio.eio.sockets == {}
        assert server.sio.environ == {}
        monkeypatch.setattr(transport, "packet_frame", real)
        ws = await join(server.url)  # the next one is let in
        await ws.send('421["echo",3]')
        assert await next_packet(ws) == "431[3]"


async def test_a_foreign_origin_is_refused_before_the_upgrade() -> None:
    async with bare() as server:
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(server.url, origin="http://evil.example")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 400
        assert b"not an accepted origin" in refused.value.response.body
        assert server.sio.eio.sockets == {}
        assert server.connects == []


async def test_other_engine_io_requests_still_reach_the_library() -> None:
    async with bare() as server:
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(server.url.replace("EIO=4", "EIO=3"))
        assert refused.value.response.status_code == 403  # the library's refusal
        # A long-polling client is served by python-engineio and still hears the room.
        base = server.url.replace("ws://", "http://").replace("transport=websocket", "")
        async with httpx.AsyncClient(timeout=STEP_TIMEOUT) as http:
            opening = (await http.get(base + "transport=polling")).text
            assert opening.startswith("0{")
            polling = f"{base}transport=polling&sid={json.loads(opening[1:])['sid']}"
            assert (await http.post(polling, content='40{"token":"room"}')).text == "OK"
            assert (await http.get(polling)).text.startswith('40{"sid":')
            ws = await join(server.url, "room")
            await server.sio.emit("hello", "both", room="room")
            assert (await http.get(polling)).text == '42["hello","both"]'
            assert await next_packet(ws) == '42["hello","both"]'
            assert server.sio.transport(server.connects[0][0]) == "polling"
            assert server.sio.transport(server.connects[1][0]) == "websocket"
            assert (await http.post(polling, content="1")).text == "OK"  # Engine.IO close


async def test_an_oversized_message_closes_the_connection() -> None:
    async with bare() as server:
        ws = await join(server.url)
        sid = server.connects[0][0]
        await ws.send('42["echo","' + "x" * MAX_PAYLOAD + '"]')
        with pytest.raises(ConnectionClosed) as closed:
            await next_packet(ws)
        assert close_code(closed.value) == 1009
        await until(lambda: server.disconnects == [(sid, "transport close")], "the disconnect")
        assert server.sio.eio.sockets == {}


async def test_text_that_is_not_utf8_closes_the_connection() -> None:
    async with bare() as server:
        ws = await join(server.url)
        # websockets will not send bad UTF-8 as text; the frame goes out by hand.
        ws.protocol.send_frame(_text_frame(b'42["echo","\xff"]'))
        ws.send_data()
        with pytest.raises(ConnectionClosed) as closed:
            await next_packet(ws)
        assert close_code(closed.value) == 1007


def _text_frame(payload: bytes) -> Any:
    from websockets.frames import Frame, Opcode

    return Frame(Opcode.TEXT, payload)


async def test_a_client_that_stops_answering_pings_is_closed() -> None:
    async with bare(ping_interval=0.2, ping_timeout=0.3) as server:
        answering = await join(server.url)
        heard: list[str] = []

        async def listen() -> None:
            while True:
                heard.append(await next_packet(answering))  # pings answered on the way

        listening = asyncio.create_task(listen())
        silent, _ = await open_engine(server.url)
        await silent.send("40")
        assert str(await asyncio.wait_for(silent.recv(), STEP_TIMEOUT)).startswith("40{")
        silent_sid = server.connects[1][0]
        assert await asyncio.wait_for(silent.recv(), STEP_TIMEOUT) == "2"  # not answered
        assert await asyncio.wait_for(silent.recv(), STEP_TIMEOUT) == "1"  # Engine.IO close
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(silent.recv(), STEP_TIMEOUT)
        assert close_code(closed.value) == 1000
        assert server.disconnects == [(silent_sid, "ping timeout")]
        # The one that answers its pings (three rounds by now and more below) stays.
        await asyncio.sleep(0.6)
        await answering.send('421["echo",1]')
        await until(lambda: heard == ["431[1]"], "the answer")
        listening.cancel()
        assert len(server.disconnects) == 1


async def test_a_client_that_stops_reading_is_dropped_and_the_others_hear_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport, "MAX_BUFFERED", 64 * 1024)
    async with bare() as server:
        reader = await join(server.url, "room")
        host, port = server.url.split("//")[1].split("/")[0].split(":")
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(stalled, (host, int(port)))
        await loop.sock_sendall(
            stalled,
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode(),
        )
        answer = b""
        while not answer.endswith(b'"maxPayload":4096}'):  # the 101 and the OPEN packet
            answer += await loop.sock_recv(stalled, 4096)
        # "40" with the room's token, masked with a zero key; then nothing more is read.
        hello = b'40{"token":"room"}'
        await loop.sock_sendall(stalled, bytes((0x81, 0x80 | len(hello))) + b"\0\0\0\0" + hello)
        await until(lambda: len(server.connects) == 2, "the stalled client in the room")
        stalled_sid = server.connects[1][0]
        body = "x" * 32 * 1024
        sent = 0
        try:
            while not server.disconnects and sent < 2000:
                await server.sio.emit("big", [sent, body], room="room")
                sent += 1
                await asyncio.sleep(0.002)
            assert server.disconnects == [(stalled_sid, "transport close")]
            for number in range(sent):
                assert json.loads((await next_packet(reader))[2:])[1][0] == number
        finally:
            stalled.close()
        assert sent < 2000


async def test_messages_in_flight_per_connection_are_bounded() -> None:
    async with bare() as server:
        ws = await join(server.url)
        for number in range(3 * transport.MAX_IN_FLIGHT):
            await ws.send(f'42["hold",{number}]')
        try:
            await until(lambda: server.held == transport.MAX_IN_FLIGHT, "the first messages")
            await asyncio.sleep(0.2)  # the rest wait: the connection is not read meanwhile
            assert server.most_held == transport.MAX_IN_FLIGHT
        finally:
            server.release.set()
        await until(lambda: len(server.handled) == 3 * transport.MAX_IN_FLIGHT, "every message")
        assert sorted(server.handled) == list(range(3 * transport.MAX_IN_FLIGHT))
        await ws.send('421["echo",2]')
        assert await next_packet(ws) == "431[2]"


async def test_events_answered_as_they_are_read() -> None:
    async with bare() as server:
        ws = await join(server.url)
        sid = server.connects[0][0]
        await ws.send('427["now",{"a":1}]')
        assert await next_packet(ws) == '437[{"by":"transport","args":[{"a":1}]}]'
        await ws.send('42["now"]')  # no acknowledgement asked for: nothing comes back
        await ws.send('428["echo",1]')
        assert await next_packet(ws) == "438[1]"
        assert server.answered_now == [(sid, [{"a": 1}]), (sid, [])]
        # What the handler leaves, and what is not the plain case, is the library's to answer.
        for message in (
            '429["now","later"]',
            '42/other,9["now"]',  # another namespace (not connected to it: no answer)
            '4210["now",',  # not JSON
            '4211 ["now"]',  # the library reads JSON with blanks before it too
            '4212["nowadays"]',  # no handler of that name
        ):
            await ws.send(message)
        await ws.send('4213["echo",2]')
        assert await next_packet(ws) == '439[{"by":"library","args":["later"]}]'
        assert await next_packet(ws) == '4311[{"by":"library","args":[]}]'
        assert await next_packet(ws) == "4313[2]"
        assert len(server.answered_now) == 2


async def test_an_event_answered_at_once_never_overtakes_one_in_flight() -> None:
    async with bare() as server:
        ws = await join(server.url)
        await ws.send('42["hold",1]')
        await until(lambda: server.held == 1, "the first message")
        await ws.send('425["now",2]')
        await asyncio.sleep(0.2)
        assert server.answered_now == []
        server.release.set()
        assert await next_packet(ws) == '435[{"by":"library","args":[2]}]'
        await ws.send('426["now",3]')
        assert await next_packet(ws) == '436[{"by":"transport","args":[3]}]'


async def test_events_before_the_namespace_connect_are_not_answered_at_once() -> None:
    async with bare() as server:
        ws, _ = await open_engine(server.url)
        await ws.send('421["now",1]')
        await ws.send('40{"token":"room"}')
        assert (await next_packet(ws)).startswith('40{"sid":')
        await ws.send('422["now",2]')
        assert await next_packet(ws) == '432[{"by":"transport","args":[2]}]'
        assert [arguments for _, arguments in server.answered_now] == [[2]]


async def test_the_server_closes_a_socket_and_the_client_closes_another() -> None:
    async with bare() as server:
        first = await join(server.url)
        second = await join(server.url)
        first_sid, second_sid = server.connects[0][0], server.connects[1][0]
        engine_sid = server.sio.manager.eio_sid_from_sid(first_sid, "/")
        await server.sio.disconnect(first_sid)
        assert await next_packet(first) == "41"  # Socket.IO disconnect
        await server.sio.eio.disconnect(engine_sid)
        assert await next_packet(first) == "1"  # Engine.IO close
        with pytest.raises(ConnectionClosed) as closed:
            await next_packet(first)
        assert close_code(closed.value) == 1000
        await second.send("1")  # Engine.IO close from the client
        with pytest.raises(ConnectionClosed):
            await next_packet(second)
        await until(lambda: len(server.disconnects) == 2, "both disconnects")
        assert dict(server.disconnects) == {
            first_sid: "server disconnect",
            second_sid: "client disconnect",
        }
        assert server.sio.eio.sockets == {}


async def test_stopping_the_server_closes_its_websockets_going_away() -> None:
    async with bare() as server:
        ws = await join(server.url)
        sid = server.connects[0][0]
    with pytest.raises(ConnectionClosed) as closed:
        await next_packet(ws)
    assert close_code(closed.value) == 1001
    assert server.disconnects == [(sid, "transport close")]
