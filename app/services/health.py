"""Reachability checks of every backing service, for `encore check`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiosmtplib

from app import db
from app.services.storage import build_storage
from app.settings import Settings
from media import ffmpeg
from media.storage import StorageError


@dataclass(frozen=True)
class CheckResult:
    """One service's status."""

    name: str
    ok: bool
    detail: str
    skipped: bool = False


def _mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def describe_settings(settings: Settings) -> list[tuple[str, str]]:
    """The effective configuration, with secrets masked."""
    return [
        ("PUBLIC_BASE_URL", settings.public_base_url),
        ("DATABASE_URL", _mask(settings.resolved_database_url)),
        ("MEDIA_BACKEND", settings.media_backend),
        (
            "MEDIA_DIR" if settings.media_backend == "local" else "S3_BUCKET",
            str(settings.resolved_media_dir)
            if settings.media_backend == "local"
            else f"{settings.s3_bucket}/{settings.s3_prefix}",
        ),
        ("REDIS_URL", _mask(settings.redis_url) or "(unset: in-memory Socket.IO manager)"),
        ("SMTP_URL", _mask(settings.smtp_url) or "(unset: built-in outbox)"),
        ("SECRET_KEY", "set" if settings.secret_key else f"generated in {settings.var_dir}"),
        ("TRUSTED_PROXIES", settings.trusted_proxies),
    ]


async def _check_database(settings: Settings) -> CheckResult:
    try:
        await db.init_db(settings)
        ok = await db.ping()
    except Exception as exc:
        return CheckResult("database", False, str(exc))
    finally:
        await db.close_db()
    return CheckResult("database", ok, "answers" if ok else "does not answer")


async def _check_ffmpeg() -> CheckResult:
    try:
        line = await asyncio.to_thread(ffmpeg.version)
    except ffmpeg.FfmpegError as exc:
        return CheckResult("ffmpeg", False, str(exc))
    return CheckResult("ffmpeg", True, f"{line} ({ffmpeg.ffmpeg_binary()})")


async def _check_redis(settings: Settings) -> CheckResult:
    if not settings.redis_url:
        return CheckResult("redis", True, "not configured (single process)", skipped=True)
    import redis.asyncio as aioredis

    client = aioredis.from_url(settings.redis_url, socket_connect_timeout=5)
    try:
        await client.ping()
    except Exception as exc:
        return CheckResult("redis", False, str(exc))
    finally:
        await client.aclose()  # type: ignore[attr-defined,unused-ignore]
    return CheckResult("redis", True, "answers PING")


async def _check_smtp(settings: Settings) -> CheckResult:
    if not settings.smtp_url:
        return CheckResult("smtp", True, "not configured (emails go to the outbox)", skipped=True)
    from emails import smtp_mailer_from_url

    mailer = smtp_mailer_from_url(settings.smtp_url)
    client = aiosmtplib.SMTP(
        hostname=mailer.hostname,
        port=mailer.port,
        use_tls=mailer.use_tls,
        start_tls=mailer.start_tls,
        timeout=10,
    )
    try:
        await client.connect()
        if mailer.username and mailer.password:
            await client.login(mailer.username, mailer.password)
        await client.quit()
    except (aiosmtplib.SMTPException, OSError) as exc:
        return CheckResult("smtp", False, str(exc) or type(exc).__name__)
    return CheckResult("smtp", True, f"{mailer.hostname}:{mailer.port} accepts connections")


async def _check_storage(settings: Settings) -> CheckResult:
    try:
        storage = build_storage(settings)
        await asyncio.to_thread(storage.check)
    except StorageError as exc:
        return CheckResult("storage", False, str(exc))
    return CheckResult("storage", True, f"{settings.media_backend} storage is writable/reachable")


async def check_all(settings: Settings) -> list[CheckResult]:
    """Check every service the configuration uses."""
    return [
        await _check_database(settings),
        await _check_ffmpeg(),
        await _check_redis(settings),
        await _check_smtp(settings),
        await _check_storage(settings),
    ]
