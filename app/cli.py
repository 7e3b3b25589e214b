"""The `encore` command line (`python -m app ...`): serve, web, scheduler, migrate and more."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from app import db, logs
from app.settings import Settings, load_or_exit

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
DEMO_SECONDS = 60.0
# The web process collects its youngest generation every 10,000 new objects instead of 700: a
# join or a request leaves a few thousand short-lived ones, which were otherwise promoted and
# walked again by the older generations' collections.
GC_THRESHOLDS = (10_000, 10, 10)


def _demo_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 1 <= seconds <= 3600:
        raise argparse.ArgumentTypeError("must be between 1 and 3600 seconds")
    return seconds


def _banner(lines: list[str]) -> None:
    width = max(len(line) for line in lines) + 4
    print("\n" + "=" * width, file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    print("=" * width + "\n", file=sys.stderr, flush=True)


async def _announce_access(settings: Settings) -> None:
    from app.services import team

    link = await team.issue_setup_link()
    if link is not None:
        _banner(
            [
                "Encore has no owner account yet. Create it with this one-time link:",
                link.url,
                "(or run: python -m app create-owner)",
            ]
        )
    else:
        _banner([f"Encore is running: {settings.public_base_url}/login"])


def _web_server(config: Any) -> Any:
    """The uvicorn server, with the start-up heap set aside from garbage collection once it is up.

    Everything loaded at start (modules, the ORM's metadata, templates, translations) lives as
    long as the process, yet every full collection walks all of it again: with a crowd joining
    a session that was about a tenth of the web process's work. Frozen after start-up, a full
    collection walks only what came later (the connections, requests and their garbage).
    """
    import gc

    import uvicorn

    class WebServer(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                gc.collect()
                gc.freeze()
                gc.set_threshold(*GC_THRESHOLDS)

    return WebServer(config)


def _uvicorn_config(app: Any, settings: Settings) -> Any:
    import uvicorn

    from app.realtime.transport import websocket_protocol

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
        log_config=None,
        server_header=False,
        # uvicorn's WebSocket protocol serving Socket.IO WebSockets itself (app.realtime.transport)
        ws=websocket_protocol(app.sio, answer_now=app.sio.hub.answer_now),
        # Room packets are a few hundred bytes: compressing them costs each connection its own
        # zlib state (more than doubling its memory) and CPU on every message, for little gain.
        ws_per_message_deflate=False,
    )


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Embedded mode: migrate, optionally seed the demo, then web and scheduler in one process."""
    from app.main import create_app
    from scheduler.clock import build_scheduler
    from scheduler.transcoder import TranscodeWorker

    await db.migrate(settings)
    await db.init_db(settings)
    if args.demo:
        await _seed_demo(settings)
    await _announce_access(settings)
    worker = TranscodeWorker(settings)
    scheduler = build_scheduler(settings, worker=worker)
    scheduler.start()
    try:
        server = _web_server(_uvicorn_config(create_app(settings, manage_db=False), settings))
        await server.serve()
    finally:
        scheduler.shutdown(wait=False)
        await worker.join()
        await db.close_db()
    return 0


async def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    """Only the web process (HTTP and Socket.IO)."""
    del args

    from app.main import create_app

    await _web_server(_uvicorn_config(create_app(settings), settings)).serve()
    return 0


async def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    """Only the clock process."""
    del args
    from scheduler.clock import run

    await run(settings)
    return 0


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply pending database migrations."""
    del args
    await db.migrate(settings)
    print("migrations applied", file=sys.stderr)
    return 0


async def cmd_create_owner(settings: Settings, args: argparse.Namespace) -> int:
    """Create an owner account from the terminal."""
    from app.models import Role
    from app.services import team

    email = args.email or (await asyncio.to_thread(input, "Email address: ")).strip()
    name = args.name or (await asyncio.to_thread(input, "Name: ")).strip()
    password = os.environ.get("ENCORE_OWNER_PASSWORD") or ""
    if not password:
        password = await asyncio.to_thread(getpass.getpass, "Password (10+ chars): ")
    await db.migrate(settings)
    await db.init_db(settings)
    try:
        user = await team.create_user(email=email, name=name, password=password, role=Role.OWNER)
    except team.TeamError as exc:
        print(f"encore: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.close_db()
    print(f"owner {user.email} created; sign in at {settings.public_base_url}/login")
    return 0


async def _seed_demo(settings: Settings, *, seconds: float = DEMO_SECONDS) -> None:
    from app.services.demo import ensure_demo
    from app.services.storage import build_storage

    webinar = await ensure_demo(storage=build_storage(settings), seconds=seconds)
    print(f"demo webinar ready: {webinar.title}", file=sys.stderr)


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Seed the demo webinar with a generated sample recording."""
    await db.migrate(settings)
    await db.init_db(settings)
    try:
        await _seed_demo(settings, seconds=args.seconds)
    finally:
        await db.close_db()
    return 0


async def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    """Print the configuration and whether each backing service is reachable."""
    del args
    from app.services.health import check_all, describe_settings

    for key, value in describe_settings(settings):
        print(f"{key:<22} {value}")
    print()
    failures = 0
    for result in await check_all(settings):
        mark = "skip" if result.skipped else ("ok  " if result.ok else "FAIL")
        failures += 0 if result.ok or result.skipped else 1
        print(f"[{mark}] {result.name:<10} {result.detail}")
    return 1 if failures else 0


async def cmd_makemigrations(settings: Settings, args: argparse.Namespace) -> int:
    """Write a new migration from model changes (for developers)."""
    from tortoise.cli.cli import run_cli_async

    del settings
    argv = ["--config", "app.db.TORTOISE_ORM", "makemigrations"]
    if args.name:
        argv += ["--name", args.name]
    return await run_cli_async(argv)


COMMANDS: dict[str, tuple[Command, str]] = {
    "serve": (cmd_serve, "run web and scheduler in one process (embedded mode)"),
    "web": (cmd_web, "run the web process"),
    "scheduler": (cmd_scheduler, "run the scheduler process"),
    "migrate": (cmd_migrate, "apply database migrations"),
    "create-owner": (cmd_create_owner, "create an owner account"),
    "demo": (cmd_demo, "seed the demo webinar"),
    "check": (cmd_check, "print configuration and test every backing service"),
    "makemigrations": (cmd_makemigrations, "write a migration from model changes"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="encore", description="Encore automated webinars")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == "serve":
            command.add_argument("--demo", action="store_true", help="seed the demo webinar")
        if name == "demo":
            command.add_argument(
                "--seconds",
                type=_demo_seconds,
                default=DEMO_SECONDS,
                help=f"length of the generated sample recording (default {DEMO_SECONDS:g})",
            )
        if name == "create-owner":
            command.add_argument("--email")
            command.add_argument("--name")
        if name == "makemigrations":
            command.add_argument("--name")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m app` and the `encore` script."""
    args = build_parser().parse_args(argv)
    settings = load_or_exit()
    logs.configure(settings.log_level, settings.log_format)
    handler, _ = COMMANDS[args.command]
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            code: int = runner.run(handler(settings, args))
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop of uvloop where installed (as uvicorn's own command picks), else None."""
    try:
        import uvloop
    except ImportError:  # not built for every platform: asyncio's own loop then
        return None
    return uvloop.new_event_loop
