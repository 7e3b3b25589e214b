"""Build the ffmpeg commands of the HLS pipeline (with ffmpeg-python); media.hls runs them.

Every command reads its input with the demuxer the probe found and the `file` protocol only,
writes into the current folder (the pipeline's temporary output folder), and reports
progress on stdout (`-progress pipe:1`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ffmpeg

from media.ffmpeg import ffmpeg_binary
from media.ladder import Rendition
from media.probe import ProbeResult
from media.thumbnails import SHEET_PATTERN, THUMB_PATTERN, SpritePlan

MASTER = "master.m3u8"
POSTER = "poster.jpg"
VARIANT = "index.m3u8"
SEGMENT = "seg_%05d.ts"
WAVEFORM_FPS = 15
"""Frame rate of the picture drawn for an audio-only recording."""

GLOBAL_ARGS = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-progress", "pipe:1"]


def _input(source: ProbeResult) -> Any:
    # The demuxer the probe found, the file protocol only, and a file: URL so no part of the
    # name is ever taken for a protocol.
    return ffmpeg.input(
        f"file:{source.path.resolve()}", f=source.demuxer, protocol_whitelist="file"
    )


def _poster_time(duration: float, poster_at: float | None) -> float:
    wanted = min(duration / 10, 30.0) if poster_at is None else poster_at
    return max(0.0, min(wanted, duration / 2))


def _picture(
    source: ProbeResult, inp: Any, renditions: Sequence[Rendition], max_fps: float
) -> tuple[Any, list[Any], float]:
    """The decoded picture to encode, one audio stream per rendition, and the output frame rate."""
    video, audio = source.video, source.audio
    if video is None:
        assert audio is not None  # the probe accepts nothing without pictures or sound
        top = renditions[0]
        parts = inp[str(audio.index)].filter_multi_output("asplit", len(renditions) + 1)
        waves = parts[0].filter(
            "showwaves",
            s=f"{top.width}x{top.height}",
            mode="cline",
            rate=WAVEFORM_FPS,
            colors="0x8ab4f8",
        )
        return waves, [parts[i + 1] for i in range(len(renditions))], float(WAVEFORM_FPS)
    picture = inp[str(video.index)]
    fps = min(video.fps or max_fps, max_fps)
    if not any(r.passthrough for r in renditions):
        # Always a constant rate: variable-rate phone and screen recordings would otherwise keep
        # their irregular timestamps, and a fixed GOP would no longer mean fixed seconds.
        fps = round(fps, 3)
        picture = picture.filter("fps", fps)
    sound = [inp[str(audio.index)]] * len(renditions) if audio else []
    return picture, sound, fps


def build_command(
    source: ProbeResult,
    renditions: Sequence[Rendition],
    *,
    segment_seconds: float = 4.0,
    preset: str = "veryfast",
    max_fps: float = 30.0,
    poster_at: float | None = None,
    poster: bool = True,
    sprites: SpritePlan | None = None,
    binary: str | None = None,
) -> list[str]:
    """The single ffmpeg command (run inside the output folder) for ladder, poster and sprites."""
    if not renditions:
        raise ValueError("at least one rendition is needed")
    inp = _input(source)
    picture, sound, fps = _picture(source, inp, renditions, max_fps)
    encoded = [r for r in renditions if not r.passthrough]
    branches = len(encoded) + int(poster) + int(sprites is not None)
    split = picture.filter_multi_output("split", branches) if branches > 1 else None
    taps = iter([split[i] for i in range(branches)] if split is not None else [picture])

    streams: list[Any] = []
    options: dict[str, Any] = {}
    passthrough = any(r.passthrough for r in renditions)
    keyframes = "source" if passthrough else f"expr:gte(t,n_forced*{segment_seconds:g})"
    # With passthrough the source's keyframes set the beat; the GOP is only a safety net.
    gop = math.ceil(fps * (20.0 if passthrough else segment_seconds))
    channels = source.audio.channels if source.audio else 0
    for i, rendition in enumerate(renditions):
        if rendition.passthrough:
            assert source.video is not None
            streams.append(inp[str(source.video.index)])
            options[f"c:v:{i}"] = "copy"
        else:
            scaled = next(taps).filter("scale", rendition.width, rendition.height)
            streams.append(scaled.filter("setsar", 1).filter("format", "yuv420p"))
            options.update(
                {
                    f"c:v:{i}": "libx264",
                    f"preset:v:{i}": preset,
                    f"profile:v:{i}": rendition.profile,
                    f"b:v:{i}": rendition.video_bitrate,
                    f"maxrate:v:{i}": rendition.max_bitrate,
                    f"bufsize:v:{i}": rendition.buffer_size,
                    f"g:v:{i}": gop,
                    f"sc_threshold:v:{i}": 0,
                    f"force_key_frames:v:{i}": keyframes,
                }
            )
        if sound:
            streams.append(sound[i])
            if rendition.passthrough:
                options[f"c:a:{i}"] = "copy"
            else:
                options[f"c:a:{i}"] = "aac"
                options[f"b:a:{i}"] = rendition.audio_bitrate
                if channels > 2:
                    options[f"ac:a:{i}"] = 2
    stream_map = " ".join(
        f"v:{i},a:{i},name:{r.name}" if sound else f"v:{i},name:{r.name}"
        for i, r in enumerate(renditions)
    )
    outputs = [
        ffmpeg.output(
            *streams,
            f"%v/{VARIANT}",
            f="hls",
            hls_time=f"{segment_seconds:g}",
            hls_playlist_type="vod",
            hls_flags="independent_segments",
            hls_segment_type="mpegts",
            hls_segment_filename=f"%v/{SEGMENT}",
            master_pl_name=MASTER,
            var_stream_map=stream_map,
            **options,
        )
    ]
    if poster:
        top = renditions[0]
        frame = next(taps).filter("select", f"gte(t,{_poster_time(source.duration, poster_at)})")
        frame = frame.filter("scale", top.width, top.height).filter("setsar", 1)
        outputs.append(ffmpeg.output(frame, POSTER, update=1, **{"frames:v": 1, "q:v": 3}))
    if sprites is not None:
        # Single thumbnails here, tiled into sheets afterwards: a tile filter in this run would
        # hold its output back until a sheet is full, and ffmpeg reports progress only as far
        # as its slowest output has got.
        thumbs = (
            next(taps)
            .filter("fps", f"1/{sprites.interval}")
            .filter("trim", end_frame=sprites.count)
            .filter("scale", sprites.tile_width, sprites.tile_height)
            .filter("setsar", 1)
        )
        outputs.append(ffmpeg.output(thumbs, THUMB_PATTERN, **{"q:v": 4}))
    args = ffmpeg.merge_outputs(*outputs).compile(cmd=binary or ffmpeg_binary())
    return [args[0], *GLOBAL_ARGS, *args[1:]]


def build_sprite_command(plan: SpritePlan, *, binary: str | None = None) -> list[str]:
    """An ffmpeg command (run in the output folder) tiling the thumbnails into sprite sheets."""
    stream = ffmpeg.input(THUMB_PATTERN, f="image2", framerate=1).filter(
        "tile", f"{plan.columns}x{plan.rows}"
    )
    args = ffmpeg.output(stream, SHEET_PATTERN, **{"q:v": 5}).compile(cmd=binary or ffmpeg_binary())
    return [args[0], *GLOBAL_ARGS, *args[1:]]


def build_remux_command(
    source: ProbeResult, rendition: Rendition, *, segment_seconds: float = 4.0
) -> list[str]:
    """An ffmpeg command copying the source's H.264/AAC packets into a one-variant HLS folder."""
    if source.video is None:
        raise ValueError("a remux needs a video stream")
    inp = _input(source)
    streams = [inp[str(source.video.index)]]
    if source.audio is not None:
        streams.append(inp[str(source.audio.index)])
    output = ffmpeg.output(
        *streams,
        f"%v/{VARIANT}",
        c="copy",
        f="hls",
        hls_time=f"{segment_seconds:g}",
        hls_playlist_type="vod",
        hls_flags="independent_segments",
        hls_segment_type="mpegts",
        hls_segment_filename=f"%v/{SEGMENT}",
        master_pl_name=MASTER,
        var_stream_map=f"v:0,a:0,name:{rendition.name}"
        if source.audio
        else f"v:0,name:{rendition.name}",
    )
    args = output.compile(cmd=ffmpeg_binary())
    return [args[0], *GLOBAL_ARGS, *args[1:]]
