"""LocalStorage on a temporary folder; S3Storage against a real moto S3 server on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from media.storage import LocalStorage, StorageError, clean_key
from tests import s3 as s3_helpers

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


BAD_KEYS = [
    "",
    ".",
    "..",
    "../escape.mp4",
    "videos/../../escape.mp4",
    "videos/..",
    "/etc/passwd",
    "//server/share",
    "videos//a.mp4",
    "videos/./a.mp4",
    "./a.mp4",
    "videos/",
]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", BAD_KEYS)
def test_clean_key_refuses_escapes_and_empty_parts(key: str) -> None:
    with pytest.raises(StorageError, match="invalid storage key"):
        clean_key(key)


def test_clean_key_accepts_relative_paths() -> None:
    assert clean_key("a.mp4") == "a.mp4"
    assert clean_key("videos/42/hls/720p/seg_001.ts") == "videos/42/hls/720p/seg_001.ts"
    assert clean_key("..hidden/a..b") == "..hidden/a..b"


# --- local ------------------------------------------------------------------------------------


def test_local_put_exists_url_delete(tmp_path: Path) -> None:
    storage = LocalStorage(root=tmp_path / "media")
    source = write(tmp_path / "source.mp4", b"\x00\x01video bytes")

    assert not storage.exists("videos/1/source.mp4")
    storage.put_file("videos/1/source.mp4", source, content_type="video/mp4")

    stored = tmp_path / "media" / "videos" / "1" / "source.mp4"
    assert stored.read_bytes() == b"\x00\x01video bytes"
    assert storage.exists("videos/1/source.mp4")
    assert storage.path("videos/1/source.mp4") == stored
    assert not any(p.name.endswith(".partial") for p in stored.parent.iterdir())
    assert storage.url("videos/1/source.mp4") == "/media/videos/1/source.mp4"
    assert source.exists(), "the source file is copied, not moved"

    # Overwriting replaces the content.
    storage.put_file("videos/1/source.mp4", write(source, b"new"), content_type="video/mp4")
    assert stored.read_bytes() == b"new"

    storage.delete("videos/1/source.mp4")
    assert not storage.exists("videos/1/source.mp4")
    assert not stored.exists()
    storage.delete("videos/1/source.mp4")  # deleting a missing key is not an error


def test_local_url_prefix(tmp_path: Path) -> None:
    storage = LocalStorage(root=tmp_path, url_prefix="/files")
    assert storage.url("a/b.m3u8") == "/files/a/b.m3u8"


@pytest.mark.parametrize("key", BAD_KEYS)
def test_local_refuses_bad_keys(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(root=tmp_path / "media")
    source = write(tmp_path / "source.bin", b"x")
    with pytest.raises(StorageError):
        storage.put_file(key, source, content_type="application/octet-stream")
    with pytest.raises(StorageError):
        storage.exists(key)
    with pytest.raises(StorageError):
        storage.delete(key)
    with pytest.raises(StorageError):
        storage.url(key)
    assert not (tmp_path / "escape.mp4").exists()


def test_local_check_creates_the_root(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet" / "there"
    storage = LocalStorage(root=root)
    storage.check()
    assert root.is_dir()
    assert list(root.iterdir()) == [], "the write probe is removed"


def test_local_check_reports_an_unusable_root(tmp_path: Path) -> None:
    blocker = write(tmp_path / "a-file", b"")
    storage = LocalStorage(root=blocker / "media")
    with pytest.raises(StorageError, match="not writable"):
        storage.check()


# --- S3 against a real moto server ------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server in a thread, listening on a free loopback port."""
    with s3_helpers.moto_server() as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def isolated_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from this machine's AWS configuration reaches the clients."""
    s3_helpers.isolate_aws_env(monkeypatch, tmp_path)


@pytest.fixture
def s3(s3_endpoint: str) -> S3Client:
    """A plain boto3 client on the moto server, to set up and inspect buckets."""
    return s3_helpers.client(s3_endpoint)


@pytest.fixture
def bucket(s3: S3Client) -> str:
    """A fresh bucket per test, so tests sharing the server never see each other's objects."""
    return s3_helpers.new_bucket(s3)


make_storage = s3_helpers.storage


def object_keys(s3: S3Client, bucket: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_s3_put_exists_url_delete(
    s3_endpoint: str, s3: S3Client, bucket: str, tmp_path: Path
) -> None:
    storage = make_storage(s3_endpoint, bucket)
    payload = os.urandom(4096)
    source = write(tmp_path / "seg.ts", payload)

    storage.check()
    assert not storage.exists("videos/1/seg.ts")
    storage.put_file("videos/1/seg.ts", source, content_type="video/mp2t")
    assert storage.exists("videos/1/seg.ts")
    assert object_keys(s3, bucket) == ["videos/1/seg.ts"]
    head = s3.head_object(Bucket=bucket, Key="videos/1/seg.ts")
    assert head["ContentType"] == "video/mp2t"
    assert head["ContentLength"] == len(payload)

    url = storage.url("videos/1/seg.ts", expires_in=300)
    assert url.startswith(f"{s3_endpoint}/{bucket}/videos/1/seg.ts?")
    assert "Signature=" in url or "X-Amz-Signature=" in url
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == payload

    storage.delete("videos/1/seg.ts")
    assert not storage.exists("videos/1/seg.ts")
    assert object_keys(s3, bucket) == []
    storage.delete("videos/1/seg.ts")  # deleting a missing key is not an error


def test_s3_large_file_goes_multipart(
    s3_endpoint: str, s3: S3Client, bucket: str, tmp_path: Path
) -> None:
    storage = make_storage(s3_endpoint, bucket)
    payload = os.urandom(9 * 1024 * 1024)  # over boto3's 8 MiB multipart threshold
    source = write(tmp_path / "big.mp4", payload)

    storage.put_file("uploads/big.mp4", source, content_type="video/mp4")

    head = s3.head_object(Bucket=bucket, Key="uploads/big.mp4")
    assert head["ContentLength"] == len(payload)
    # A multipart upload's ETag ends with the number of parts.
    assert head["ETag"].strip('"').endswith("-2")
    response = httpx.get(storage.url("uploads/big.mp4"), timeout=30)
    assert response.status_code == 200
    assert response.content == payload


def test_s3_prefix(s3_endpoint: str, s3: S3Client, bucket: str, tmp_path: Path) -> None:
    prefixed = make_storage(s3_endpoint, bucket, prefix="/tenant-a/media/")
    bare = make_storage(s3_endpoint, bucket)
    source = write(tmp_path / "a.m3u8", b"#EXTM3U\n")

    prefixed.put_file("hls/a.m3u8", source, content_type="application/vnd.apple.mpegurl")

    assert object_keys(s3, bucket) == ["tenant-a/media/hls/a.m3u8"]
    assert prefixed.exists("hls/a.m3u8")
    assert not bare.exists("hls/a.m3u8")
    assert bare.exists("tenant-a/media/hls/a.m3u8")
    url = prefixed.url("hls/a.m3u8")
    assert url.startswith(f"{s3_endpoint}/{bucket}/tenant-a/media/hls/a.m3u8?")
    assert httpx.get(url, timeout=10).content == b"#EXTM3U\n"

    prefixed.delete("hls/a.m3u8")
    assert object_keys(s3, bucket) == []


def test_s3_public_base_url(s3_endpoint: str, s3: S3Client, bucket: str, tmp_path: Path) -> None:
    # A CDN in front of the bucket; here the bucket's own path-style address stands in for it.
    public = f"{s3_endpoint}/{bucket}/"
    storage = make_storage(s3_endpoint, bucket, prefix="media", public_base_url=public)
    storage.put_file("a.txt", write(tmp_path / "a.txt", b"hello"), content_type="text/plain")
    # Objects behind a public URL are readable without a signature.
    s3.put_object_acl(Bucket=bucket, Key="media/a.txt", ACL="public-read")

    url = storage.url("a.txt", expires_in=60)
    assert url == f"{s3_endpoint}/{bucket}/media/a.txt"
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"hello"


def test_s3_refuses_bad_keys(s3_endpoint: str, s3: S3Client, bucket: str, tmp_path: Path) -> None:
    storage = make_storage(s3_endpoint, bucket, prefix="media")
    source = write(tmp_path / "x", b"x")
    for key in ("../escape", "/abs", "a//b"):
        with pytest.raises(StorageError):
            storage.put_file(key, source, content_type="text/plain")
        with pytest.raises(StorageError):
            storage.url(key)
    assert object_keys(s3, bucket) == []


def test_s3_check_on_a_missing_bucket(s3_endpoint: str) -> None:
    storage = make_storage(s3_endpoint, f"missing-{uuid.uuid4().hex[:12]}")
    with pytest.raises(StorageError, match="is not reachable"):
        storage.check()


def test_s3_upload_to_a_missing_bucket(s3_endpoint: str, tmp_path: Path) -> None:
    storage = make_storage(s3_endpoint, f"missing-{uuid.uuid4().hex[:12]}")
    with pytest.raises(StorageError, match=r"upload of a\.txt"):
        storage.put_file("a.txt", write(tmp_path / "a.txt", b"x"), content_type="text/plain")
