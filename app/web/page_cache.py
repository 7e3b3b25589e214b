"""Short-lived caches of public pages and of what registration reads, so a crowd is cheap.

A landing page is the same for every visitor who asks with the same URL (zone, UTM values)
and arrives from the same referrer: it holds no cookie, token or personal value. Rendering
it takes a few database reads and a template; serving it from here takes a dictionary look-up.

Entries live for `TTL_SECONDS`. Edits made in this process (the webinar editor, the schedule
tab, publishing) drop every entry at once; other web processes show an edit within the TTL.
Offered sessions may therefore be shown up to that long after their registration cut-off; the
registration itself always checks against the current schedule and answers clearly if the
time is gone.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from starlette.responses import Response

from app.models import Webinar
from app.schedule import ScheduleRules

if TYPE_CHECKING:
    from app.services.registration import FormSpec

T = TypeVar("T")

TTL_SECONDS = 5.0
MAX_ENTRIES = 512
# The webinar and schedule a registration form is checked against; the stored batch checks
# again against the database, so this only spares the reads of each single request.
TARGET_TTL_SECONDS = 2.0
# Headers that belong to one response on the wire, not to the page.
_PER_RESPONSE = frozenset({b"content-length", b"date", b"server", b"set-cookie"})


@dataclass(frozen=True)
class _Entry:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]


class Snapshots(Generic[T]):
    """Values by key, each kept for a few seconds (for reads that many requests repeat)."""

    def __init__(self, ttl: float, size: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()

    def get(self, key: Hashable) -> T | None:
        """The value if it is still fresh, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, value: T) -> None:
        """Keep a value for the TTL."""
        self._entries[key] = (time.monotonic() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class PageCache:
    """Rendered pages by key, each kept for a few seconds, the least recently used dropped."""

    def __init__(self, ttl: float = TTL_SECONDS, size: int = MAX_ENTRIES) -> None:
        self._entries: Snapshots[_Entry] = Snapshots(ttl, size)

    def get(self, key: Hashable) -> Response | None:
        """A fresh copy of the cached response, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        response = Response(status_code=entry.status)
        response.body = entry.body
        response.raw_headers = [(b"content-length", str(len(entry.body)).encode()), *entry.headers]
        return response

    def put(self, key: Hashable, response: Response) -> None:
        """Keep a rendered 200 response (anything else is never cached)."""
        if response.status_code != 200 or not isinstance(response.body, bytes):
            return
        headers = tuple(
            (name, value) for name, value in response.raw_headers if name not in _PER_RESPONSE
        )
        self._entries.put(key, _Entry(response.status_code, response.body, headers))

    def clear(self) -> None:
        """Forget every page (after an edit)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


landing_pages = PageCache()
registration_targets: Snapshots[tuple[Webinar, ScheduleRules | None, FormSpec]] = Snapshots(
    TARGET_TTL_SECONDS
)


def forget_all() -> None:
    """Drop every cached page and snapshot (after an edit in this process)."""
    landing_pages.clear()
    registration_targets.clear()
