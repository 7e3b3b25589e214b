"""The timeline bar of the interactions tab: the video's thumbnails with a marker per interaction.

The bar is an inline SVG, since the CSP allows no inline styles and SVG attributes can place
everything: each thumbnail is a nested `<svg>` whose viewBox cuts one tile out of a sprite
sheet, as the video's thumbnail map (`thumbnails.vtt`, `sprite-001.jpg#xywh=x,y,w,h`) says.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.models import Interaction, Video
from app.services.interactions import clock
from app.services.videos import playback_url
from app.settings import get_settings
from app.web.media_files import current_storage, published_key
from media.playlist import resolve
from media.storage import StorageError

log = logging.getLogger("encore.web")

WIDTH = 1000  # viewBox units across the bar
STRIP_TILES = 10  # thumbnails shown along the bar
LANE = 34.0  # height of the marker lane under the thumbnails
PLAIN_STRIP = 56.0  # height of the strip when there are no thumbnails
MAX_CUES = 2000
_TIME = r"(?:(\d+):)?(\d{2}):(\d{2})[.,](\d{3})"
_CUE = re.compile(rf"^{_TIME}\s+-->\s+{_TIME}")
_REGION = re.compile(r"^(?P<uri>[^\s#]+)#xywh=(\d+),(\d+),(\d+),(\d+)$")


@dataclass(frozen=True)
class Tile:
    """One thumbnail: a region of a sprite sheet, standing for a stretch of the video."""

    start: float
    end: float
    href: str
    x: int
    y: int
    w: int
    h: int
    sheet_w: int
    sheet_h: int


@dataclass(frozen=True)
class Cue:
    """One entry of a thumbnail map as written: its stretch, sheet URI and region."""

    start: float
    end: float
    uri: str
    x: int
    y: int
    w: int
    h: int


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def parse_cues(text: str) -> list[Cue]:
    """The cues of a thumbnail map (WebVTT whose cue text names a sprite region)."""
    cues: list[Cue] = []
    lines = text.replace("\r\n", "\n").split("\n")
    for index, line in enumerate(lines[:-1]):
        timing = _CUE.match(line.strip())
        if timing is None:
            continue
        region = _REGION.match(lines[index + 1].strip())
        if region is None:
            continue
        groups = timing.groups()
        x, y, w, h = (int(region.group(n)) for n in range(2, 6))
        if w <= 0 or h <= 0:
            continue
        cues.append(
            Cue(_seconds(*groups[:4]), _seconds(*groups[4:]), region.group("uri"), x, y, w, h)
        )
        if len(cues) >= MAX_CUES:
            break
    return cues


async def load_tiles(video: Video | None) -> list[Tile]:
    """The video's thumbnails with URLs the signed-in browser can show; [] when there are none."""
    if video is None or not video.thumbnails_key:
        return []
    storage = current_storage()
    map_key = video.thumbnails_key
    try:
        data = await asyncio.to_thread(storage.read_bytes, map_key)
    except StorageError:
        log.warning("thumbnail map unreadable", extra={"video_id": video.id})
        return []
    cues = parse_cues(data.decode("utf-8", errors="replace"))
    if not cues:
        return []
    # Every sheet of a map has the layout of the first (ffmpeg pads the last one).
    sheet_w = max(cue.x + cue.w for cue in cues)
    sheet_h = max(cue.y + cue.h for cue in cues)
    ttl = get_settings().media_url_ttl_seconds
    hrefs: dict[str, str | None] = {}
    tiles: list[Tile] = []
    for cue in cues:
        if cue.uri not in hrefs:
            key = resolve(map_key, cue.uri)
            allowed = key is not None and published_key(key) == key
            hrefs[cue.uri] = (
                playback_url(storage, key, expires_in=ttl) if key is not None and allowed else None
            )
        href = hrefs[cue.uri]
        if href is not None:
            tiles.append(
                Tile(cue.start, cue.end, href, cue.x, cue.y, cue.w, cue.h, sheet_w, sheet_h)
            )
    return sorted(tiles, key=lambda tile: tile.start)


def tile_at(tiles: Sequence[Tile], seconds: float) -> Tile | None:
    """The thumbnail on screen at a moment of the video."""
    if not tiles:
        return None
    index = bisect.bisect_right([tile.start for tile in tiles], seconds) - 1
    return tiles[max(index, 0)]


@dataclass(frozen=True)
class Marker:
    """An interaction on the bar."""

    x: float
    label: str
    kind: str
    href: str
    current: bool


@dataclass
class Bar:
    """Everything the bar's SVG needs, in viewBox units."""

    extent: float
    known: bool
    strip_height: float
    strip: list[tuple[float, float, Tile]] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    tiles_json: str = "[]"
    width: int = WIDTH

    @property
    def height(self) -> float:
        """The whole bar's height."""
        return self.strip_height + LANE


def _tick_step(extent: float) -> float:
    for step in (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if extent / step <= 8:
            return float(step)
    return 7200.0


def build_bar(
    duration: float | None,
    tiles: Sequence[Tile],
    interactions: Sequence[Interaction],
    *,
    labels: dict[str, str],
    link: str,
    current_id: int | None = None,
) -> Bar:
    """The bar across the video (or, its length unknown, across the interactions' moments)."""
    latest = max((item.opens_at_seconds for item in interactions), default=0.0)
    known = duration is not None and duration > 0
    extent = float(duration) if duration is not None and known else max(latest * 1.1, 60.0)
    strip: list[tuple[float, float, Tile]] = []
    strip_height = PLAIN_STRIP
    if tiles:
        slot = WIDTH / STRIP_TILES
        first = tiles[0]
        strip_height = round(slot * first.h / first.w, 2)
        for number in range(STRIP_TILES):
            tile = tile_at(tiles, (number + 0.5) * extent / STRIP_TILES)
            if tile is not None:
                strip.append((round(number * slot, 2), round(slot, 2), tile))
    markers = [
        Marker(
            x=round(min(item.opens_at_seconds / extent, 1.0) * WIDTH, 2),
            label=f"{clock(item.opens_at_seconds)} · {labels.get(item.kind, item.kind)}: "
            f"{item.title}",
            kind=item.kind,
            href=f"{link}/{item.id}",
            current=item.id == current_id,
        )
        for item in interactions
    ]
    step = _tick_step(extent)
    ticks: list[tuple[float, str]] = []
    moment = 0.0
    while moment < extent - step / 3:
        ticks.append((round(moment / extent * WIDTH, 2), clock(moment)))
        moment += step
    ticks.append((WIDTH, clock(extent)))
    compact = [
        [tile.start, tile.href, tile.x, tile.y, tile.w, tile.h, tile.sheet_w, tile.sheet_h]
        for tile in tiles
    ]
    return Bar(
        extent=extent,
        known=known,
        strip_height=strip_height,
        strip=strip,
        markers=markers,
        ticks=ticks,
        tiles_json=json.dumps(compact, separators=(",", ":")),
    )
