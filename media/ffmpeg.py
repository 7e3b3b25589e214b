"""Locate ffmpeg and run it with a timeout; the only place that starts ffmpeg processes."""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import ffmpeg

DEFAULT_TIMEOUT = 600.0


class FfmpegError(RuntimeError):
    """ffmpeg failed, was missing or ran out of time; the message says which."""


@lru_cache(maxsize=1)
def ffmpeg_binary() -> str:
    """The ffmpeg executable: from PATH, else the one shipped in the imageio-ffmpeg wheel."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise FfmpegError("ffmpeg not found on PATH and imageio-ffmpeg is not installed") from exc
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def version() -> str:
    """The first line of `ffmpeg -version`."""
    out = _run([ffmpeg_binary(), "-hide_banner", "-version"], timeout=20)
    return out.splitlines()[0] if out else "unknown"


def _run(args: list[str], *, timeout: float) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - arguments are built here, never from a shell
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise FfmpegError(f"ffmpeg took longer than {timeout:g} s and was stopped") from exc
    except OSError as exc:
        raise FfmpegError(f"could not start ffmpeg: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise FfmpegError(f"ffmpeg exited with {done.returncode}: {tail}")
    return done.stdout


def generate_sample(
    path: Path,
    *,
    seconds: float = 30.0,
    width: int = 1280,
    height: int = 720,
    title: str = "Encore sample",
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Write a short H.264/AAC MP4 test recording (moving test pattern and a tone)."""
    del title  # drawtext needs a font file, which a bare machine may not have
    path.parent.mkdir(parents=True, exist_ok=True)
    video = ffmpeg.input(f"testsrc2=size={width}x{height}:rate=25:duration={seconds}", f="lavfi")
    audio = ffmpeg.input(f"sine=frequency=440:sample_rate=48000:duration={seconds}", f="lavfi")
    stream = ffmpeg.output(
        video,
        audio,
        str(path),
        vcodec="libx264",
        pix_fmt="yuv420p",
        preset="veryfast",
        acodec="aac",
        movflags="+faststart",
        shortest=None,
    ).overwrite_output()
    args = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", *stream.compile()[1:]]
    _run(args, timeout=timeout)
    return path
