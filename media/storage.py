"""Where media bytes live: the Storage protocol, local disk (default) and S3 (boto3)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


class StorageError(Exception):
    """A storage operation failed; the message says what and where."""


def clean_key(key: str) -> str:
    """A normalised relative key; refuses absolute paths and `..` so nothing escapes the root."""
    # Check the raw parts: PurePosixPath would silently drop empty and "." parts.
    if not key or key.startswith("/") or any(part in {"", ".", ".."} for part in key.split("/")):
        raise StorageError(f"invalid storage key: {key!r}")
    return str(PurePosixPath(key))


class Storage(Protocol):
    """Bytes stored under keys (relative POSIX paths)."""

    def put_file(self, key: str, source: Path, *, content_type: str) -> None:
        """Store a local file under a key."""

    def exists(self, key: str) -> bool:
        """Whether a key is stored."""

    def delete(self, key: str) -> None:
        """Remove a key if present."""

    def url(self, key: str, *, expires_in: int = 3600) -> str:
        """A URL a browser can fetch the object from."""

    def check(self) -> None:
        """Raise StorageError unless the backend is reachable and writable."""


@dataclass
class LocalStorage:
    """Files under a root folder, served by the app under `url_prefix`."""

    root: Path
    url_prefix: str = "/media"

    def path(self, key: str) -> Path:
        """The file path of a key."""
        return self.root / clean_key(key)

    def put_file(self, key: str, source: Path, *, content_type: str) -> None:
        """Copy a file into the store through a temporary name, so readers never see half."""
        del content_type  # the serving side derives it from the extension
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        partial.replace(target)

    def exists(self, key: str) -> bool:
        """Whether a key is stored."""
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove a key if present."""
        self.path(key).unlink(missing_ok=True)

    def url(self, key: str, *, expires_in: int = 3600) -> str:
        """The app-relative URL of a key."""
        del expires_in
        return f"{self.url_prefix}/{clean_key(key)}"

    def check(self) -> None:
        """Make sure the root exists and is writable."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-check"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise StorageError(f"media folder {self.root} is not writable: {exc}") from exc


@dataclass
class S3Storage:
    """Objects in an S3 bucket (or any S3-compatible server) under an optional prefix."""

    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    public_base_url: str | None = None

    def __post_init__(self) -> None:
        self._client: S3Client = boto3.client(
            "s3",
            region_name=self.region or None,
            endpoint_url=self.endpoint_url or None,
            aws_access_key_id=self.access_key_id or None,
            aws_secret_access_key=self.secret_access_key or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10),
        )

    def _key(self, key: str) -> str:
        prefix = self.prefix.strip("/")
        return f"{prefix}/{clean_key(key)}" if prefix else clean_key(key)

    def put_file(self, key: str, source: Path, *, content_type: str) -> None:
        """Upload a file (boto3 switches to multipart for large files)."""
        try:
            self._client.upload_file(
                str(source), self.bucket, self._key(key), ExtraArgs={"ContentType": content_type}
            )
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise StorageError(f"upload of {key} to s3://{self.bucket} failed: {exc}") from exc

    def exists(self, key: str) -> bool:
        """Whether a key is stored."""
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise StorageError(f"s3://{self.bucket}: {exc}") from exc
        return True

    def delete(self, key: str) -> None:
        """Remove a key if present."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"delete of {key} from s3://{self.bucket} failed: {exc}") from exc

    def url(self, key: str, *, expires_in: int = 3600) -> str:
        """A CDN/public URL when configured, else a presigned GET URL."""
        if self.public_base_url:
            return f"{self.public_base_url.rstrip('/')}/{self._key(key)}"
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        return self._client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_in
        )

    def check(self) -> None:
        """Make sure the bucket answers."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"bucket {self.bucket} is not reachable: {exc}") from exc
