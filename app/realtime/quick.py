"""Events answered as they are read: the room page's clock rounds and heartbeats.

Every attendee's page sends up to five `sync` rounds when it connects (until one comes back
within 100 ms) and a `heartbeat` every 20 s. Through python-socketio each one is decoded twice,
runs in a task of its own, walks the server's event dispatch and its acknowledgement is encoded
as a packet object: for a crowd joining at once that was a sixth of the web process's work.
Neither event waits for anything (the answer is the server's clock, or a position noted for the
next batch write), so the transport hands these two to `QuickEvents` as it reads them, and their
acknowledgement is written straight back.

Only the plain case is taken here: a text EVENT on the default namespace, of a client connected
to it, whose handler says it can answer now. Anything else (another namespace, binary
attachments, malformed JSON, a client not yet connected, a refusal that counts against a flood)
goes the library's way, which answers it as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import socketio

# A handler: (Socket.IO sid, the event's arguments) -> the acknowledgement, or None to leave the
# event to the library.
Handler = Callable[[str, list[Any]], dict[str, Any] | None]

_DIGITS = frozenset("0123456789")
_MAX_ID_DIGITS = 15  # socket.io-client counts acknowledgement ids up from 0


class QuickEvents:
    """Answers some Socket.IO events of the default namespace straight from the transport."""

    def __init__(self, sio: socketio.AsyncServer, handlers: Mapping[str, Handler]) -> None:
        self.manager = sio.manager
        # '["name",' or '["name"]' starts the data of each event answered here.
        self.handlers = {f'["{name}"': handler for name, handler in handlers.items()}

    def __call__(self, eio_sid: str, message: str) -> str | None:
        """The Socket.IO packet answering `message` ('' for none), or None for the library's way."""
        if not message.startswith("2"):
            return None
        end = 1
        size = len(message)
        while end < size and message[end] in _DIGITS:
            end += 1
        if end - 1 > _MAX_ID_DIGITS:
            return None
        handler = None
        for prefix, candidate in self.handlers.items():
            after = end + len(prefix)
            if message.startswith(prefix, end) and message[after : after + 1] in (",", "]"):
                handler = candidate
                break
        if handler is None:
            return None
        try:
            data = json.loads(message[end:])
        except ValueError:
            return None
        if type(data) is not list:
            return None
        manager = self.manager
        sid = manager.sid_from_eio_sid(eio_sid, "/")
        if sid is None or not manager.is_connected(sid, "/"):
            return None
        answer = handler(sid, data[1:])
        if answer is None:
            return None
        if end == 1:  # no acknowledgement asked for
            return ""
        return "3" + str(int(message[1:end])) + json.dumps([answer], separators=(",", ":"))
