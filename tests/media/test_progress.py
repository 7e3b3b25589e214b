"""Progress parsing, resource limits, and running the real ffmpeg under a deadline."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from media.ffmpeg import FfmpegError, ffmpeg_binary
from media.progress import FfmpegTimeout, ProgressParser, resource_limits, run_ffmpeg


def feed(parser: ProgressParser, text: str, now: float) -> list[tuple[float, float | None]]:
    updates = [parser.feed(line, now=now) for line in text.strip().splitlines()]
    return [u for u in updates if u is not None]


def test_parser_reports_percent_and_eta_once_per_block() -> None:
    parser = ProgressParser(10.0, started=100.0)
    assert feed(parser, "frame=1\nout_time_us=N/A\nprogress=continue", now=100.5) == []
    assert feed(parser, "frame=50\nout_time_us=2500000\nprogress=continue", now=101.0) == [
        (25.0, 3.0)
    ]
    # ffmpeg's out_time_ms is in microseconds as well; it is read when out_time_us is missing.
    assert feed(parser, "out_time_ms=5000000\nprogress=continue", now=102.0) == [(50.0, 2.0)]
    assert feed(parser, "progress=end", now=104.0) == [(100.0, 0.0)]


def test_parser_never_goes_backwards_and_holds_100_for_the_end() -> None:
    parser = ProgressParser(10.0, started=0.0)
    assert feed(parser, "out_time_us=6000000\nprogress=continue", now=1.0) == [(60.0, 0.7)]
    assert feed(parser, "out_time_us=5000000\nprogress=continue", now=2.0) == []
    assert feed(parser, "out_time_us=6000000\nprogress=continue", now=3.0) == []
    assert feed(parser, "out_time_us=20000000\nprogress=continue", now=4.0) == [(99.9, 0.0)]
    assert feed(parser, "out_time_us=-5\nprogress=continue", now=5.0) == []
    assert feed(parser, "garbage\n\nprogress=end", now=6.0) == [(100.0, 0.0)]


def test_parser_without_a_duration_only_reports_the_end() -> None:
    parser = ProgressParser(0.0, started=0.0)
    assert feed(parser, "out_time_us=1000000\nprogress=continue\nprogress=end", now=1.0) == [
        (100.0, 0.0)
    ]


def test_resource_limits_apply_in_the_child() -> None:
    script = (
        "import resource as r; print(*(r.getrlimit(k)[0] for k in "
        "(r.RLIMIT_CPU, r.RLIMIT_AS, r.RLIMIT_FSIZE, r.RLIMIT_CORE)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        preexec_fn=resource_limits(cpu_seconds=7, memory_bytes=3 * 1024**3, file_bytes=1234),
    )
    assert done.stdout.split() == ["7", str(3 * 1024**3), "1234", "0"]
    # The caller's own limits are untouched.
    assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] != 1234


def test_a_file_size_limit_stops_a_runaway_writer(tmp_path: Path) -> None:
    with pytest.raises(FfmpegError, match="ffmpeg exited with"):
        run_ffmpeg(
            [ffmpeg_binary(), "-hide_banner", "-nostdin", "-f", "lavfi", "-i",
             "testsrc2=size=320x180:duration=5", "-c:v", "rawvideo", "-f", "nut", "-y",
             str(tmp_path / "big.nut"), "-progress", "pipe:1"],
            duration=5,
            timeout=60,
            preexec=resource_limits(cpu_seconds=60, memory_bytes=None, file_bytes=100_000),
        )  # fmt: skip


def _children() -> set[str]:
    """Process ids of this test process's live children (other suites may keep their own)."""
    pid = os.getpid()
    return set(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def _lavfi(seconds: float, *, realtime: bool = False) -> list[str]:
    return [
        ffmpeg_binary(),
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-progress",
        "pipe:1",
        *(["-re"] if realtime else []),
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=160x90:rate=25:duration={seconds}",
        "-f",
        "null",
        "-",
    ]


def test_progress_rises_to_100(tmp_path: Path) -> None:
    seen: list[tuple[float, float | None]] = []
    run_ffmpeg(
        _lavfi(2, realtime=True),
        duration=2,
        timeout=30,
        on_progress=lambda percent, eta: seen.append((percent, eta)),
        cwd=tmp_path,
    )
    percents = [p for p, _ in seen]
    assert len(percents) >= 3, seen
    assert percents == sorted(set(percents))
    assert percents[-1] == 100.0
    assert all(eta is not None and eta >= 0 for _, eta in seen)


def test_timeout_kills_ffmpeg_and_raises() -> None:
    before = _children()
    started = time.monotonic()
    with pytest.raises(FfmpegTimeout, match=r"^ffmpeg took longer than 0\.5 s and was stopped$"):
        run_ffmpeg(_lavfi(60, realtime=True), duration=60, timeout=0.5)
    assert time.monotonic() - started < 5
    assert _children() <= before


def test_a_raising_callback_cancels_the_run() -> None:
    def cancel(percent: float, eta: float | None) -> None:
        raise RuntimeError("cancelled by the editor")

    before = _children()
    with pytest.raises(RuntimeError, match="cancelled by the editor"):
        run_ffmpeg(_lavfi(60, realtime=True), duration=60, timeout=30, on_progress=cancel)
    assert _children() <= before


def test_failure_reports_the_end_of_stderr(tmp_path: Path) -> None:
    args = [ffmpeg_binary(), "-hide_banner", "-progress", "pipe:1", "-i", str(tmp_path / "none")]
    with pytest.raises(FfmpegError, match=r"ffmpeg exited with \d+: .*No such file or directory"):
        run_ffmpeg([*args, "-f", "null", "-"], duration=1, timeout=30)


def test_a_missing_executable_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FfmpegError, match="could not start ffmpeg"):
        run_ffmpeg([str(tmp_path / "no-ffmpeg")], duration=1, timeout=5)
