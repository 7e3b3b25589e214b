"""Tortoise configuration from DATABASE_URL, and start/stop for web, scheduler, CLI and tests."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as tortoise_migrate

from app.settings import Settings, get_settings

APP_LABEL = "encore"
MIGRATIONS_MODULE = "app.migrations"


async def keep_session(connection: Any) -> None:
    """The asyncpg pool's `reset`: nothing to undo on a connection going back to the pool.

    By default the pool sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` to the server every time a connection goes back, that is after every query the
    ORM runs: a round trip per statement, for a join or a registration as much as for the
    statement itself. Encore keeps no state in a database session (no SET, LISTEN, advisory
    locks or cursors: `tests/test_db.py` checks the code for them), and the pool still rolls
    back a transaction left open before this runs.
    """
    del connection


def tortoise_config(database_url: str) -> dict[str, Any]:
    """The Tortoise config dict for one database URL."""
    connection: str | dict[str, Any] = database_url
    if database_url.startswith("sqlite://"):
        path = database_url.removeprefix("sqlite://")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    else:
        connection = expand_db_url(database_url)
        if connection["engine"] == "tortoise.backends.asyncpg":
            connection["credentials"]["reset"] = keep_session
    return {
        "connections": {"default": connection},
        "apps": {
            APP_LABEL: {
                "models": ["app.models"],
                "migrations": MIGRATIONS_MODULE,
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _current_config() -> dict[str, Any]:
    return tortoise_config(get_settings().resolved_database_url)


def __getattr__(name: str) -> Any:
    # `tortoise --config app.db.TORTOISE_ORM makemigrations` reads this attribute.
    if name == "TORTOISE_ORM":
        return _current_config()
    raise AttributeError(name)


async def init_db(settings: Settings | None = None) -> None:
    """Connect the ORM to the configured database (requests in other tasks see it too)."""
    settings = settings or get_settings()
    await Tortoise.init(
        config=tortoise_config(settings.resolved_database_url), _enable_global_fallback=True
    )


async def close_db() -> None:
    """Close every database connection."""
    close_readers()
    await Tortoise.close_connections()


# SQLite files read at once from the event loop's thread: (file, thread) -> connection.
_readers: dict[tuple[str, int], sqlite3.Connection] = {}


def read_now(client: Any, sql: str, values: Sequence[Any]) -> list[Any] | None:
    """The rows of a small read on an SQLite file, read at once; None to read the usual way.

    Tortoise's SQLite client runs each statement in the driver's thread and hands the rows back
    to the event loop: for a read of a few indexed rows that hand-over costs more than the read.
    Here the read runs on its own connection in the calling thread. WAL lets it read while a
    write is under way; should the file be busy all the same (a checkpoint, a recovery), it does
    not wait but returns None, and the caller reads through the ORM's connection. It sees what
    is committed, so it is for reads outside a transaction.
    """
    if client.capabilities.dialect != "sqlite":
        return None
    filename = str(getattr(client, "filename", ""))
    if not filename or filename == ":memory:" or filename.startswith("file::memory:"):
        return None
    key = (filename, threading.get_ident())
    try:
        reader = _readers.get(key)
        if reader is None:
            reader = sqlite3.connect(filename, timeout=0, isolation_level=None)
            reader.execute("PRAGMA query_only = 1")
            _readers[key] = reader
        return reader.execute(sql, values).fetchall()
    except sqlite3.Error:
        return None


def close_readers() -> None:
    """Close the connections `read_now` opened."""
    while _readers:
        _key, reader = _readers.popitem()
        reader.close()


async def migrate(settings: Settings | None = None) -> None:
    """Apply every pending migration, then release the connections it used."""
    settings = settings or get_settings()
    try:
        await tortoise_migrate(config=tortoise_config(settings.resolved_database_url))
    finally:
        await Tortoise.close_connections()


async def ping() -> bool:
    """Whether the database answers a trivial query."""
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
    except Exception:
        return False
    return True
