"""Every setting of Encore, read once from the environment (and an optional `.env` file)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it in one line."""


class Settings(BaseSettings):
    """Configuration of one Encore deployment."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    var_dir: Path = Field(default=ROOT / "var", description="Runtime data folder.")
    database_url: str = Field(default="", description="sqlite:///path or postgres://...")
    public_base_url: str = Field(default="", description="Defaults to http://HOST:PORT.")
    secret_key: str = Field(default="", min_length=0)
    trusted_proxies: str = Field(default="127.0.0.1")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    media_backend: Literal["local", "s3"] = "local"
    media_dir: Path | None = None
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_region: str = ""
    s3_endpoint_url: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_public_base_url: str = ""
    media_url_ttl_seconds: int = Field(
        default=12 * 3600, ge=60, le=7 * 24 * 3600, description="Life of presigned media URLs."
    )
    email_interval_seconds: float = Field(
        default=1.0, gt=0, le=300, description="How often the clock sends the emails that are due."
    )
    transcode_interval_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="How often the clock looks for videos to transcode."
    )
    transcode_stale_seconds: float = Field(
        default=120.0, gt=0, description="A transcode without heartbeat this long is taken over."
    )
    transcode_max_attempts: int = Field(
        default=3, ge=1, le=100, description="Claims of one video before it is marked failed."
    )
    max_upload_bytes: int = Field(default=20 * 1024**3, ge=1, description="Largest upload.")
    max_video_seconds: float = Field(default=4 * 3600, gt=0, description="Longest recording.")

    redis_url: str = ""
    # Deployments sharing one Redis server must use different channels.
    redis_channel: str = Field(default="encore", min_length=1, max_length=100)
    smtp_url: str = ""
    mail_from: str = "Encore <encore@localhost>"
    # The DNS server that checks a sender domain's SPF, DKIM and DMARC records, as host:port
    # (an IP address); empty means the system's resolvers.
    dns_nameserver: str = ""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "text"
    session_idle_minutes: int = Field(default=12 * 60, ge=5, le=30 * 24 * 60)
    session_max_days: int = Field(default=14, ge=1, le=365)
    login_max_failures_per_account: int = Field(default=5, ge=1, le=1000)
    login_max_failures_per_ip: int = Field(default=30, ge=1, le=100000)
    login_window_minutes: int = Field(default=15, ge=1, le=24 * 60)
    registrations_per_client_hour: int = Field(
        default=20, ge=1, le=100_000, description="Registration requests per client and hour."
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in {"sqlite", "postgres", "postgresql", "asyncpg"}:
            raise ValueError("must start with sqlite:// or postgres://")
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_base_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("public_base_url"):
            host = data.get("host") or "127.0.0.1"
            port = data.get("port") or 8000
            data = {**data, "public_base_url": f"http://{host}:{port}"}
        return data

    @field_validator("public_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must start with redis:// or rediss://")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in {"smtp", "smtps", "smtp+starttls"} or not parts.hostname:
                raise ValueError("must look like smtp://user:pass@host:port (or smtps://)")
        return value

    @field_validator("dns_nameserver")
    @classmethod
    def _check_dns_nameserver(cls, value: str) -> str:
        if value:
            host, port = split_host_port(value, default_port=53)
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError("must be an IP address with an optional :port") from None
            if not 1 <= port <= 65535:
                raise ValueError("the port must be between 1 and 65535")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for item in (p.strip() for p in value.split(",")):
            if item and item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("must be at least 32 characters (or unset to generate one)")
        return value

    @model_validator(mode="after")
    def _check_s3(self) -> Settings:
        if self.media_backend == "s3" and not self.s3_bucket:
            raise ValueError("S3_BUCKET is required when MEDIA_BACKEND=s3")
        return self

    @property
    def https(self) -> bool:
        """Whether the public base URL is served over TLS."""
        return self.public_base_url.startswith("https://")

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to an SQLite file under the var folder."""
        return self.database_url or f"sqlite://{self.var_dir / 'encore.sqlite3'}"

    @property
    def resolved_media_dir(self) -> Path:
        """Folder of locally stored media."""
        return self.media_dir or self.var_dir / "media"

    @property
    def resolved_secret_key(self) -> str:
        """The secret key; generated once and kept under the var folder when unset."""
        if self.secret_key:
            return self.secret_key
        return _stored_secret(self.var_dir)

    @property
    def trusted_proxy_list(self) -> list[str]:
        """Trusted proxy addresses for forwarded headers."""
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]


def split_host_port(value: str, *, default_port: int) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address as (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    if not port:
        return host, default_port
    if not port.isdigit():
        raise ValueError("the port must be a number")
    return host, int(port)


@lru_cache(maxsize=8)
def _stored_secret(var_dir: Path) -> str:
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # Write a private (0600) temporary file, then link it into place: the link either appears
    # complete or fails because another process won, so two processes starting at once never
    # read a half-written key and always keep the same one.
    fd, partial = tempfile.mkstemp(dir=var_dir, prefix=".secret_key.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        os.link(partial, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        os.unlink(partial)
    return value


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, raising SettingsError with one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "_".join(str(p) for p in first["loc"]).upper() or "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"invalid setting {name}: {message}") from None


_current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    global _current
    if _current is None:
        _current = load_settings()
    return _current


def use_settings(settings: Settings) -> None:
    """Replace the process-wide settings (start-up and tests)."""
    global _current
    _current = settings


def load_or_exit() -> Settings:
    """Settings for a command-line entry point: one clear line and exit status 2 when invalid."""
    import sys

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"encore: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    use_settings(settings)
    return settings
