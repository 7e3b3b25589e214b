"""Run a long ffmpeg job under a deadline and resource limits, reporting percent done and ETA.

ffmpeg writes `key=value` blocks to stdout with `-progress pipe:1`, each ending in
`progress=continue` (or `progress=end`); `out_time_us` in a block is how far the output has got.
"""

from __future__ import annotations

import os
import resource
import selectors
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO

from media.ffmpeg import FfmpegError

ProgressCallback = Callable[[float, float | None], None]
"""Called with (percent done 0-100, estimated seconds left or None); raise from it to cancel."""

_STDERR_LINES = 40


class FfmpegTimeout(FfmpegError):
    """ffmpeg ran past its deadline and was killed."""


def resource_limits(
    *, cpu_seconds: float | None, memory_bytes: int | None, file_bytes: int | None = None
) -> Callable[[], None]:
    """A `preexec_fn` capping a child's CPU seconds, address space and file size; no core dump."""
    wanted: list[tuple[int, int]] = [(resource.RLIMIT_CORE, 0)]
    if cpu_seconds is not None:
        wanted.append((resource.RLIMIT_CPU, max(1, int(cpu_seconds))))
    if memory_bytes is not None:
        wanted.append((resource.RLIMIT_AS, memory_bytes))
    if file_bytes is not None:
        wanted.append((resource.RLIMIT_FSIZE, file_bytes))

    def apply() -> None:
        for kind, value in wanted:
            _, hard = resource.getrlimit(kind)
            # An unprivileged process may lower its hard limit but never raise it.
            capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(kind, (capped, capped))

    return apply


def _parse_out_time(block: dict[str, str]) -> float | None:
    for key in ("out_time_us", "out_time_ms"):  # out_time_ms is microseconds too (a known misnomer)
        value = block.get(key, "")
        if value.lstrip("-").isdigit():
            return max(int(value), 0) / 1_000_000
    return None


class ProgressParser:
    """Turns ffmpeg `-progress` lines into (percent, eta) updates that only ever increase."""

    def __init__(self, duration: float, *, started: float) -> None:
        self.duration = duration
        self.started = started
        self.percent = 0.0
        self._block: dict[str, str] = {}

    def feed(self, line: str, *, now: float) -> tuple[float, float | None] | None:
        """Take one line; at the end of a block, the new (percent, eta) if percent went up."""
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        self._block[key] = value
        if key != "progress":
            return None
        block, self._block = self._block, {}
        if value == "end":
            percent = 100.0
        else:
            out_time = _parse_out_time(block)
            if out_time is None or self.duration <= 0:
                return None
            # Hold 100 back for the end block: the last frames still have to be written.
            percent = min(round(100.0 * out_time / self.duration, 1), 99.9)
        if percent <= self.percent:
            return None
        self.percent = percent
        elapsed = now - self.started
        eta = 0.0 if percent >= 100 else elapsed * (100.0 - percent) / percent
        return percent, round(eta, 1)


def _drain(stream: IO[bytes], tail: deque[str]) -> None:
    for raw in iter(stream.readline, b""):
        tail.append(raw.decode("utf-8", errors="replace").rstrip())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def run_ffmpeg(
    args: list[str],
    *,
    duration: float,
    timeout: float,
    on_progress: ProgressCallback | None = None,
    cwd: Path | None = None,
    preexec: Callable[[], None] | None = None,
) -> None:
    """Run ffmpeg (with `-progress pipe:1`); on timeout or failure kill it and raise."""
    started = time.monotonic()
    deadline = started + timeout
    tail: deque[str] = deque(maxlen=_STDERR_LINES)
    try:
        process = subprocess.Popen(  # noqa: S603 - a list of arguments built by media/, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            preexec_fn=preexec,  # only setrlimit calls: safe between fork and exec
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise FfmpegError(f"could not start ffmpeg: {exc}") from exc
    assert process.stdout is not None
    assert process.stderr is not None
    reader = threading.Thread(target=_drain, args=(process.stderr, tail), daemon=True)
    reader.start()
    parser = ProgressParser(duration, started=started)
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    pending = b""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FfmpegTimeout(f"ffmpeg took longer than {timeout:g} s and was stopped")
            if not selector.select(timeout=min(remaining, 1.0)):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                update = parser.feed(line.decode("utf-8", errors="replace"), now=time.monotonic())
                if update is not None and on_progress is not None:
                    on_progress(*update)
        try:
            code = process.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired as exc:
            raise FfmpegTimeout(f"ffmpeg took longer than {timeout:g} s and was stopped") from exc
    except BaseException:
        # Timeout, a cancelling callback or Ctrl-C: never leave ffmpeg running behind us.
        _stop(process)
        raise
    finally:
        selector.close()
        process.stdout.close()
        reader.join(timeout=5)
        process.stderr.close()
    if code != 0:
        detail = "\n".join(list(tail)[-10:])
        raise FfmpegError(f"ffmpeg exited with {code}: {detail}")
    if parser.percent < 100.0 and on_progress is not None:
        on_progress(100.0, 0.0)
