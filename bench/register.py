"""Registrations per second, their latency, a burst, and the landing page against bare baselines.

Usage (from the repository root):
    .venv/bin/python bench/register.py [--backends sqlite,postgres] [--requests 2000]
                                       [--concurrency 32] [--burst 1000] [--seconds 5]

For each database it starts Encore's web process (`python -m app web`, uvicorn, one process) on a
fresh database with the demo webinar, and a bare baseline in the same run: a minimal Starlette
app under uvicorn whose endpoint does one INSERT into a table of the same database through the
same driver and connection settings (Tortoise), and nothing else. Both get the same form posts
from this (separate) process over keep-alive connections:

* closed loop: `--concurrency` clients post `--requests` registrations with distinct emails as
  fast as answered; registrations per second, p50 and p99 latency, errors; goal: Encore reaches
  at least 0.6 of the bare endpoint's rate;
* burst: `--burst` registrations sent at an even pace within one second (open loop, each on its
  own schedule, so a slow server cannot slow the sender down); goal: no errors, p99 < 250 ms;
* landing page: GET /w/<slug> against GET /healthz for `--seconds` each, closed loop; goal: the
  landing page at least at half the rate of /healthz.

PostgreSQL runs need a server (default postgres://postgres@127.0.0.1:5432, database
encore_bench, created and emptied by the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 90
SLUG = "demo-onboarding"
_SESSION = re.compile(r'name="session"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="session"')


# --- the bare baseline: one INSERT per request into the same database --------------------------


def _bare_app() -> object:
    from contextlib import asynccontextmanager as acm

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route
    from tortoise import Tortoise, connections

    url = os.environ["DATABASE_URL"]

    @acm
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await Tortoise.init(
            config={
                "connections": {"default": url},
                "apps": {"encore": {"models": ["app.models"], "default_connection": "default"}},
                "use_tz": True,
                "timezone": "UTC",
            },
            _enable_global_fallback=True,
        )
        await connections.get("default").execute_script(
            "CREATE TABLE IF NOT EXISTS bench_bare ("
            "id INTEGER PRIMARY KEY, email VARCHAR(254) NOT NULL, name VARCHAR(200) NOT NULL, "
            "created_at VARCHAR(40) NOT NULL)"
            if url.startswith("sqlite")
            else "CREATE TABLE IF NOT EXISTS bench_bare (id SERIAL PRIMARY KEY, "
            "email VARCHAR(254) NOT NULL, name VARCHAR(200) NOT NULL, created_at TIMESTAMPTZ)"
        )
        yield
        await Tortoise.close_connections()

    async def register(request: Request) -> Response:
        form = await request.form()
        values = [str(form["email"]), str(form["name"])]
        if url.startswith("sqlite"):
            sql = "INSERT INTO bench_bare (email, name, created_at) VALUES (?, ?, datetime('now'))"
        else:
            sql = "INSERT INTO bench_bare (email, name, created_at) VALUES ($1, $2, now())"
        await connections.get("default").execute_insert(sql, values)
        return Response(status_code=303, headers={"location": "/done"})

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[Route("/register", register, methods=["POST"]), Route("/healthz", healthz)],
        lifespan=lifespan,
    )


# --- servers ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(var_dir: Path, database_url: str, port: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}},
        "PYTHONPATH": str(ROOT),
        "VAR_DIR": str(var_dir),
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SECRET_KEY": "bench-" + secrets.token_urlsafe(40),
        "LOG_LEVEL": "WARNING",
        # The benchmark is one client address: lift the per-client limit for it.
        "REGISTRATIONS_PER_CLIENT_HOUR": "100000",
    }


async def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    import aiohttp

    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the server exited early with {process.returncode}")
            try:
                async with http.get(url) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise SystemExit(f"the server did not answer within {START_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@asynccontextmanager
async def encore_server(folder: Path, database_url: str) -> AsyncIterator[str]:
    """Encore's web process on a migrated database holding the demo webinar."""
    port = _free_port()
    env = _env(folder / "var", database_url, port)
    app = [sys.executable, "-m", "app"]
    for command in (["migrate"], ["demo", "--seconds", "2"]):
        await asyncio.to_thread(
            subprocess.run, [*app, *command], env=env, cwd=folder, check=True, capture_output=True
        )
    process = await asyncio.to_thread(subprocess.Popen, [*app, "web"], env=env, cwd=folder)
    try:
        await _wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


@asynccontextmanager
async def bare_server(folder: Path, database_url: str) -> AsyncIterator[str]:
    """The bare Starlette endpoint under uvicorn, on the same database."""
    port = _free_port()
    env = _env(folder / "var", database_url, port)
    command = [sys.executable, "-m", "uvicorn", "--factory", "--app-dir", str(ROOT / "bench")]
    command += ["register:_bare_app", "--port", str(port), "--log-level", "warning"]
    process = await asyncio.to_thread(subprocess.Popen, command, env=env, cwd=folder)
    try:
        await _wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


# --- load -----------------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one load run measured."""

    done: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return (self.done - self.errors) / self.seconds

    def percentile(self, share: float) -> float:
        """A latency percentile in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _form(prefix: str, number: int, session: str) -> dict[str, str]:
    return {
        "name": f"Bench Visitor {number}",
        "email": f"{prefix}-{number}@example.com",
        "session": session,
        "timezone": "Europe/Berlin",
        "website": "",
    }


async def _post(http: object, url: str, form: dict[str, str]) -> tuple[float, bool]:
    import aiohttp

    assert isinstance(http, aiohttp.ClientSession)
    started = time.perf_counter()
    try:
        async with http.post(url, data=form, allow_redirects=False) as response:
            await response.read()
            ok = response.status in (200, 303)
    except aiohttp.ClientError:
        ok = False
    return time.perf_counter() - started, ok


async def closed_loop(url: str, requests: int, concurrency: int, session: str) -> Figures:
    """`concurrency` clients posting registrations back to back until `requests` are done."""
    import aiohttp

    prefix = secrets.token_hex(4)
    counter = iter(range(requests))
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            nonlocal errors
            for number in counter:
                seconds, ok = await _post(http, url, _form(prefix, number, session))
                latencies.append(seconds)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Figures(requests, errors, elapsed, latencies)


async def burst(url: str, count: int, session: str) -> Figures:
    """`count` registrations sent at an even pace within one second, each on its own schedule."""
    import aiohttp

    prefix = secrets.token_hex(4)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        start = time.perf_counter() + 0.2

        async def one(number: int) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, start + number / count - time.perf_counter()))
            seconds, ok = await _post(http, url, _form(prefix, number, session))
            latencies.append(seconds)
            errors += not ok

        await asyncio.gather(*(one(number) for number in range(count)))
        elapsed = time.perf_counter() - start
    return Figures(count, errors, elapsed, latencies)


async def get_rate(url: str, seconds: float, concurrency: int) -> Figures:
    """GET one URL from `concurrency` clients for `seconds`."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with http.get(url) as response:
                        await response.read()
                        errors += response.status != 200
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Figures(len(latencies), errors, elapsed, latencies)


async def _first_session(base: str) -> str:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/w/{SLUG}?tz=Europe/Berlin") as response,
    ):
        page = await response.text()
    # A scheduled start, not "watch now" (which makes a session of its own per registrant).
    for first, second in _SESSION.findall(page):
        if (first or second) != "now":
            return first or second
    raise SystemExit("the landing page offers no session to register for")


# --- report ---------------------------------------------------------------------------------------


def _line(label: str, figures: Figures) -> str:
    return (
        f"  {label:<34} {figures.rate:9.1f}/s  p50 {figures.percentile(0.5):7.1f} ms  "
        f"p99 {figures.percentile(0.99):7.1f} ms  errors {figures.errors}/{figures.done}"
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


async def run_backend(name: str, database_url: str, args: argparse.Namespace) -> None:
    """Every measurement on one database."""
    print(f"\n{name}")
    with tempfile.TemporaryDirectory(prefix="encore-bench-") as tmp:
        folder = Path(tmp)
        async with encore_server(folder, database_url) as base:
            session = await _first_session(base)
            await closed_loop(f"{base}/w/{SLUG}/register", 50, 8, session)  # warm up
            encore = await closed_loop(
                f"{base}/w/{SLUG}/register", args.requests, args.concurrency, session
            )
            spike = await burst(f"{base}/w/{SLUG}/register", args.burst, session)
            landing = await get_rate(f"{base}/w/{SLUG}?tz=Europe/Berlin", args.seconds, 16)
            health = await get_rate(f"{base}/healthz", args.seconds, 16)
        async with bare_server(folder, database_url) as bare_base:
            await closed_loop(f"{bare_base}/register", 50, 8, session)
            bare = await closed_loop(
                f"{bare_base}/register", args.requests, args.concurrency, session
            )
    print(_line(f"Encore registration (c={args.concurrency})", encore))
    print(_line(f"bare one-INSERT endpoint (c={args.concurrency})", bare))
    ratio = encore.rate / bare.rate
    verdict = _verdict(ratio >= 0.6)
    print(f"  registration rate, Encore / bare: {ratio:.2f}  (goal >= 0.6: {verdict})")
    print(_line(f"burst of {args.burst} in one second", spike))
    burst_ok = spike.errors == 0 and spike.percentile(0.99) < 250
    print(f"  burst: no errors and p99 < 250 ms: {_verdict(burst_ok)}")
    print(_line("landing page", landing))
    print(_line("/healthz", health))
    page_ratio = landing.rate / health.rate
    print(f"  landing / healthz: {page_ratio:.2f}  (goal >= 0.5: {_verdict(page_ratio >= 0.5)})")
    print(f"  median landing latency {statistics.median(landing.latencies) * 1000:.1f} ms")


async def fresh_postgres(server: str, database: str) -> str:
    """An empty database of that name on the server (dropped first if it exists); its URL."""
    import asyncpg

    connection = await asyncpg.connect(f"{server}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()
    return f"{server.replace('postgresql://', 'postgres://')}/{database}"


async def main() -> None:
    """Parse the arguments and run every backend asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--postgres-db", default="encore_bench")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="encore-bench-db-") as tmp:
                await run_backend("SQLite", f"sqlite://{tmp}/encore.sqlite3", args)
        elif backend == "postgres":
            url = await fresh_postgres(args.postgres, args.postgres_db)
            await run_backend("PostgreSQL", url, args)
        else:
            raise SystemExit(f"unknown backend {backend!r}")


if __name__ == "__main__":
    asyncio.run(main())
