"""Socket.IO managers whose emit to a room costs one queue append per recipient.

python-socketio's manager encodes a room's packet once, then starts a task per recipient that
walks down to the recipient's Engine.IO queue, and waits for all of them. For a session of
thousands that is thousands of tasks per chat batch, about a quarter of the CPU a delivered
message costs. These managers put the one encoded packet straight into each local socket's
outgoing queue, which is exactly what the per-recipient task ends up doing:

- order is kept: each socket's packets are queued in the order the emits happen, and a socket's
  own writer sends its queue in order;
- no recipient is waited for: the queue is unbounded and each socket's writer drains it on its
  own, so a slow client only grows its own queue;
- a socket whose client stopped answering pings goes the library's way (which closes it), in a
  task of its own, so its disconnect handling never holds up the others.

A socket served by `app.realtime.transport` (the room page's and the console's WebSockets) takes
the packet's frames instead, framed once for the whole room and written to its connection at
once: no queue and no writer in between.

Emits with a callback (one acknowledgement id per recipient) keep the library's path.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from app.realtime.transport import LeanSocket, frames_for


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """The in-memory manager with the one-append room emit (also the Redis manager's local half)."""

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """Queue one encoded packet on every local socket in the room."""
        if callback is not None:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to
            )
            return
        room = to or room
        if namespace not in self.rooms:
            return
        if isinstance(data, tuple):
            data = list(data)
        elif data is not None:
            data = [data]
        else:
            data = []
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *data]
        ).encode()
        packets: list[Any] = []
        frames: list[bytes] = []
        engine = self.server.eio
        sockets = engine.sockets
        deadline = time.time() - engine.ping_timeout
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            socket = sockets.get(eio_sid)
            if socket is None or socket.closed:
                continue  # gone: the library drops these too
            if type(socket) is LeanSocket:
                if not frames:
                    frames = frames_for(encoded)
                for data in frames:
                    socket.write_frame(data)
                continue
            if not packets:
                packets = [
                    eio_packet.Packet(eio_packet.MESSAGE, part)
                    for part in (encoded if isinstance(encoded, list) else [encoded])
                ]
            if socket.last_ping and socket.last_ping < deadline:
                self._send_the_slow_way(eio_sid, packets)
                continue
            for one in packets:
                socket.queue.put_nowait(one)

    def _send_the_slow_way(self, eio_sid: str, packets: list[Any]) -> None:
        async def send() -> None:
            for one in packets:
                await self.server._send_eio_packet(eio_sid, one)

        task = asyncio.get_running_loop().create_task(send())
        _pending.add(task)
        task.add_done_callback(_pending.discard)


class FanoutRedisManager(socketio.AsyncRedisManager, FanoutManager):  # type: ignore[misc]
    """The Redis manager: other processes' emits arrive through Redis, local ones fan out as above.

    The pub/sub manager hands every emit for this process to the next manager in line, which
    here is FanoutManager.
    """


# Tasks of sockets sent to the slow way, kept until done (the loop holds only weak references).
_pending: set[asyncio.Task[None]] = set()


async def send_to_one(sio: socketio.AsyncServer, sid: str, event: str, data: Any) -> None:
    """Emit one event to one client connected to this process, encoded in one step.

    An emit to a sid goes through the manager (over Redis when there is one, and back) and has
    its data walked for binary parts first; a client that is here needs neither.
    """
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
    if eio_sid is None:
        return
    await sio.eio.send(eio_sid, "2" + json.dumps([event, data], separators=(",", ":")))
