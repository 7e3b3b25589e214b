"""The room benchmark's bare baselines: the same wire traffic without Encore.

* `socketio_app`: a bare python-socketio AsyncServer (ASGI, run by uvicorn exactly as Encore's web
  process is): on connect it sends the `room` payload Encore sent in the same run, answers `sync`
  and `heartbeat`, and a `chat:reply` from the presenter is emitted at once to the session's room
  as a one-message `chat` batch;
* `floor_main`: a bare `websockets` server that speaks just enough Engine.IO for the same clients
  and sends a `chat:reply` to every attendee with `websockets.broadcast` (one frame built, written
  to each connection): the floor.

Both read the `room` payload from the JSON file named by ROOM_PAYLOAD_FILE.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import sys
import time
from typing import Any

ROOM = "s:1"


def _payload() -> dict[str, Any]:
    with open(os.environ["ROOM_PAYLOAD_FILE"], encoding="utf-8") as file:
        payload: dict[str, Any] = json.load(file)
    return payload


def _chat_item(number: int, data: dict[str, Any], starts_at_ms: int) -> dict[str, Any]:
    """A team message shaped like Encore's ChatItem."""
    now_ms = int(time.time() * 1000)
    return {
        "id": number,
        "session_id": data.get("session_id", 1),
        "sender": "team",
        "name": "Pat Presenter",
        "body": str(data.get("body", "")),
        "visibility": "public",
        "reply_to": None,
        "media_seconds": max((now_ms - starts_at_ms) / 1000, 0.0),
        "at_ms": now_ms,
        "pinned": False,
    }


def socketio_app() -> Any:
    """The bare python-socketio server as an ASGI app (for `uvicorn --factory`)."""
    import socketio

    payload = _payload()
    starts_at_ms = payload["session"]["starts_at_ms"]
    numbers = itertools.count(1)
    sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)

    @sio.on("connect")  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        if isinstance(auth, dict) and auth.get("token"):
            await sio.enter_room(sid, ROOM)
            await sio.emit("room", {**payload, "server_ms": int(time.time() * 1000)}, to=sid)
        return True

    @sio.on("sync")  # type: ignore[untyped-decorator]
    async def sync(sid: str, data: Any = None) -> dict[str, Any]:
        return {"ok": True, "server_ms": int(time.time() * 1000)}

    @sio.on("heartbeat")  # type: ignore[untyped-decorator]
    async def heartbeat(sid: str, data: Any = None) -> dict[str, Any]:
        return {"ok": True}

    @sio.on("chat:reply")  # type: ignore[untyped-decorator]
    async def reply(sid: str, data: Any = None) -> dict[str, Any]:
        item = _chat_item(next(numbers), data if isinstance(data, dict) else {}, starts_at_ms)
        await sio.emit("chat", {"messages": [item]}, room=ROOM)
        return {"ok": True, "message": item}

    return socketio.ASGIApp(sio)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def _floor(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.exceptions import ConnectionClosed

    payload = _payload()
    starts_at_ms = payload["session"]["starts_at_ms"]
    numbers = itertools.count(1)
    attendees: set[ServerConnection] = set()
    opening = {"upgrades": [], "pingInterval": 25000, "pingTimeout": 20000, "maxPayload": 1 << 20}

    async def handler(ws: ServerConnection) -> None:
        await ws.send("0" + _dumps({"sid": secrets.token_urlsafe(15), **opening}))
        first = str(await ws.recv())
        auth = json.loads(first[2:]) if len(first) > 2 else None
        await ws.send("40" + _dumps({"sid": secrets.token_urlsafe(15)}))
        if isinstance(auth, dict) and auth.get("token"):
            await ws.send(
                "42" + _dumps(["room", {**payload, "server_ms": int(time.time() * 1000)}])
            )
            attendees.add(ws)
        try:
            async for message in ws:
                text = str(message)
                if not text.startswith("42"):
                    continue
                start = text.index("[")
                ack, (event, *args) = text[2:start], json.loads(text[start:])
                answer: dict[str, Any] = {"ok": True}
                if event == "sync":
                    answer["server_ms"] = int(time.time() * 1000)
                elif event == "chat:reply":
                    data = args[0] if args and isinstance(args[0], dict) else {}
                    item = _chat_item(next(numbers), data, starts_at_ms)
                    broadcast(attendees, "42" + _dumps(["chat", {"messages": [item]}]))
                    answer["message"] = item
                if ack:
                    await ws.send(f"43{ack}" + _dumps([answer]))
        except ConnectionClosed:
            pass  # the client left while being answered
        finally:
            attendees.discard(ws)

    async with serve(handler, "127.0.0.1", port, backlog=4096, max_size=1 << 20) as server:
        await server.serve_forever()


def floor_main() -> None:
    """Serve the websockets floor on the port given as the first argument."""
    # The same event loop as Encore's web process (asyncio's own).
    asyncio.run(_floor(int(sys.argv[1])))


if __name__ == "__main__":
    floor_main()
