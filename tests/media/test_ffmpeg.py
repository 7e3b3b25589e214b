"""The real ffmpeg: finding it, generating a sample recording, failures and timeouts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from media import ffmpeg
from media.ffmpeg import FfmpegError, ffmpeg_binary, generate_sample


@pytest.fixture
def fresh_binary_lookup() -> Iterator[None]:
    """Forget the cached ffmpeg path before and after a test that changes how it is found."""
    ffmpeg_binary.cache_clear()
    yield
    ffmpeg_binary.cache_clear()


def decode_report(path: Path) -> dict[str, str]:
    """Decode the first video and audio streams to the null muxer; the final progress report.

    Mapping both streams explicitly makes ffmpeg fail when either is missing, and -xerror
    makes any decoding error fatal, so a clean run proves the file plays to the end.
    """
    out = ffmpeg._run(
        [
            ffmpeg_binary(),
            "-hide_banner",
            "-nostats",
            "-xerror",
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-map",
            "0:a:0",
            "-f",
            "null",
            "-",
            "-progress",
            "pipe:1",
        ],
        timeout=60,
    )
    report: dict[str, str] = {}
    for line in out.splitlines():  # later blocks overwrite earlier ones: the last one wins
        key, sep, value = line.partition("=")
        if sep:
            report[key.strip()] = value.strip()
    return report


def stream_lines(path: Path) -> list[str]:
    """The `Stream #...` lines ffmpeg prints about an input file."""
    done = subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return [line.strip() for line in done.stderr.splitlines() if "Stream #" in line]


def test_ffmpeg_binary_is_found_and_runs() -> None:
    binary = ffmpeg_binary()
    assert Path(binary).is_file()
    assert os.access(binary, os.X_OK)
    assert ffmpeg.version().startswith("ffmpeg version")


@pytest.mark.usefixtures("fresh_binary_lookup")
def test_ffmpeg_binary_falls_back_to_imageio(monkeypatch: pytest.MonkeyPatch) -> None:
    import imageio_ffmpeg

    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert ffmpeg_binary() == imageio_ffmpeg.get_ffmpeg_exe()


@pytest.mark.usefixtures("fresh_binary_lookup")
def test_ffmpeg_binary_prefers_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ffmpeg_binary() == str(fake)


def test_generate_sample_makes_a_playable_clip(tmp_path: Path) -> None:
    path = generate_sample(tmp_path / "nested" / "sample.mp4", seconds=2, width=320, height=180)

    assert path == tmp_path / "nested" / "sample.mp4"
    assert path.stat().st_size > 1000

    streams = stream_lines(path)
    video = [line for line in streams if "Video:" in line]
    audio = [line for line in streams if "Audio:" in line]
    assert len(video) == 1, streams
    assert len(audio) == 1, streams
    assert "h264" in video[0]
    assert "320x180" in video[0]
    assert "yuv420p" in video[0]
    assert "aac" in audio[0]
    assert "48000 Hz" in audio[0]

    report = decode_report(path)
    assert report["progress"] == "end"
    assert int(report["frame"]) == 50  # 2 s at 25 frames per second
    seconds = int(report["out_time_us"]) / 1_000_000
    assert 1.9 <= seconds <= 2.2, report


def test_generate_sample_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "sample.mp4"
    path.write_bytes(b"not a video")
    generate_sample(path, seconds=1, width=160, height=90)
    assert int(decode_report(path)["frame"]) == 25


def test_too_small_a_timeout_stops_ffmpeg(tmp_path: Path) -> None:
    with pytest.raises(FfmpegError, match=r"^ffmpeg took longer than 0\.05 s and was stopped$"):
        generate_sample(tmp_path / "slow.mp4", seconds=60, width=1280, height=720, timeout=0.05)


def test_failure_reports_exit_status_and_stderr(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    with pytest.raises(FfmpegError) as caught:
        ffmpeg._run(
            [ffmpeg_binary(), "-hide_banner", "-i", str(missing), "-f", "null", "-"], timeout=30
        )
    message = str(caught.value)
    assert re.match(r"ffmpeg exited with \d+: ", message)
    assert "No such file or directory" in message


def test_missing_executable_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FfmpegError, match="could not start ffmpeg"):
        ffmpeg._run([str(tmp_path / "no-such-ffmpeg"), "-version"], timeout=5)
