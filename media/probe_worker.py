"""Read one media file with PyAV and print the facts as JSON; run only by media.probe.

This runs as a script in its own short-lived, resource-limited interpreter (`python -I -B`),
so a hostile file can at worst crash or stall this process. It imports nothing from the
project, opens exactly the file it is given with the demuxer it is told to use, and reports
facts only: what is acceptable is decided by media.probe.
"""

from __future__ import annotations

import itertools
import json
import sys
from fractions import Fraction
from typing import Any

import av
import av.container
import av.stream

Facts = dict[str, Any]

# Demuxer private options that would let a file reach other files; off even if a default changes.
_PRIVATE_OPTIONS = {"mov": {"enable_drefs": "0", "use_absolute_path": "0"}}


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _rate(value: Fraction | None) -> float | None:
    return float(value) if value else None


def _stream_facts(stream: av.stream.Stream) -> Facts:
    ctx = stream.codec_context
    facts: Facts = {
        "index": stream.index,
        "type": stream.type,
        "codec": ctx.codec.canonical_name if ctx.codec else None,
        "profile": ctx.profile,
        "bit_rate": ctx.bit_rate or None,
        "duration": _seconds(stream.duration, stream.time_base),
    }
    if isinstance(stream, av.VideoStream):
        sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        facts.update(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            pix_fmt=stream.codec_context.pix_fmt,
            fps=_rate(stream.average_rate) or _rate(stream.guessed_rate),
            sample_aspect_ratio=float(sar) if sar else 1.0,
        )
    elif isinstance(stream, av.AudioStream):
        facts.update(
            sample_rate=stream.codec_context.sample_rate,
            channels=stream.codec_context.channels,
        )
    return facts


def _pick(container: av.container.InputContainer) -> tuple[Any, Any]:
    video = next(
        (
            s
            for s in container.streams.video
            # Cover art in an audio file is a one-picture "video" stream: not a video.
            if not s.disposition & av.stream.Disposition.attached_pic
        ),
        None,
    )
    audio = next(iter(container.streams.audio), None)
    return video, audio


def _scan(
    container: av.container.InputContainer,
    streams: list[Any],
    *,
    start: float,
    decode_seconds: float,
    keyframe_seconds: float,
    facts: Facts,
) -> None:
    """Decode the first seconds of each stream and note where video keyframes fall."""
    frames = {stream.index: 0 for stream in streams}
    keyframes: list[float] = []
    last_video: float | None = None
    video = next((s for s in streams if s.type == "video"), None)
    for packet in container.demux(streams):
        if packet.pts is None or packet.time_base is None:
            continue
        at = float(packet.pts * packet.time_base) - start
        if at > max(decode_seconds, keyframe_seconds):
            break
        if packet.stream is video:
            last_video = at
            if packet.is_keyframe:
                keyframes.append(at)
        if at <= decode_seconds:
            for frame in packet.decode():
                frames[packet.stream.index] += 1
                if packet.stream is video and "rotation" not in facts:
                    facts["rotation"] = int(getattr(frame, "rotation", 0) or 0)
    facts["decoded_frames"] = {str(k): v for k, v in frames.items()}
    gaps = [b - a for a, b in itertools.pairwise(keyframes)]
    if keyframes and last_video is not None:
        # The stretch after the last keyframe seen counts too: a file with one keyframe has
        # a keyframe interval of at least everything scanned.
        gaps.append(last_video - keyframes[-1])
    facts["keyframe_interval"] = max(gaps) if gaps else None
    facts["keyframes_seen"] = len(keyframes)


def _tail(
    container: av.container.InputContainer,
    streams: list[Any],
    *,
    start: float,
    decode_seconds: float,
) -> float | None:
    """Where the last packet ends, reading from the current position to the end of the file."""
    end: float | None = None
    first: float | None = None
    for packet in container.demux(streams):
        if packet.pts is None or packet.time_base is None:
            continue
        at = float(packet.pts * packet.time_base) - start
        first = at if first is None else first
        stop = at + float((packet.duration or 0) * packet.time_base)
        end = stop if end is None else max(end, stop)
        if at - first <= decode_seconds:
            # Decode what follows the seek so a damaged end is found, not just a short one.
            packet.decode()
    return end


def probe(path: str, fmt: str, *, decode_seconds: float, keyframe_seconds: float) -> Facts:
    """The facts about one file, or an "error" entry saying which step failed."""
    options = {"protocol_whitelist": "file", "format_whitelist": fmt}
    options.update(_PRIVATE_OPTIONS.get(fmt, {}))
    try:
        container = av.open(path, mode="r", format=fmt, options=options, metadata_errors="ignore")
    except av.FFmpegError as exc:
        return {"error": "open", "detail": str(exc)}
    with container:
        start = (container.start_time or 0) / av.time_base
        facts: Facts = {
            "format": container.format.name,
            "duration": container.duration / av.time_base if container.duration else None,
            "bit_rate": container.bit_rate or None,
            "streams": [_stream_facts(s) for s in container.streams],
        }
        video, audio = _pick(container)
        facts["video_index"] = video.index if video is not None else None
        facts["audio_index"] = audio.index if audio is not None else None
        chosen = [s for s in (video, audio) if s is not None]
        if not chosen:
            return facts
        for stream in chosen:
            stream.codec_context.thread_count = 1  # a probe needs no parallelism
        try:
            _scan(
                container,
                chosen,
                start=start,
                decode_seconds=decode_seconds,
                keyframe_seconds=keyframe_seconds,
                facts=facts,
            )
        except (av.FFmpegError, EOFError) as exc:
            return {**facts, "error": "decode", "detail": str(exc)}
        facts.setdefault("rotation", 0)
        duration = facts["duration"]
        # Without a declared duration the whole file is read to find where it ends.
        seek_to = duration - decode_seconds if duration else 0.0
        try:
            container.seek(int((max(seek_to, 0.0) + start) * av.time_base), backward=True)
        except av.FFmpegError:
            # Some files cannot seek; their head decoded, so take the declared duration.
            facts["end"] = duration
            return facts
        try:
            facts["end"] = _tail(container, chosen, start=start, decode_seconds=decode_seconds)
        except (av.FFmpegError, EOFError) as exc:
            return {**facts, "error": "tail", "detail": str(exc)}
        return facts


def main(argv: list[str]) -> int:
    """Entry point: `probe_worker.py PATH FORMAT DECODE_SECONDS KEYFRAME_SECONDS`."""
    path, fmt, decode_seconds, keyframe_seconds = argv
    facts = probe(
        path, fmt, decode_seconds=float(decode_seconds), keyframe_seconds=float(keyframe_seconds)
    )
    sys.stdout.write(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
