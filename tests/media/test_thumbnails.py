"""Sprite sheet plans and the WebVTT map, as pure functions."""

from __future__ import annotations

import itertools
import re

import pytest

from media.thumbnails import SpritePlan, plan_sprites, thumbnails_vtt

CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$")


def cues(vtt: str) -> list[tuple[float, float, str]]:
    """(start, end, target) for every cue."""
    lines = vtt.splitlines()
    assert lines[0] == "WEBVTT"
    found = []
    for i, line in enumerate(lines):
        match = CUE.match(line)
        if match:
            h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(g) for g in match.groups())
            start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
            end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
            found.append((start, end, lines[i + 1]))
    return found


@pytest.mark.parametrize(
    ("duration", "interval", "count", "columns", "rows", "sheets"),
    [
        (3.0, 1, 3, 3, 1, 1),
        (10.001, 1, 11, 10, 2, 1),
        (299.0, 1, 299, 10, 10, 3),
        (600.0, 2, 300, 10, 10, 3),
        (3600.0, 15, 240, 10, 10, 3),
        (4 * 3600.0, 60, 240, 10, 10, 3),
        (0.2, 1, 1, 1, 1, 1),
    ],
)
def test_plan_keeps_the_thumbnail_count_bounded(
    duration: float, interval: int, count: int, columns: int, rows: int, sheets: int
) -> None:
    plan = plan_sprites(duration, 1920, 1080)
    assert (plan.interval, plan.count, plan.columns, plan.rows, plan.sheets) == (
        interval,
        count,
        columns,
        rows,
        sheets,
    )
    assert (plan.tile_width, plan.tile_height) == (160, 90)


def test_portrait_tiles_keep_the_shape() -> None:
    plan = plan_sprites(60, 1080, 1920)
    assert (plan.tile_width, plan.tile_height) == (160, 284)


def test_trimming_redoes_the_layout() -> None:
    plan = plan_sprites(10.001, 1280, 720).trimmed(10)
    assert (plan.count, plan.columns, plan.rows, plan.sheets) == (10, 10, 1, 1)
    assert plan_sprites(3, 320, 180).trimmed(0).count == 1


def test_a_plan_needs_a_length_and_a_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_sprites(0, 1920, 1080)
    with pytest.raises(ValueError, match="positive"):
        plan_sprites(10, 0, 1080)


def test_vtt_cues_cover_the_whole_video_and_point_into_the_sheets() -> None:
    duration = 250.5
    plan = plan_sprites(duration, 1280, 720)
    found = cues(thumbnails_vtt(plan, duration))

    assert len(found) == plan.count == 251
    assert found[0][0] == 0.0
    assert found[-1][1] == duration
    for (_, end, _), (start, _, _) in itertools.pairwise(found):
        assert end == start
    assert found[0][2] == "sprite-001.jpg#xywh=0,0,160,90"
    assert found[11][2] == "sprite-001.jpg#xywh=160,90,160,90"
    assert found[99][2] == "sprite-001.jpg#xywh=1440,810,160,90"
    assert found[100][2] == "sprite-002.jpg#xywh=0,0,160,90"
    assert found[250][2] == "sprite-003.jpg#xywh=0,450,160,90"


def test_vtt_timestamps_past_an_hour() -> None:
    plan = SpritePlan(interval=60, count=62, columns=10, rows=7, tile_width=160, tile_height=90)
    found = cues(thumbnails_vtt(plan, 3700.25))
    assert found[-1][:2] == (3660.0, 3700.25)
    assert "01:01:00.000 --> 01:01:40.250" in thumbnails_vtt(plan, 3700.25)
