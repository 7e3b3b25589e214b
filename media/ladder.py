"""The rendition ladder: which sizes and bit rates to encode, as a pure function of the source.

Rungs are named and chosen by the SHORT side (1080p, 720p, 480p, 360p), so a portrait phone
recording gets the same ladder as a landscape one. Nothing is upscaled; a source between rungs
also gets a rung at its own size when it is clearly bigger than the next rung down (853x479 is
encoded at 852x478 and 640x360, not squeezed to 360p alone), and a source smaller than every
rung is encoded at its own size, so there is always at least one rendition. Dimensions are
even (4:2:0 chroma needs it) and keep the aspect ratio.

Bit rates follow the pixel count with an exponent below 1 (bigger pictures compress better):
4.5 Mbit/s at 1920x1080, about 2.5 at 1280x720, 1.3 at 854x480, 0.87 at 640x360, and 1.5x that
above 30 frames per second.

A source already in H.264 (8-bit 4:2:0, Baseline/Main/High) with AAC or no audio, upright, no
bigger than the top rung, at a streamable bit rate and with keyframes at least every few
seconds can be served as it is: its rendition is marked `passthrough` and is copied into the
HLS segments instead of being encoded again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from media.probe import ProbeResult

RUNGS: tuple[int, ...] = (1080, 720, 480, 360)
"""Standard short sides, largest first."""

_REFERENCE_PIXELS = 1920 * 1080
_REFERENCE_BITRATE = 4_500_000
_MIN_BITRATE = 150_000
_OWN_RUNG_FACTOR = 1.25
_PASSTHROUGH_PROFILES = frozenset({"baseline", "constrained baseline", "main", "high"})
_PASSTHROUGH_PIX_FMTS = frozenset({"yuv420p", "yuvj420p"})


@dataclass(frozen=True)
class Rendition:
    """One rung of the ladder; bit rates in bits per second."""

    name: str
    width: int
    height: int
    video_bitrate: int
    audio_bitrate: int
    profile: str = "high"
    passthrough: bool = False

    @property
    def short_side(self) -> int:
        """The smaller dimension, which names the rung."""
        return min(self.width, self.height)

    @property
    def max_bitrate(self) -> int:
        """The peak video rate the encoder may reach (VBV maximum)."""
        return self.video_bitrate * 3 // 2

    @property
    def buffer_size(self) -> int:
        """The VBV buffer: two seconds at the target rate."""
        return self.video_bitrate * 2


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def _even_floor(value: int) -> int:
    return max(2, value - value % 2)


def video_bitrate(width: int, height: int, *, fps: float | None = None) -> int:
    """The target video bit rate for a picture size (and frame rate)."""
    rate = _REFERENCE_BITRATE * math.pow(width * height / _REFERENCE_PIXELS, 0.75)
    if fps is not None and fps > 31:
        rate *= 1.5
    return max(_MIN_BITRATE, round(rate / 10_000) * 10_000)


def audio_bitrate(short_side: int) -> int:
    """The AAC bit rate for a rung: less for the small rungs that serve poor connections."""
    return 128_000 if short_side >= 720 else 96_000


def _rung(width: int, height: int, short: int, *, fps: float | None, cap: int | None) -> Rendition:
    """Scale (width, height) so its short side is `short`, keeping aspect, never upscaling."""
    if width >= height:
        size = (min(_even(short * width / height), _even_floor(width)), _even_floor(short))
    else:
        size = (_even_floor(short), min(_even(short * height / width), _even_floor(height)))
    return _rendition(*size, fps=fps, cap=cap)


def _rendition(width: int, height: int, *, fps: float | None, cap: int | None) -> Rendition:
    short = min(width, height)
    rate = video_bitrate(width, height, fps=fps)
    return Rendition(
        name=f"{short}p",
        width=width,
        height=height,
        video_bitrate=max(_MIN_BITRATE, min(rate, cap)) if cap else rate,
        audio_bitrate=audio_bitrate(short),
        profile="high" if short >= 720 else "main",
    )


def can_pass_through(
    width: int,
    height: int,
    *,
    video_codec: str | None,
    profile: str | None,
    pix_fmt: str | None,
    audio_codec: str | None,
    fps: float | None,
    video_bit_rate: int | None,
    keyframe_interval: float | None,
    rotation: int = 0,
    max_short_side: int = RUNGS[0],
    max_fps: float = 60.0,
    max_keyframe_interval: float = 10.0,
) -> bool:
    """Whether the source video can be served as it is, copied into HLS without re-encoding."""
    short, long = min(width, height), max(width, height)
    return (
        video_codec == "h264"
        and (profile or "").lower() in _PASSTHROUGH_PROFILES
        and pix_fmt in _PASSTHROUGH_PIX_FMTS
        and audio_codec in {"aac", None}
        # MPEG-TS has nowhere to put a display rotation: players would show it sideways.
        and rotation % 360 == 0
        and width % 2 == 0
        and height % 2 == 0
        and short <= max_short_side
        and long <= math.ceil(max_short_side * 64 / 27)  # up to 21:9 at the top rung
        and fps is not None
        and 0 < fps <= max_fps + 0.5
        and video_bit_rate is not None
        and video_bit_rate <= 2 * video_bitrate(width, height, fps=fps)
        and keyframe_interval is not None
        and keyframe_interval <= max_keyframe_interval
    )


def choose_renditions(
    width: int,
    height: int,
    *,
    fps: float | None = None,
    max_short_side: int = RUNGS[0],
    rungs: tuple[int, ...] = RUNGS,
    passthrough: bool = False,
    source_video_bitrate: int | None = None,
    source_audio_bitrate: int | None = None,
) -> list[Rendition]:
    """The renditions for a source of this displayed size, largest first; never empty.

    With `passthrough` (decide it with `can_pass_through`) the source itself is the top
    rendition and only the rungs below it are encoded. A known source bit rate caps the
    encoded rungs (at 1.5x, for the generation loss): more bits cannot add what is not there.
    """
    if width < 2 or height < 2:
        raise ValueError(f"no picture to encode: {width}x{height}")
    short = min(width, height)
    # Below a copied source every rung stays under its rate, so BANDWIDTH falls with size.
    factor = 0.75 if passthrough else 1.5
    cap = round(factor * source_video_bitrate) if source_video_bitrate else None
    if passthrough:
        top = Rendition(
            name=f"{short}p",
            width=width,
            height=height,
            video_bitrate=source_video_bitrate or video_bitrate(width, height, fps=fps),
            audio_bitrate=source_audio_bitrate or audio_bitrate(short),
            profile="source",
            passthrough=True,
        )
        below = [
            _rung(width, height, r, fps=fps, cap=cap)
            for r in sorted(rungs, reverse=True)
            if r < short
        ]
        return [top, *below]
    top_short = min(short, max_short_side)
    chosen = [r for r in sorted(rungs, reverse=True) if r <= top_short]
    ladder = [_rung(width, height, r, fps=fps, cap=cap) for r in chosen]
    if top_short not in chosen and (not chosen or top_short >= _OWN_RUNG_FACTOR * chosen[0]):
        ladder.insert(0, _rung(width, height, top_short, fps=fps, cap=cap))
    return ladder


def audio_only_rendition() -> Rendition:
    """The single rendition of an audio-only recording, whose picture is a drawn waveform."""
    return Rendition(
        name="360p",
        width=640,
        height=360,
        video_bitrate=250_000,
        audio_bitrate=audio_bitrate(360),
        profile="main",
    )


def renditions_for(
    source: ProbeResult,
    *,
    allow_passthrough: bool = True,
    max_short_side: int = RUNGS[0],
    max_fps: float = 30.0,
) -> list[Rendition]:
    """The ladder for a probed file: its displayed size, and passthrough where it qualifies."""
    video = source.video
    if video is None:
        return [audio_only_rendition()]
    width, height = video.display_width, video.display_height
    audio = source.audio
    video_rate = video.bit_rate
    if video_rate is None and source.bit_rate:
        # Matroska and WebM state no per-stream rate: take the file's, less the sound.
        sound = (audio.bit_rate or 128_000) if audio else 0
        video_rate = max(source.bit_rate - sound, 1)
    passthrough = allow_passthrough and can_pass_through(
        width,
        height,
        video_codec=video.codec,
        profile=video.profile,
        pix_fmt=video.pix_fmt,
        audio_codec=audio.codec if audio else None,
        fps=video.fps,
        video_bit_rate=video_rate,
        keyframe_interval=source.keyframe_interval,
        rotation=video.rotation,
        max_short_side=max_short_side,
    )
    fps = video.fps if passthrough else min(video.fps or max_fps, max_fps)
    return choose_renditions(
        width,
        height,
        fps=fps,
        max_short_side=max_short_side,
        passthrough=passthrough,
        source_video_bitrate=video_rate,
        source_audio_bitrate=audio.bit_rate if audio else None,
    )
