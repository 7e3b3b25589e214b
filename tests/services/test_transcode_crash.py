"""kill -9 of the real scheduler process mid-transcode: nothing half-published, and it recovers."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from app import db
from app.models import Video, VideoState
from app.services import videos
from app.settings import ROOT, Settings, load_settings, use_settings
from media.storage import LocalStorage
from tests.media.clips import h264_mp4
from tests.published import assert_complete

STALE_SECONDS = 3
TEST_TIMEOUT = 240


class Scheduler:
    """`python -m scheduler` as a real child process, logging to a file."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / "scheduler.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "scheduler"],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so the test can tell when its ffmpeg is gone too.
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill_hard(self) -> int:
        """SIGKILL the scheduler alone (not its children), as the kernel's OOM killer would."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    values = {
        key: value
        for key, value in os.environ.items()
        if key in {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}
    }
    values.update(
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
        VAR_DIR=str(var_dir),
        DATABASE_URL=f"sqlite://{var_dir / 'encore.sqlite3'}",
        SECRET_KEY=secrets.token_urlsafe(48),
        LOG_FORMAT="text",
        TRANSCODE_INTERVAL_SECONDS="0.5",
        TRANSCODE_STALE_SECONDS=str(STALE_SECONDS),
    )
    return values


@pytest.fixture
def migrated(env: dict[str, str], tmp_path: Path) -> Settings:
    """The scheduler's own SQLite file, migrated by the CLI as an operator would."""
    done = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    settings = load_settings(
        var_dir=Path(env["VAR_DIR"]),
        database_url=env["DATABASE_URL"],
        secret_key=env["SECRET_KEY"],
    )
    use_settings(settings)
    return settings


@pytest.fixture
async def database(migrated: Settings) -> AsyncIterator[Settings]:
    """The same database, opened in the test process to watch the row."""
    await db.init_db(migrated)
    try:
        yield migrated
    finally:
        await db.close_db()


@pytest.fixture
def scheduler(env: dict[str, str], tmp_path: Path) -> Iterator[Scheduler]:
    instance = Scheduler(env, tmp_path)
    try:
        yield instance
    finally:
        instance.stop()


async def wait_until(
    video_id: int, what: str, check: Callable[[Video], bool], scheduler: Scheduler
) -> Video:
    while True:
        row = await Video.get(id=video_id)
        if check(row):
            return row
        assert scheduler.process is not None
        assert scheduler.process.poll() is None, f"scheduler exited:\n{scheduler.log()}"
        assert row.state != VideoState.FAILED, (what, row.error, scheduler.log())
        await asyncio.sleep(0.1)


async def test_sigkill_mid_transcode_then_restart_reaches_ready(
    database: Settings, scheduler: Scheduler, tmp_path: Path
) -> None:
    storage = LocalStorage(root=database.resolved_media_dir)
    # Not copyable (a single keyframe): a first pass, then a three-rung ladder of some seconds.
    source = h264_mp4(tmp_path / "talk.mp4", size="1280x720", seconds=12, gop=1000)
    storage.put_file("uploads/1/talk.mp4", source, content_type="video/mp4")
    video = await Video.create(title="Talk", source_key="uploads/1/talk.mp4")
    work = database.var_dir / "work" / str(video.id)

    async with asyncio.timeout(TEST_TIMEOUT):
        scheduler.start()
        running = await wait_until(
            video.id,
            "the ladder under way",
            lambda row: row.stage == "transcoding" and row.progress >= 10,
            scheduler,
        )
        assert running.attempts == 1
        pgid = scheduler.kill_hard()

        # Its ffmpeg loses its progress pipe and ends too; nothing keeps writing.
        for _ in range(100):
            if not group_alive(pgid):
                break
            await asyncio.sleep(0.1)
        assert not group_alive(pgid), "ffmpeg outlived the killed scheduler"

        # What players see is the complete first pass; the ladder never got published.
        dead = await Video.get(id=video.id)
        assert dead.state == VideoState.TRANSCODING
        preview = f"videos/{video.id}/v1-preview/master.m3u8"
        assert dead.hls_key == preview
        assert dead.playable
        assert_complete(storage, preview)
        assert videos.version_names(storage, video.id) == {"v1-preview"}
        assert storage.list_keys(f"videos/{video.id}/v1") == []
        leftovers = [p.name for p in work.iterdir()] if work.exists() else []
        assert any(".partial-" in name for name in leftovers), leftovers

        # A new scheduler takes the stalled job over once its heartbeat is stale.
        scheduler.start()
        done = await wait_until(
            video.id, "ready", lambda row: row.state == VideoState.READY, scheduler
        )

    assert done.attempts == 2
    final = f"videos/{video.id}/v2/master.m3u8"
    assert done.hls_key == final
    assert done.error is None
    files = assert_complete(storage, final)
    assert {f"videos/{video.id}/v2/{name}/index.m3u8" for name in ("720p", "480p", "360p")} <= set(
        files
    )
    assert done.poster_key is not None
    assert storage.exists(done.poster_key)
    # Old versions are gone and the killed run's temporary files were cleaned up.
    assert videos.version_names(storage, video.id) == {"v2"}
    # The job removes its work folder just after it marks the video ready.
    for _ in range(100):
        if not work.exists():
            break
        await asyncio.sleep(0.1)
    assert not work.exists()
    assert "transcode started" in scheduler.log()
