"""Timeline thumbnails: how to lay frames out in sprite sheets, and the WebVTT map to them.

A player or the timeline editor loads `thumbnails.vtt`; each cue covers a stretch of the video
and points at a region of a sheet (`sprite-001.jpg#xywh=x,y,w,h`), the usual format for
seek-bar previews.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INTERVALS: tuple[int, ...] = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300)
"""Seconds between thumbnails, tried in order until the count fits."""

SHEET_PATTERN = "sprite-%03d.jpg"
THUMB_PATTERN = "thumb-%05d.jpg"
VTT_NAME = "thumbnails.vtt"


@dataclass(frozen=True)
class SpritePlan:
    """One thumbnail every `interval` seconds, `count` in all, `columns` x `rows` per sheet."""

    interval: int
    count: int
    columns: int
    rows: int
    tile_width: int
    tile_height: int

    @property
    def per_sheet(self) -> int:
        """Thumbnails on one full sheet."""
        return self.columns * self.rows

    @property
    def sheets(self) -> int:
        """How many sheet images ffmpeg writes."""
        return math.ceil(self.count / self.per_sheet)

    def trimmed(self, count: int) -> SpritePlan:
        """The same plan for fewer thumbnails (at least one), with the sheet layout redone."""
        count = max(1, min(count, self.count))
        columns, rows = _layout(count, self.columns, self.rows)
        return SpritePlan(self.interval, count, columns, rows, self.tile_width, self.tile_height)

    def sheet_name(self, number: int) -> str:
        """The file name of a sheet, numbered from 1."""
        return SHEET_PATTERN % number


def plan_sprites(
    duration: float,
    width: int,
    height: int,
    *,
    tile_width: int = 160,
    max_count: int = 300,
    columns: int = 10,
    max_rows: int = 10,
) -> SpritePlan:
    """Choose the thumbnail interval and sheet layout for a video of this length and shape."""
    if duration <= 0 or width <= 0 or height <= 0:
        raise ValueError("a thumbnail plan needs a positive duration and size")
    interval = next((i for i in INTERVALS if math.ceil(duration / i) <= max_count), INTERVALS[-1])
    count = max(1, math.ceil(duration / interval - 1e-9))
    tile_height = max(2, 2 * round(tile_width * height / width / 2))
    cols, rows = _layout(count, columns, max_rows)
    return SpritePlan(interval, count, cols, rows, tile_width, tile_height)


def _layout(count: int, columns: int, max_rows: int) -> tuple[int, int]:
    """Sheet columns and rows: no wider or taller than needed for `count` thumbnails."""
    cols = min(columns, count)
    return cols, min(max_rows, math.ceil(count / cols))


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def thumbnails_vtt(plan: SpritePlan, duration: float) -> str:
    """The WebVTT file mapping each stretch of time to its region of a sprite sheet."""
    lines = ["WEBVTT", ""]
    for number in range(plan.count):
        start = number * plan.interval
        # The last thumbnail stands for whatever is left, so the cues cover the whole video.
        end = duration if number == plan.count - 1 else min(start + plan.interval, duration)
        if end <= start:
            break
        sheet, slot = divmod(number, plan.per_sheet)
        row, column = divmod(slot, plan.columns)
        x, y = column * plan.tile_width, row * plan.tile_height
        region = f"{x},{y},{plan.tile_width},{plan.tile_height}"
        lines += [
            f"{_timestamp(start)} --> {_timestamp(end)}",
            f"{plan.sheet_name(sheet + 1)}#xywh={region}",
            "",
        ]
    return "\n".join(lines)
