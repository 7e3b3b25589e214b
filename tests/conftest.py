"""Shared fixtures: settings in a temporary folder, a migrated database, and an HTTP client."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from asgi_lifespan import LifespanManager
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from app import db
from app.models import Role, StaffUser
from app.services import delivery, mail, room, team
from app.settings import Settings, load_settings, use_settings
from app.web import page_cache
from emails import MemoryMailer

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

CI = os.environ.get("CI", "").lower() == "true"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
PASSWORD = "correct horse battery"

_pg_migrated = False
_sqlite_template: Path | None = None


def require(condition: bool, reason: str) -> None:
    """Skip when a tier is missing; fail instead under CI=true, where every tier is required."""
    if condition:
        return
    if CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


def _backends() -> list[str]:
    return ["sqlite", "postgres"]


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL per backend: a fresh SQLite file, or the PostgreSQL test database."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'test.sqlite3'}"
    require(
        TEST_DATABASE_URL.startswith(("postgres://", "postgresql://")),
        "TEST_DATABASE_URL does not point at PostgreSQL",
    )
    return TEST_DATABASE_URL


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for one test, with every runtime file under a temporary folder."""
    value = load_settings(
        var_dir=tmp_path / "var",
        database_url=database_url,
        public_base_url="http://testserver",
        secret_key="test-secret-key-" + "x" * 32,
        smtp_url="",
        redis_url="",
    )
    use_settings(value)
    return value


async def _reset_postgres(url: str) -> None:
    global _pg_migrated
    await Tortoise.init(config=db.tortoise_config(url))
    conn = Tortoise.get_connection("default")
    if not _pg_migrated:
        await conn.execute_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        await Tortoise.close_connections()
        await db.migrate()
        _pg_migrated = True
        return
    rows = await conn.execute_query_dict(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename NOT LIKE 'tortoise_migrations%'"
    )
    tables = ", ".join(f'"{row["tablename"]}"' for row in rows)
    if tables:
        await conn.execute_script(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    await Tortoise.close_connections()


def _copy_template(path: Path) -> bool:
    """Copy the migrated template to `path`; False when there is none yet."""
    if _sqlite_template is None or not _sqlite_template.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_sqlite_template, path)
    return True


def _keep_template(path: Path) -> None:
    global _sqlite_template
    template = Path(tempfile.mkdtemp(prefix="encore-template-")) / "migrated.sqlite3"
    shutil.copyfile(path, template)
    _sqlite_template = template


async def _migrated_sqlite(settings: Settings, path: Path) -> None:
    """A migrated SQLite file: migrated once per run, then copied (migrating takes a second)."""
    if not _copy_template(path):
        await db.migrate(settings)
        _keep_template(path)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Settings]:
    """A migrated, empty database connected for the test."""
    url = settings.resolved_database_url
    # Tortoise caches SQL per connection name; one test run switches dialects, a process never does.
    EXECUTOR_CACHE.clear()
    if url.startswith("sqlite"):
        await _migrated_sqlite(settings, Path(url.removeprefix("sqlite://")))
    else:
        await _reset_postgres(url)
    await db.init_db(settings)
    try:
        yield settings
    finally:
        await db.close_db()


@pytest.fixture(autouse=True)
def fresh_page_cache() -> Iterator[None]:
    """No landing page, room view or sender domain an earlier test made is used by this one."""
    page_cache.forget_all()
    room.forget_all()
    delivery.forget_message_domain()
    yield
    page_cache.forget_all()
    room.forget_all()
    delivery.forget_message_domain()


@pytest.fixture
def mailer() -> Iterator[MemoryMailer]:
    """Capture outgoing mail in memory."""
    memory = MemoryMailer()
    mail.use_mailer(memory)
    yield memory
    mail.use_mailer(None)


@pytest.fixture
async def client(database: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the real ASGI app (lifespan included)."""
    from app.main import create_app

    app = create_app(database, manage_db=False)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"accept": "text/html"},
        ) as http,
    ):
        yield http


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf_token(client: httpx.AsyncClient, page: str = "/login") -> str:
    """The CSRF token a page renders into its forms (as a browser would read it)."""
    response = await client.get(page)
    match = _CSRF.search(response.text)
    assert match, f"no CSRF token on {page} ({response.status_code})"
    return match.group(1)


async def post_form(
    client: httpx.AsyncClient, url: str, data: dict[str, str], *, page: str | None = None
) -> httpx.Response:
    """Submit a form the way a browser does: token from the page, then POST."""
    token = await csrf_token(client, page or url)
    return await client.post(url, data={**data, "csrf_token": token})


async def make_user(
    role: Role = Role.OWNER, *, email: str | None = None, name: str = "Test User"
) -> StaffUser:
    """Create an active staff account with the shared test password."""
    return await team.create_user(
        email=email or f"{role.value}@example.com", name=name, password=PASSWORD, role=role
    )


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    """Sign in with email and password through the real form."""
    return await post_form(client, "/login", {"email": email, "password": password})


# A real S3 endpoint for the tests that ask for one (tests.s3 is imported only then).
@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server in a thread on a free loopback port, shared by a module's tests."""
    from tests import s3 as moto

    with moto.moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Client:
    """A plain boto3 client on the moto server; nothing of this machine's AWS setup leaks in."""
    from tests import s3 as moto

    moto.isolate_aws_env(monkeypatch, tmp_path)
    return moto.client(s3_endpoint)


@pytest.fixture
def bucket(s3: S3Client) -> str:
    """A fresh bucket per test."""
    from tests import s3 as moto

    return moto.new_bucket(s3)
