"""Where media bytes live: the Storage protocol, local disk (default) and S3 (boto3)."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef


class StorageError(Exception):
    """A storage operation failed; the message says what and where."""


class MultipartError(StorageError):
    """S3 refused to assemble a multipart upload (missing or mismatched parts, unknown upload)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class UploadedPart:
    """One part of a multipart upload as S3 has it."""

    number: int
    etag: str
    size: int


class KeyNotFound(StorageError):
    """The key asked for is not stored."""


CONTENT_TYPES: dict[str, str] = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".vtt": "text/vtt",
}
"""Content types of the files the media pipeline publishes, by extension."""

_UPLOAD_THREADS = 8


def content_type_for(key: str) -> str | None:
    """The Content-Type of a published media file, from its extension; None when unknown."""
    return CONTENT_TYPES.get(PurePosixPath(key).suffix.lower())


def tree_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative key, path) of every file under a folder; playlists last, the top one at the end.

    Uploading in this order means a playlist is only ever visible once what it lists is there.
    """
    files = [
        (path.relative_to(folder).as_posix(), path)
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink()
    ]

    def order(item: tuple[str, Path]) -> tuple[bool, int, str]:
        name = item[0]
        return name.endswith(".m3u8"), -name.count("/"), name

    return sorted(files, key=order)


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

    def put_tree(self, prefix: str, folder: Path) -> list[str]:
        """Store every file of a local folder under a prefix (playlists last); the keys."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under a prefix (a folder: `a/b` never touches `a/bc`); how many."""

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under a prefix, sorted."""

    def get_file(self, key: str, dest: Path) -> None:
        """Copy a stored object to a local file; KeyNotFound if it is not there."""

    def read_bytes(self, key: str) -> bytes:
        """The content of a (small) stored object; KeyNotFound if it is not there."""


def _tree_prefix(prefix: str) -> str:
    return clean_key(prefix.rstrip("/"))


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

    def move_file(self, key: str, source: Path) -> None:
        """Move a local file into the store: a rename on the same file system, else a copy."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise StorageError(f"moving {source.name} to {key} failed: {exc}") from exc
            self.put_file(key, source, content_type="")
            source.unlink()

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

    def put_tree(self, prefix: str, folder: Path) -> list[str]:
        """Link (or copy) a folder's files into the store, each through a temporary name."""
        base = _tree_prefix(prefix)
        keys: list[str] = []
        for name, source in tree_files(folder):
            key = f"{base}/{name}"
            target = self.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            partial.unlink(missing_ok=True)
            try:
                # Same file system (var/work beside var/media): a hard link costs no copy.
                os.link(source, partial)
            except OSError:
                shutil.copyfile(source, partial)
            partial.replace(target)
            keys.append(key)
        return keys

    def delete_prefix(self, prefix: str) -> int:
        """Remove a folder of keys."""
        folder = self.path(_tree_prefix(prefix))
        if not folder.is_dir():
            return 0
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def list_keys(self, prefix: str) -> list[str]:
        """Every stored key under a prefix (files being written are left out)."""
        folder = self.path(_tree_prefix(prefix))
        if not folder.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.endswith(".partial")
        )

    def get_file(self, key: str, dest: Path) -> None:
        """Copy a stored file out."""
        source = self.path(key)
        if not source.is_file():
            raise KeyNotFound(f"{key} is not stored")
        shutil.copyfile(source, dest)

    def read_bytes(self, key: str) -> bytes:
        """Read a stored file."""
        source = self.path(key)
        if not source.is_file():
            raise KeyNotFound(f"{key} is not stored")
        return source.read_bytes()


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
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                # Presigned URLs must be SigV4 (newer regions refuse V2) and name the bucket's
                # regional host, which the CSP allows; S3-compatible servers get path style.
                signature_version="s3v4",
                s3={"addressing_style": "path" if self.endpoint_url else "virtual"},
            ),
        )

    def close(self) -> None:
        """Close the client's pooled connections."""
        self._client.close()

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

    def object_size(self, key: str) -> int | None:
        """The size of a stored object, or None when there is none."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise StorageError(f"s3://{self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"s3://{self.bucket}: {exc}") from exc
        return int(head["ContentLength"])

    def download_to(self, key: str, target: Path) -> None:
        """Copy an object to a local file (streamed in ranged parts); KeyNotFound if missing."""
        self.get_file(key, target)

    # Browser-direct multipart uploads: the app signs, the browser sends the bytes to S3.

    def create_multipart(self, key: str, *, content_type: str) -> str:
        """Start a multipart upload; its upload id."""
        try:
            started = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), ContentType=content_type
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"starting an upload to s3://{self.bucket} failed: {exc}") from exc
        return started["UploadId"]

    def presign_part(self, key: str, upload_id: str, number: int, *, expires_in: int = 3600) -> str:
        """A URL the browser PUTs one part to."""
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "UploadId": upload_id,
            "PartNumber": number,
        }
        return self._client.generate_presigned_url(
            "upload_part", Params=params, ExpiresIn=expires_in
        )

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """The parts S3 has received so far, in order."""
        parts: list[UploadedPart] = []
        marker = 0
        try:
            while True:
                page = self._client.list_parts(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    UploadId=upload_id,
                    PartNumberMarker=marker,
                )
                parts += [
                    UploadedPart(int(p["PartNumber"]), str(p["ETag"]), int(p["Size"]))
                    for p in page.get("Parts", [])
                ]
                if not page.get("IsTruncated"):
                    return parts
                marker = int(page["NextPartNumberMarker"])
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise MultipartError(f"listing parts on s3://{self.bucket}: {exc}", code=code) from exc
        except BotoCoreError as exc:
            raise StorageError(f"listing parts on s3://{self.bucket}: {exc}") from exc

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> None:
        """Assemble the parts (number, ETag) into the object."""
        try:
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]
                },
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise MultipartError(
                f"completing {key} on s3://{self.bucket}: {exc}", code=code
            ) from exc
        except BotoCoreError as exc:
            raise StorageError(f"completing {key} on s3://{self.bucket}: {exc}") from exc

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop a multipart upload and its parts; an unknown upload is not an error."""
        try:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), UploadId=upload_id
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchUpload", "404"}:
                return
            raise StorageError(f"aborting {key} on s3://{self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"aborting {key} on s3://{self.bucket}: {exc}") from exc

    def put_tree(self, prefix: str, folder: Path) -> list[str]:
        """Upload a folder's files in parallel, then its playlists in order (multipart if big)."""
        base = _tree_prefix(prefix)
        files = [(f"{base}/{name}", path) for name, path in tree_files(folder)]
        plain = [item for item in files if not item[0].endswith(".m3u8")]
        playlists = [item for item in files if item[0].endswith(".m3u8")]

        def put(item: tuple[str, Path]) -> None:
            key, path = item
            kind = content_type_for(key) or "application/octet-stream"
            self.put_file(key, path, content_type=kind)

        with ThreadPoolExecutor(max_workers=_UPLOAD_THREADS) as pool:
            # list() re-raises the first failure here.
            list(pool.map(put, plain))
        for item in playlists:
            put(item)
        return [key for key, _ in files]

    def _list(self, prefix: str) -> list[str]:
        """Full object keys (with this store's prefix) under a tree prefix."""
        full = self._key(_tree_prefix(prefix)) + "/"
        found: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                found += [item["Key"] for item in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"listing {prefix} in s3://{self.bucket} failed: {exc}") from exc
        return sorted(found)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under a prefix, a thousand per request."""
        keys = self._list(prefix)
        try:
            for start in range(0, len(keys), 1000):
                batch: list[ObjectIdentifierTypeDef] = [
                    {"Key": key} for key in keys[start : start + 1000]
                ]
                self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"delete of {prefix} from s3://{self.bucket} failed: {exc}") from exc
        return len(keys)

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under a prefix, without this store's own prefix."""
        own = self.prefix.strip("/")
        cut = len(own) + 1 if own else 0
        return [key[cut:] for key in self._list(prefix)]

    def get_file(self, key: str, dest: Path) -> None:
        """Download an object (in ranged parts when large)."""
        try:
            self._client.download_file(self.bucket, self._key(key), str(dest))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                raise KeyNotFound(f"{key} is not stored") from exc
            raise StorageError(f"download of {key} from s3://{self.bucket} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"download of {key} from s3://{self.bucket} failed: {exc}") from exc

    def read_bytes(self, key: str) -> bytes:
        """Fetch a small object whole."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                raise KeyNotFound(f"{key} is not stored") from exc
            raise StorageError(f"read of {key} from s3://{self.bucket} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"read of {key} from s3://{self.bucket} failed: {exc}") from exc
