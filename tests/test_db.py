"""The database configuration: PostgreSQL connections go back to the pool without a reset query."""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from tortoise import Tortoise
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import db
from app.models import Contact
from app.settings import Settings
from tests.conftest import TEST_DATABASE_URL, require

ROOT = Path(__file__).resolve().parent.parent
# SQL that leaves state in a database session, which the pool no longer resets.
SESSION_STATE = re.compile(
    r"""["'(]\s*(SET|RESET|LISTEN|UNLISTEN|DECLARE|PREPARE)\s|pg_advisory_lock|set_config\("""
)


def test_no_code_keeps_state_in_a_database_session() -> None:
    found = []
    for package in ("app", "scheduler", "emails", "media"):
        for path in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if SESSION_STATE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == [], "the pool does not reset sessions (app/db.py keep_session)"


def test_only_postgresql_connections_get_the_pool_setting(tmp_path: Path) -> None:
    sqlite = db.tortoise_config(f"sqlite://{tmp_path / 'x.sqlite3'}")
    assert sqlite["connections"]["default"] == f"sqlite://{tmp_path / 'x.sqlite3'}"
    postgres = db.tortoise_config("postgres://encore:secret@db.internal:5433/encore?maxsize=9")
    default = postgres["connections"]["default"]
    assert default["engine"] == "tortoise.backends.asyncpg"
    assert default["credentials"]["reset"] is db.keep_session
    assert default["credentials"]["host"] == "db.internal"
    assert default["credentials"]["port"] == 5433
    assert default["credentials"]["maxsize"] == "9"  # the URL's own settings are kept


async def _fail_in_a_transaction() -> None:
    async with in_transaction() as transaction:
        await transaction.execute_query("SELECT 2")
        raise RuntimeError("rolled back")


async def test_a_query_is_the_last_thing_its_postgresql_session_ran() -> None:
    require(
        TEST_DATABASE_URL.startswith(("postgres://", "postgresql://")),
        "TEST_DATABASE_URL does not point at PostgreSQL",
    )
    await Tortoise.init(config=db.tortoise_config(TEST_DATABASE_URL))
    try:
        with pytest.raises(RuntimeError):
            await _fail_in_a_transaction()
        marker = f"encore_{uuid.uuid4().hex}"
        connection = Tortoise.get_connection("default")
        for _ in range(3):
            _count, rows = await connection.execute_query(f"SELECT 1 AS {marker}")
            assert rows[0][marker] == 1
        observer = await asyncpg.connect(TEST_DATABASE_URL)
        try:
            last = await observer.fetch(
                "SELECT query, state FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await observer.close()
    finally:
        await Tortoise.close_connections()
    queries = [row["query"] for row in last]
    # Without the setting the pool's reset query would be the last one each session ran.
    assert any(marker in query for query in queries), queries
    assert not any("pg_advisory_unlock_all" in query for query in queries), queries
    assert all(row["state"] == "idle" for row in last), last  # the failed transaction rolled back


async def _two_contacts_with_one_address() -> None:
    async with in_transaction():
        await Contact.create(email="b@example.com", name="B")
        await Contact.create(email="b@example.com", name="B again")


async def test_small_reads_on_sqlite_are_read_at_once_and_see_what_is_committed(
    database: Settings,
) -> None:
    client = Tortoise.get_connection("default")
    sql = "SELECT email FROM contact WHERE email = ?"
    if client.capabilities.dialect != "sqlite":
        assert db.read_now(client, sql, ["a@example.com"]) is None  # read the usual way
        return
    assert db.read_now(client, sql, ["a@example.com"]) == []
    await Contact.create(email="a@example.com", name="A")
    assert db.read_now(client, sql, ["a@example.com"]) == [("a@example.com",)]
    assert db.read_now(client, "SELECT nothing FROM nowhere", []) is None  # an error: the usual way
    with pytest.raises(IntegrityError):  # a transaction that fails is never seen
        await _two_contacts_with_one_address()
    assert db.read_now(client, sql, ["b@example.com"]) == []


async def test_a_busy_sqlite_file_is_not_waited_for(database: Settings) -> None:
    client = Tortoise.get_connection("default")
    if client.capabilities.dialect != "sqlite":
        return
    sql = "SELECT count(*) FROM contact"
    assert db.read_now(client, sql, []) == [(0,)]
    db.close_readers()
    path = database.resolved_database_url.removeprefix("sqlite://")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("CREATE TABLE busy_probe (x)")  # a write: the file is held from here
        started = time.monotonic()
        assert db.read_now(client, sql, []) is None
        assert time.monotonic() - started < 1.0  # not the driver's 5 s busy timeout
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert db.read_now(client, sql, []) == [(0,)]


def test_in_memory_sqlite_is_read_the_usual_way() -> None:
    class Memory:
        class capabilities:  # the shape of a Tortoise client
            dialect = "sqlite"

        filename = ":memory:"

    assert db.read_now(Memory(), "SELECT 1", []) is None
