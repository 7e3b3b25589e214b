"""Settings: malformed values stop `python -m app` with one clear line; the generated secret key."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.settings import Settings, SettingsError, _stored_secret, load_settings

ROOT = Path(__file__).resolve().parent.parent
SUBPROCESS_TIMEOUT = 120


def clean_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any Encore setting, plus VAR_DIR and `extra`."""
    names = {name.lower() for name in Settings.model_fields}
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in names and not key.startswith(("ENCORE_", "PYTEST_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["VAR_DIR"] = str(var_dir)
    env.update(extra)
    return env


def run_app(*args: str, var_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m app ARGS` in a clean environment from the var folder's parent.

    The working directory holds no `.env` file, so only the given environment counts.
    """
    var_dir.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=var_dir.parent,
        env=clean_env(var_dir, **extra),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("PUBLIC_BASE_URL", "notaurl", "PUBLIC_BASE_URL"),
        ("SECRET_KEY", "tooshort-secret", "SECRET_KEY"),
        ("PORT", "99999", "PORT"),
        ("PORT", "eighty", "PORT"),
        ("MEDIA_BACKEND", "s3", "S3_BUCKET"),
        ("MEDIA_BACKEND", "ftp", "MEDIA_BACKEND"),
        ("TRUSTED_PROXIES", "nonsense", "TRUSTED_PROXIES"),
        ("SMTP_URL", "http://x", "SMTP_URL"),
        ("REDIS_URL", "http://x", "REDIS_URL"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
    ],
)
def test_malformed_setting_exits_2_with_one_line(
    tmp_path: Path, name: str, value: str, named: str
) -> None:
    done = run_app("check", var_dir=tmp_path / "var", **{name: value})

    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("encore: invalid setting"), lines
    assert named in lines[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    if name == "SECRET_KEY":
        assert value not in done.stderr, "a rejected secret is never echoed"


def test_load_settings_raises_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(var_dir=tmp_path, database_url="mysql://x")
    assert str(caught.value) == (
        "invalid setting DATABASE_URL: must start with sqlite:// or postgres://"
    )


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.lower() in {name.lower() for name in Settings.model_fields}:
            monkeypatch.delenv(key)
    settings = load_settings(var_dir=tmp_path / "var")
    assert settings.resolved_database_url == f"sqlite://{tmp_path / 'var' / 'encore.sqlite3'}"
    assert settings.resolved_media_dir == tmp_path / "var" / "media"
    assert settings.media_backend == "local"
    assert settings.port == 8000
    assert settings.public_base_url == "http://127.0.0.1:8000"
    assert settings.trusted_proxy_list == ["127.0.0.1"]
    assert not settings.https


def test_normalised_values(tmp_path: Path) -> None:
    settings = load_settings(
        var_dir=tmp_path,
        public_base_url="https://webinars.example.com/",
        trusted_proxies="10.0.0.0/8, 192.168.1.1 ,",
    )
    assert settings.public_base_url == "https://webinars.example.com"
    assert settings.https
    assert settings.trusted_proxy_list == ["10.0.0.0/8", "192.168.1.1"]


SECRET_SCRIPT = "from app.settings import load_settings; print(load_settings().resolved_secret_key)"


def read_secret(var_dir: Path) -> subprocess.Popen[str]:
    """Start a fresh process that loads the settings and prints the resolved secret key."""
    return subprocess.Popen(
        [sys.executable, "-c", SECRET_SCRIPT],
        cwd=var_dir.parent,
        env=clean_env(var_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    assert process.returncode == 0, err
    return out.strip()


def test_secret_key_is_generated_once_and_reused(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    first = finish(read_secret(var_dir))
    second = finish(read_secret(var_dir))

    assert len(first) >= 32
    assert first == second
    stored = var_dir / "secret_key"
    assert stored.read_text().strip() == first
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert [p.name for p in var_dir.iterdir()] == ["secret_key"], "no temporary files left"


def test_processes_starting_together_agree_on_the_secret(tmp_path: Path) -> None:
    # The web and scheduler processes may both start on an empty var folder.
    var_dir = tmp_path / "var"
    processes = [read_secret(var_dir) for _ in range(6)]
    keys = {finish(process) for process in processes}
    assert len(keys) == 1
    (key,) = keys
    assert len(key) >= 32
    assert (var_dir / "secret_key").read_text().strip() == key


def first_starts_at_once(var_dir: Path, count: int) -> list[str]:
    """The keys `count` threads read when they all start on an empty var folder at once."""
    barrier = threading.Barrier(count)
    keys: list[str] = []

    def first_start() -> None:
        barrier.wait(timeout=10)
        keys.append(_stored_secret.__wrapped__(var_dir))  # past the per-process cache

    threads = [threading.Thread(target=first_start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return keys


def test_concurrent_first_writes_never_read_a_partial_key(tmp_path: Path) -> None:
    # Processes rarely collide within a few microseconds; threads do, so they show the window
    # between creating the file and writing the key.
    for trial in range(20):
        var_dir = tmp_path / f"var{trial}"
        keys = first_starts_at_once(var_dir, 8)
        assert len(keys) == 8
        assert len(set(keys)) == 1, f"trial {trial}: threads disagree on the key"
        assert len(keys[0]) >= 32
        assert [p.name for p in var_dir.iterdir()] == ["secret_key"]


def test_explicit_secret_key_is_used(tmp_path: Path) -> None:
    secret = "k" * 40
    settings = load_settings(var_dir=tmp_path / "var", secret_key=secret)
    assert settings.resolved_secret_key == secret
    assert not (tmp_path / "var" / "secret_key").exists()
