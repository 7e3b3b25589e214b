"""The rendition ladder as a table: sizes, shapes, bit rates and when the source is copied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from media.ladder import (
    Rendition,
    audio_only_rendition,
    can_pass_through,
    choose_renditions,
    renditions_for,
    video_bitrate,
)
from media.probe import AudioStream, ProbeResult, VideoStream

LADDERS = [
    ((1920, 1080), [("1080p", 1920, 1080), ("720p", 1280, 720), ("480p", 854, 480),
                    ("360p", 640, 360)]),
    ((1280, 720), [("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360)]),
    ((640, 360), [("360p", 640, 360)]),
    ((1080, 1920), [("1080p", 1080, 1920), ("720p", 720, 1280), ("480p", 480, 854),
                    ("360p", 360, 640)]),
    ((1440, 1080), [("1080p", 1440, 1080), ("720p", 960, 720), ("480p", 640, 480),
                    ("360p", 480, 360)]),
    ((853, 479), [("478p", 852, 478), ("360p", 642, 360)]),
    ((400, 225), [("224p", 400, 224)]),
    ((480, 400), [("360p", 432, 360)]),
    ((160, 90), [("90p", 160, 90)]),
    ((161, 91), [("90p", 160, 90)]),
    ((3840, 2160), [("1080p", 1920, 1080), ("720p", 1280, 720), ("480p", 854, 480),
                    ("360p", 640, 360)]),
    ((2160, 3840), [("1080p", 1080, 1920), ("720p", 720, 1280), ("480p", 480, 854),
                    ("360p", 360, 640)]),
    ((1920, 1200), [("1080p", 1728, 1080), ("720p", 1152, 720), ("480p", 768, 480),
                    ("360p", 576, 360)]),
]  # fmt: skip


@pytest.mark.parametrize(("source", "expected"), LADDERS, ids=lambda v: str(v))
def test_ladder_table(source: tuple[int, int], expected: list[tuple[str, int, int]]) -> None:
    ladder = choose_renditions(*source)
    assert [(r.name, r.width, r.height) for r in ladder] == expected


@pytest.mark.parametrize(("source", "expected"), LADDERS, ids=lambda v: str(v))
def test_every_rung_is_even_in_shape_and_never_upscaled(
    source: tuple[int, int], expected: list[tuple[str, int, int]]
) -> None:
    width, height = source
    ladder = choose_renditions(width, height)
    assert ladder, "there is always at least one rendition"
    for rendition in ladder:
        assert rendition.width % 2 == 0
        assert rendition.height % 2 == 0
        assert rendition.width <= width
        assert rendition.height <= height
        assert rendition.width / rendition.height == pytest.approx(width / height, rel=0.01)
        assert rendition.name == f"{rendition.short_side}p"
        assert not rendition.passthrough
    rates = [r.video_bitrate for r in ladder]
    assert rates == sorted(rates, reverse=True)
    assert len(set(rates)) == len(rates)


def test_bitrates_and_encoder_settings() -> None:
    top, hd, sd, low = choose_renditions(1920, 1080)
    assert (top.video_bitrate, hd.video_bitrate, sd.video_bitrate, low.video_bitrate) == (
        4_500_000,
        2_450_000,
        1_330_000,
        870_000,
    )
    assert (top.audio_bitrate, low.audio_bitrate) == (128_000, 96_000)
    assert (top.profile, low.profile) == ("high", "main")
    assert top.max_bitrate == 6_750_000
    assert top.buffer_size == 9_000_000
    assert video_bitrate(1920, 1080, fps=60) == 6_750_000
    assert video_bitrate(16, 16) == 150_000  # a floor for tiny pictures


def test_a_low_bitrate_source_caps_the_encoded_rungs() -> None:
    ladder = choose_renditions(1920, 1080, source_video_bitrate=1_000_000)
    assert [r.video_bitrate for r in ladder] == [1_500_000, 1_500_000, 1_330_000, 870_000]


def test_the_cap_on_the_top_rung_can_be_lowered() -> None:
    assert [r.name for r in choose_renditions(1920, 1080, max_short_side=720)] == [
        "720p",
        "480p",
        "360p",
    ]


def test_nothing_to_encode_is_an_error() -> None:
    with pytest.raises(ValueError, match="no picture"):
        choose_renditions(1, 1)


def test_passthrough_makes_the_source_the_top_rendition() -> None:
    ladder = choose_renditions(
        1280,
        720,
        passthrough=True,
        source_video_bitrate=2_000_000,
        source_audio_bitrate=160_000,
    )
    top, *rest = ladder
    assert top == Rendition("720p", 1280, 720, 2_000_000, 160_000, "source", passthrough=True)
    assert [(r.name, r.passthrough) for r in rest] == [("480p", False), ("360p", False)]
    # Encoded rungs stay below the copied source's rate.
    assert all(r.video_bitrate <= 1_500_000 for r in rest)


def test_passthrough_of_a_small_source_is_its_only_rendition() -> None:
    ladder = choose_renditions(640, 360, passthrough=True, source_video_bitrate=500_000)
    assert [(r.name, r.passthrough) for r in ladder] == [("360p", True)]


COPYABLE: dict[str, Any] = {
    "video_codec": "h264",
    "profile": "High",
    "pix_fmt": "yuv420p",
    "audio_codec": "aac",
    "fps": 30.0,
    "video_bit_rate": 2_000_000,
    "keyframe_interval": 2.0,
}


def test_standard_h264_aac_up_to_1080p_can_be_copied() -> None:
    assert can_pass_through(1920, 1080, **COPYABLE)
    assert can_pass_through(1080, 1920, **COPYABLE)
    assert can_pass_through(1280, 720, **{**COPYABLE, "profile": "Constrained Baseline"})
    assert can_pass_through(1280, 720, **{**COPYABLE, "audio_codec": None})
    assert can_pass_through(2560, 1080, **{**COPYABLE, "video_bit_rate": 5_000_000})


@pytest.mark.parametrize(
    ("size", "change"),
    [
        ((1920, 1080), {"video_codec": "hevc"}),
        ((1920, 1080), {"video_codec": "vp9"}),
        ((1920, 1080), {"profile": "High 10", "pix_fmt": "yuv420p10le"}),
        ((1920, 1080), {"pix_fmt": "yuv444p"}),
        ((1920, 1080), {"audio_codec": "opus"}),
        ((1920, 1080), {"rotation": 90}),
        ((3840, 2160), {}),
        ((1920, 1080), {"fps": 120.0}),
        ((1920, 1080), {"fps": None}),
        ((1920, 1080), {"video_bit_rate": 20_000_000}),
        ((1920, 1080), {"video_bit_rate": None}),
        ((1920, 1080), {"keyframe_interval": 30.0}),
        ((1920, 1080), {"keyframe_interval": None}),
        ((1279, 720), {}),
    ],
)
def test_anything_else_is_encoded(size: tuple[int, int], change: dict[str, Any]) -> None:
    assert not can_pass_through(*size, **{**COPYABLE, **change})


def _source(
    video: VideoStream | None,
    *,
    audio_codec: str = "aac",
    keyframe_interval: float | None = 2.0,
    bit_rate: int | None = 2_200_000,
) -> ProbeResult:
    return ProbeResult(
        path=Path("source.mp4"),
        container="mp4",
        demuxer="mov",
        size=1_000_000,
        duration=60.0,
        bit_rate=bit_rate,
        video=video,
        audio=AudioStream(1, audio_codec, "LC", 48000, 2, 128_000),
        keyframe_interval=keyframe_interval,
    )


def _video(codec: str = "h264", *, size: tuple[int, int] = (1280, 720), **kw: Any) -> VideoStream:
    fields: dict[str, Any] = {
        "index": 0,
        "codec": codec,
        "profile": "High",
        "width": size[0],
        "height": size[1],
        "rotation": 0,
        "fps": 30.0,
        "pix_fmt": "yuv420p",
        "bit_rate": 2_000_000,
    }
    return VideoStream(**{**fields, **kw})


def test_renditions_for_a_probed_h264_file_copy_the_source() -> None:
    ladder = renditions_for(_source(_video()))
    assert [(r.name, r.passthrough) for r in ladder] == [
        ("720p", True),
        ("480p", False),
        ("360p", False),
    ]
    assert not any(
        r.passthrough for r in renditions_for(_source(_video()), allow_passthrough=False)
    )


def test_renditions_for_other_codecs_or_long_gops_encode_everything() -> None:
    for source in (
        _source(_video("vp9", profile="Profile 0")),
        _source(_video(), audio_codec="opus"),
        _source(_video(), keyframe_interval=25.0),
    ):
        assert not any(r.passthrough for r in renditions_for(source))


def test_renditions_for_a_rotated_phone_video_use_the_displayed_shape() -> None:
    ladder = renditions_for(_source(_video(size=(1920, 1080), rotation=90)))
    assert (ladder[0].width, ladder[0].height, ladder[0].passthrough) == (1080, 1920, False)


def test_renditions_for_anamorphic_video_use_square_pixels() -> None:
    ladder = renditions_for(
        _source(_video("mpeg2video", size=(720, 480), sample_aspect_ratio=32 / 27))
    )
    assert (ladder[0].width, ladder[0].height) == (852, 480)


def test_renditions_for_webm_estimate_the_video_rate_from_the_file() -> None:
    # Without a per-stream rate the file's rate, less the sound, caps the encoded rungs.
    source = _source(_video("vp9", size=(1920, 1080), bit_rate=None), bit_rate=528_000)
    assert renditions_for(source)[0].video_bitrate == 600_000


def test_audio_only_gets_one_waveform_rendition() -> None:
    assert renditions_for(_source(None)) == [audio_only_rendition()]
    assert audio_only_rendition().width == 640
