"""Browser tier: a real Encore web process on loopback, driven by a real headless Chromium."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright

from app.settings import ROOT
from tests.conftest import require

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 390, "height": 844}
# Every wait in this tier is bounded: a stuck server or page fails the test instead of hanging it.
ACTION_TIMEOUT_MS = 10_000
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 60.0

# Issues the one-time setup link exactly as a first start does, and prints it.
_SETUP_LINK_SCRIPT = """
import asyncio
from app import db
from app.services import team
from app.settings import load_or_exit

async def main() -> None:
    settings = load_or_exit()
    await db.init_db(settings)
    try:
        link = await team.issue_setup_link()
    finally:
        await db.close_db()
    print(link.url if link else "")

asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class EncoreServer:
    """A running `python -m app web` process on its own SQLite file."""

    base_url: str
    env: dict[str, str]
    workdir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def run(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        """Run a Python command against this server's settings; its standard output."""
        result = subprocess.run(
            [sys.executable, *args],
            env={**self.env, **(extra_env or {})},
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def setup_link(self) -> str:
        """The one-time link that creates the first owner."""
        link = self.run("-c", _SETUP_LINK_SCRIPT).strip()
        assert link.startswith(f"{self.base_url}/setup/"), link
        return link

    def create_owner(self, *, email: str, name: str, password: str) -> None:
        """Create an owner from the terminal, as an operator would."""
        self.run(
            "-m",
            "app",
            "create-owner",
            "--email",
            email,
            "--name",
            name,
            extra_env={"ENCORE_OWNER_PASSWORD": password},
        )

    def log(self) -> str:
        """What the server wrote so far (for failure messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Start the web process and wait until it answers."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "web"],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the web process exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(
            f"the web process did not answer in {START_TIMEOUT_S} s:\n{self.log()}"
        )

    def stop(self) -> None:
        """Stop the web process (politely, then firmly)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment of the web process; a test module overrides this (S3 settings...)."""
    return {}


@pytest.fixture
def server(tmp_path: Path, server_env: dict[str, str]) -> Iterator[EncoreServer]:
    """A migrated, empty Encore web process on a free loopback port (SQLite in tmp_path)."""
    port = _free_port()
    var_dir = tmp_path / "var"
    env = {
        key: value
        for key, value in os.environ.items()
        # Nothing of the caller's deployment may leak in (database, SMTP, Redis, S3 ...).
        if key in {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT"}
    }
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
        PORT=str(port),
        HOST="127.0.0.1",
        VAR_DIR=str(var_dir),
        DATABASE_URL=f"sqlite://{var_dir / 'encore.sqlite3'}",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SECRET_KEY=secrets.token_urlsafe(48),
        LOG_FORMAT="text",
    )
    env.update(server_env)
    var_dir.mkdir()
    # The working folder holds no .env, so a developer's own .env cannot change the server.
    instance = EncoreServer(
        base_url=f"http://127.0.0.1:{port}",
        env=env,
        workdir=tmp_path,
        log_path=tmp_path / "web.log",
    )
    instance.run("-m", "app", "migrate")
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def chromium_path() -> str:
    """The system Chromium (Playwright's own browser builds are never downloaded)."""
    require(os.path.exists(CHROMIUM_PATH), f"no Chromium at {CHROMIUM_PATH} (set CHROMIUM_PATH)")
    return CHROMIUM_PATH


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    """A headless Chromium, closed after the test whatever happens."""
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            await instance.close()


@dataclass
class ConsoleWatch:
    """Console errors and uncaught exceptions of a page (CSP violations are console errors)."""

    errors: list[str] = field(default_factory=list)
    expected: set[tuple[int, str]] = field(default_factory=set)

    def expect_status(self, status: int, url: str) -> None:
        """Announce a page answering with an error status on purpose (a refused form)."""
        self.expected.add((status, url))

    def on_console(self, message: ConsoleMessage) -> None:
        """Keep console errors, except the announced error statuses of whole pages."""
        if message.type != "error":
            return
        url = message.location.get("url", "")
        refused = re.fullmatch(r"Failed to load resource: .* status of (\d{3}) .*", message.text)
        if refused and (int(refused.group(1)), url) in self.expected:
            return
        self.errors.append(f"{message.text} ({url})")

    def on_page_error(self, error: Error) -> None:
        """Keep uncaught exceptions."""
        self.errors.append(f"uncaught: {error.message}")


async def open_page(
    browser: Browser, *, viewport: dict[str, int] | None = None
) -> tuple[Page, ConsoleWatch]:
    """A page in a fresh browser context (own cookies) that records console errors."""
    size = viewport or DESKTOP
    context = await browser.new_context(
        viewport={"width": size["width"], "height": size["height"]}, locale="en-GB"
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = await context.new_page()
    watch = ConsoleWatch()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    return page, watch
