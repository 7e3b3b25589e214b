"""Every Socket.IO event name and payload shape, in one place."""

from __future__ import annotations

from typing import Final, TypedDict

NAMESPACE: Final = "/"
SOCKETIO_PATH: Final = "socket.io"
MAX_PAYLOAD_BYTES: Final = 16 * 1024

# Server -> client
HELLO: Final = "hello"
ERROR: Final = "error"

# Rooms
STAFF_ROOM: Final = "staff"


class HelloPayload(TypedDict):
    """Sent once after a connection is accepted."""

    role: str
    name: str


class ErrorPayload(TypedDict):
    """A refused event: `code` is stable, `message` is for people."""

    code: str
    message: str
