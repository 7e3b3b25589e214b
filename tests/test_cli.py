"""The command line, run as a real subprocess on the default SQLite database under VAR_DIR."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

from tests.media.test_ffmpeg import decode_report, stream_lines
from tests.test_settings import run_app

STRONG_PASSWORD = "plum-orchard-42-lantern"


def query(var_dir: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Rows from the SQLite database the commands wrote."""
    with sqlite3.connect(var_dir / "encore.sqlite3") as conn:
        return conn.execute(sql, params).fetchall()


def test_check_on_defaults(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    done = run_app("check", var_dir=var_dir)

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"sqlite://{var_dir / 'encore.sqlite3'}" in out
    assert f"MEDIA_DIR              {var_dir / 'media'}" in out
    assert "(unset: built-in outbox)" in out
    lines = out.splitlines()
    for name in ("database", "ffmpeg", "storage"):
        assert any(line.startswith(f"[ok  ] {name}") for line in lines), out
    for name in ("redis", "smtp"):
        assert any(line.startswith(f"[skip] {name}") for line in lines), out
    assert "FAIL" not in out
    assert "Traceback" not in done.stderr


def test_check_reports_an_unreachable_service_and_masks_passwords(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = run_app(
        "check", var_dir=tmp_path / "var", SMTP_URL=f"smtp://mailer:hunter2secret@127.0.0.1:{port}"
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert any(line.startswith("[FAIL] smtp") for line in done.stdout.splitlines()), done.stdout
    assert f"smtp://mailer:***@127.0.0.1:{port}" in done.stdout
    assert "hunter2secret" not in done.stdout + done.stderr


def test_migrate_then_create_owner(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    migrated = run_app("migrate", var_dir=var_dir)
    assert migrated.returncode == 0, migrated.stderr
    assert "migrations applied" in migrated.stderr

    done = run_app(
        "create-owner",
        "--email",
        "Olivia@Example.com",
        "--name",
        "Olivia Owner",
        var_dir=var_dir,
        ENCORE_OWNER_PASSWORD=STRONG_PASSWORD,
    )

    assert done.returncode == 0, done.stderr
    assert "owner olivia@example.com created" in done.stdout
    rows = query(var_dir, "SELECT email, name, role, is_active, password_hash FROM staff_user")
    assert len(rows) == 1
    email, name, role, active, password_hash = rows[0]
    assert (email, name, role, active) == ("olivia@example.com", "Olivia Owner", "owner", 1)
    assert isinstance(password_hash, str)
    assert STRONG_PASSWORD not in password_hash
    assert password_hash.startswith("$argon2")

    again = run_app(
        "create-owner",
        "--email",
        "olivia@example.com",
        "--name",
        "Olivia Again",
        var_dir=var_dir,
        ENCORE_OWNER_PASSWORD=STRONG_PASSWORD,
    )
    assert again.returncode == 1
    assert again.stderr.strip() == "encore: An account with this email address already exists."
    assert len(query(var_dir, "SELECT id FROM staff_user")) == 1


def test_create_owner_refuses_a_weak_password(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    done = run_app(
        "create-owner",
        "--email",
        "owner@example.com",
        "--name",
        "Owner",
        var_dir=var_dir,
        ENCORE_OWNER_PASSWORD="short",
    )

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["encore: Use at least 10 characters."]
    assert "Traceback" not in done.stderr
    assert query(var_dir, "SELECT id FROM staff_user") == []


def test_demo_is_created_once_with_a_real_video(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    first = run_app("demo", "--seconds", "2", var_dir=var_dir)

    assert first.returncode == 0, first.stderr
    assert "demo webinar ready: Getting started with Encore" in first.stderr
    sample = var_dir / "media" / "uploads" / "demo" / "sample.mp4"
    assert sample.is_file()
    streams = stream_lines(sample)
    assert any("Video: h264" in line for line in streams), streams
    assert any("Audio: aac" in line for line in streams), streams
    report = decode_report(sample)
    assert 1.9 <= int(report["out_time_us"]) / 1_000_000 <= 2.2, report

    webinars = query(var_dir, "SELECT id, slug, status, video_id FROM webinar")
    assert len(webinars) == 1
    webinar_id, slug, status, video_id = webinars[0]
    assert (slug, status) == ("demo-onboarding", "published")
    videos = query(var_dir, "SELECT id, source_key, size_bytes, duration_seconds FROM video")
    assert videos == [(video_id, "uploads/demo/sample.mp4", sample.stat().st_size, 2.0)]
    schedules = query(
        var_dir, "SELECT kind, timezone FROM schedule WHERE webinar_id = ?", webinar_id
    )
    assert schedules == [("recurring", "America/New_York")]
    generated_at = sample.stat().st_mtime_ns

    second = run_app("demo", "--seconds", "2", var_dir=var_dir)

    assert second.returncode == 0, second.stderr
    assert query(var_dir, "SELECT id FROM webinar") == [(webinar_id,)]
    assert query(var_dir, "SELECT id FROM video") == [(video_id,)]
    assert len(query(var_dir, "SELECT id FROM schedule")) == 1
    assert sample.stat().st_mtime_ns == generated_at, "the recording is not generated again"


def test_demo_refuses_a_bad_length(tmp_path: Path) -> None:
    done = run_app("demo", "--seconds", "0", var_dir=tmp_path / "var")
    assert done.returncode == 2
    assert "--seconds: must be between 1 and 3600 seconds" in done.stderr
    assert not (tmp_path / "var" / "media").exists()


async def test_the_web_server_sets_its_start_up_heap_aside_once_it_is_up() -> None:
    import gc

    import uvicorn
    from starlette.applications import Starlette

    from app import cli

    thresholds = gc.get_threshold()
    server = cli._web_server(
        uvicorn.Config(Starlette(), host="127.0.0.1", port=0, log_config=None, lifespan="off")
    )
    assert gc.get_freeze_count() == 0
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "the server stopped before it started"
                await asyncio.sleep(0.01)
        assert gc.get_freeze_count() > 1000  # modules, classes and functions loaded so far
        assert gc.get_threshold() == cli.GC_THRESHOLDS
        server.should_exit = True
        await asyncio.wait_for(task, 10)
    finally:
        task.cancel()
        gc.unfreeze()
        gc.set_threshold(*thresholds)
