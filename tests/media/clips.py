"""Tiny real recordings made with the real ffmpeg, for the probe and HLS tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from media.ffmpeg import ffmpeg_binary


def ffmpeg(*args: str, timeout: float = 60) -> None:
    """Run ffmpeg quietly; fail the test with its error output if it fails."""
    done = subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def picture(size: str, seconds: float, rate: int = 25) -> list[str]:
    """Input arguments for a moving test pattern."""
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]


def tone(seconds: float, rate: int = 48000) -> list[str]:
    """Input arguments for a sine tone."""
    return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration={seconds}"]


H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def h264_mp4(
    path: Path,
    *,
    size: str = "320x180",
    seconds: float = 3,
    rate: int = 25,
    gop: int | None = None,
    audio: bool = True,
    extra: tuple[str, ...] = (),
) -> Path:
    """An H.264/AAC MP4 (moov at the end, as ffmpeg writes it by default)."""
    sound = [*tone(seconds), "-c:a", "aac", "-b:a", "64k"] if audio else []
    keyframes = ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"] if gop else []
    ffmpeg(*picture(size, seconds, rate), *sound, *H264, *keyframes, *extra, "-shortest", str(path))
    return path


def vp9_webm(path: Path, *, size: str = "320x180", seconds: float = 3) -> Path:
    """A VP9/Opus WebM, as browsers record."""
    ffmpeg(
        *picture(size, seconds),
        *tone(seconds),
        *("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"),
        *("-c:a", "libopus", "-shortest", str(path)),
    )
    return path


def aac_m4a(path: Path, *, seconds: float = 3) -> Path:
    """An audio-only AAC recording in an M4A."""
    ffmpeg(*tone(seconds, 44100), "-c:a", "aac", "-b:a", "64k", str(path))
    return path
