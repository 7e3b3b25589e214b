"""Package a probed recording as HLS: the whole ladder in one ffmpeg run, plus fast previews.

The full job (`transcode`) is ONE ffmpeg command built with ffmpeg-python: the source is decoded
once and a `split` filter feeds one scaler and one libx264 encoder per rendition, a poster
frame and the timeline thumbnails; the `hls` muxer writes every variant with
`var_stream_map` and a master playlist carrying BANDWIDTH, RESOLUTION and CODECS. The small
thumbnail JPEGs are then tiled into sprite sheets by a second, sub-second ffmpeg run (a tile
filter inside the main run would hold its output until a sheet is full, and ffmpeg reports
progress only as far as its slowest output has got).

Keyframes are aligned across renditions, so players can switch at any segment boundary:
every encoder sees the same frames with scene-cut keyframes off, a fixed GOP of segment
length x frame rate, and keyframes forced at each segment boundary; when the top rendition
is the source itself (passthrough), the encoded rungs instead take a keyframe wherever the
source has one.

Fast time-to-playable. On a two-core machine a full 1080p ladder encodes slower than real
time, so a long recording is made playable first and completed afterwards (figures below
were measured on two cores with a 20 s 1080p30 test pattern):

1. A source that is already H.264/AAC within the ladder's limits (`ladder.can_pass_through`)
   is remuxed (`remux`): its packets are copied into HLS segments, which costs about as
   much as copying the file (0.05 s). The full ladder then copies the same stream again as
   its top rendition and encodes only the smaller rungs (0.64x real time, against 1.04x
   when every rung is encoded).
2. Any other source gets one small rendition first (`transcode_first_pass`: 360p with
   libx264 `veryfast`, no thumbnails; 0.23x real time), then the full ladder.

The app publishes each result as it arrives (the preview, then the ladder that replaces it).
Every run writes into a hidden temporary folder beside its destination and is moved into
place only when ffmpeg succeeded and every expected file is there, so a crash or a kill
never leaves a half-written rendition behind; `discard_partials` removes what such a crash
left. Every run has a deadline and resource limits, and reports progress as it goes.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from media.commands import (
    MASTER,
    POSTER,
    VARIANT,
    build_command,
    build_remux_command,
    build_sprite_command,
)
from media.ffmpeg import FfmpegError
from media.ladder import Rendition, renditions_for
from media.probe import ProbeResult
from media.progress import ProgressCallback, resource_limits, run_ffmpeg
from media.thumbnails import THUMB_PATTERN, VTT_NAME, SpritePlan, plan_sprites, thumbnails_vtt

_GIB = 1024**3
_PARTIAL = ".partial-"


@dataclass(frozen=True)
class HlsOutput:
    """A finished HLS folder; file names are relative to `folder`."""

    folder: Path
    renditions: tuple[Rendition, ...]
    duration: float
    elapsed: float
    poster: str | None = None
    thumbnails: str | None = None
    sprite_sheets: tuple[str, ...] = ()
    master: str = MASTER

    def playlist(self, rendition: Rendition) -> str:
        """The variant playlist of a rendition, relative to the folder."""
        return f"{rendition.name}/{VARIANT}"


def default_timeout(duration: float, *, remux: bool = False) -> float:
    """A generous deadline for a job on a source of this length."""
    return 60.0 + duration if remux else 300.0 + 8.0 * duration


def _check_output(
    folder: Path, renditions: Sequence[Rendition], *, poster: bool, sprites: SpritePlan | None
) -> None:
    """Raise unless every file the command was meant to write is there and complete."""
    expected = [folder / MASTER, *(folder / r.name / VARIANT for r in renditions)]
    if poster:
        expected.append(folder / POSTER)
    if sprites is not None:
        expected.append(folder / (THUMB_PATTERN % 1))
    missing = [str(p.relative_to(folder)) for p in expected if not p.is_file()]
    if missing:
        raise FfmpegError(f"ffmpeg finished but did not write {', '.join(missing)}")
    for rendition in renditions:
        if "#EXT-X-ENDLIST" not in (folder / rendition.name / VARIANT).read_text():
            raise FfmpegError(f"the {rendition.name} playlist is not complete")


def _publish(work: Path, dest: Path) -> None:
    """Move a finished folder into place, replacing an older result."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        dest.rename(old)
        work.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        work.rename(dest)


def _work_folder(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.with_name(f".{dest.name}{_PARTIAL}{uuid.uuid4().hex[:8]}")
    work.mkdir()
    return work


def discard_partials(parent: Path) -> list[Path]:
    """Delete the temporary folders that killed runs left in `parent`; the ones removed."""
    if not parent.is_dir():
        return []
    leftovers = [
        p for p in parent.iterdir() if p.is_dir() and p.name.startswith(".") and _PARTIAL in p.name
    ]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers


def _make_sheets(work: Path, plan: SpritePlan, duration: float, *, timeout: float) -> SpritePlan:
    """Tile the thumbnails the main run wrote into sheets, and write the WebVTT map."""
    thumbs = sorted(work.glob("thumb-*.jpg"))
    # The frame-rate filter may round one thumbnail off the end: map what is there.
    plan = plan.trimmed(len(thumbs))
    run_ffmpeg(build_sprite_command(plan), duration=0.0, timeout=timeout, cwd=work)
    for thumb in thumbs:
        thumb.unlink()
    missing = [n for n in range(1, plan.sheets + 1) if not (work / plan.sheet_name(n)).is_file()]
    if missing:
        raise FfmpegError(f"ffmpeg did not write sprite sheet {missing[0]}")
    (work / VTT_NAME).write_text(thumbnails_vtt(plan, duration))
    return plan


def _run(
    args: list[str],
    dest: Path,
    *,
    source: ProbeResult,
    renditions: Sequence[Rendition],
    poster: bool,
    sprites: SpritePlan | None,
    timeout: float,
    on_progress: ProgressCallback | None,
    memory_bytes: int,
) -> HlsOutput:
    started = time.monotonic()
    work = _work_folder(dest)
    try:
        run_ffmpeg(
            args,
            duration=source.duration,
            timeout=timeout,
            on_progress=on_progress,
            cwd=work,
            preexec=resource_limits(
                cpu_seconds=timeout * (os.cpu_count() or 1) + 30,
                memory_bytes=memory_bytes,
                file_bytes=4 * _GIB,
            ),
        )
        _check_output(work, renditions, poster=poster, sprites=sprites)
        if sprites is not None:
            sprites = _make_sheets(work, sprites, source.duration, timeout=timeout)
        _publish(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return HlsOutput(
        folder=dest,
        renditions=tuple(renditions),
        duration=source.duration,
        elapsed=round(time.monotonic() - started, 3),
        poster=POSTER if poster else None,
        thumbnails=VTT_NAME if sprites is not None else None,
        sprite_sheets=tuple(sprites.sheet_name(n + 1) for n in range(sprites.sheets))
        if sprites is not None
        else (),
    )


def transcode(
    source: ProbeResult,
    dest: Path,
    *,
    renditions: Sequence[Rendition] | None = None,
    segment_seconds: float = 4.0,
    preset: str = "veryfast",
    max_fps: float = 30.0,
    poster: bool = True,
    thumbnails: bool = True,
    poster_at: float | None = None,
    timeout: float | None = None,
    on_progress: ProgressCallback | None = None,
    memory_bytes: int = 8 * _GIB,
) -> HlsOutput:
    """Encode the whole ladder, poster and thumbnails in one ffmpeg run into `dest`."""
    ladder = list(renditions) if renditions is not None else renditions_for(source)
    top = ladder[0]
    sprites = plan_sprites(source.duration, top.width, top.height) if thumbnails else None
    args = build_command(
        source,
        ladder,
        segment_seconds=segment_seconds,
        preset=preset,
        max_fps=max_fps,
        poster_at=poster_at,
        poster=poster,
        sprites=sprites,
    )
    return _run(
        args,
        dest,
        source=source,
        renditions=ladder,
        poster=poster,
        sprites=sprites,
        timeout=timeout or default_timeout(source.duration),
        on_progress=on_progress,
        memory_bytes=memory_bytes,
    )


def transcode_first_pass(
    source: ProbeResult,
    dest: Path,
    *,
    preset: str = "veryfast",
    segment_seconds: float = 4.0,
    timeout: float | None = None,
    on_progress: ProgressCallback | None = None,
) -> HlsOutput:
    """Quickly encode only the smallest rung (360p or the source's size) and a poster."""
    low = renditions_for(source, allow_passthrough=False)[-1]
    return transcode(
        source,
        dest,
        renditions=[low],
        segment_seconds=segment_seconds,
        preset=preset,
        thumbnails=False,
        timeout=timeout,
        on_progress=on_progress,
    )


def passthrough_rendition(source: ProbeResult) -> Rendition | None:
    """The rendition the source can be served as without re-encoding, if it qualifies."""
    top = renditions_for(source)[0]
    return top if top.passthrough else None


def remux(
    source: ProbeResult,
    dest: Path,
    *,
    segment_seconds: float = 4.0,
    timeout: float | None = None,
    on_progress: ProgressCallback | None = None,
) -> HlsOutput:
    """Copy an H.264/AAC source into a one-variant HLS folder without re-encoding."""
    rendition = passthrough_rendition(source)
    if rendition is None:
        raise ValueError("this source cannot be served without re-encoding")
    args = build_remux_command(source, rendition, segment_seconds=segment_seconds)
    return _run(
        args,
        dest,
        source=source,
        renditions=[rendition],
        poster=False,
        sprites=None,
        timeout=timeout or default_timeout(source.duration, remux=True),
        on_progress=on_progress,
        memory_bytes=2 * _GIB,
    )
