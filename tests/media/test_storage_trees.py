"""Folders of published files in both storage backends: upload order, types, listing, deletion."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from media.storage import (
    KeyNotFound,
    LocalStorage,
    Storage,
    content_type_for,
    tree_files,
)
from tests import s3 as moto

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def make_tree(folder: Path, *, big: bool = False) -> Path:
    (folder / "360p").mkdir(parents=True)
    (folder / "master.m3u8").write_text("#EXTM3U\n360p/index.m3u8\n")
    (folder / "360p" / "index.m3u8").write_text("#EXTM3U\nseg_00000.ts\n")
    (folder / "360p" / "seg_00000.ts").write_bytes(os.urandom(9 * 1024 * 1024 if big else 188))
    (folder / "poster.jpg").write_bytes(b"\xff\xd8\xff")
    (folder / "thumbnails.vtt").write_text("WEBVTT\n")
    return folder


def test_content_types_of_published_files() -> None:
    assert content_type_for("a/master.m3u8") == "application/vnd.apple.mpegurl"
    assert content_type_for("a/seg_00001.ts") == "video/mp2t"
    assert content_type_for("a/seg_00001.m4s") == "video/iso.segment"
    assert content_type_for("a/init.mp4") == "video/mp4"
    assert content_type_for("a/poster.JPG") == "image/jpeg"
    assert content_type_for("a/thumbnails.vtt") == "text/vtt"
    assert content_type_for("a/notes.txt") is None
    assert content_type_for("a/noextension") is None


def test_tree_files_puts_playlists_last_and_the_master_at_the_end(tmp_path: Path) -> None:
    names = [name for name, _ in tree_files(make_tree(tmp_path / "hls"))]
    assert names == [
        "360p/seg_00000.ts",
        "poster.jpg",
        "thumbnails.vtt",
        "360p/index.m3u8",
        "master.m3u8",
    ]


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(root=tmp_path / "media")
    endpoint = request.getfixturevalue("s3_endpoint")
    s3: S3Client = request.getfixturevalue("s3")
    return moto.storage(endpoint, moto.new_bucket(s3), prefix="tenant")


def test_put_tree_list_read_get_and_delete(storage: Storage, tmp_path: Path) -> None:
    keys = storage.put_tree("videos/7/v1/", make_tree(tmp_path / "hls"))
    assert keys[-1] == "videos/7/v1/master.m3u8"
    assert storage.list_keys("videos/7") == sorted(keys)
    assert storage.list_keys("videos/7/v1/360p") == [
        "videos/7/v1/360p/index.m3u8",
        "videos/7/v1/360p/seg_00000.ts",
    ]
    assert storage.read_bytes("videos/7/v1/master.m3u8") == b"#EXTM3U\n360p/index.m3u8\n"
    storage.get_file("videos/7/v1/poster.jpg", tmp_path / "poster.jpg")
    assert (tmp_path / "poster.jpg").read_bytes() == b"\xff\xd8\xff"
    with pytest.raises(KeyNotFound):
        storage.read_bytes("videos/7/v1/nothing.m3u8")
    with pytest.raises(KeyNotFound):
        storage.get_file("videos/7/v1/nothing.ts", tmp_path / "x")

    # A prefix is a folder: deleting videos/7/v1 leaves videos/7/v10 alone.
    storage.put_tree("videos/7/v10", make_tree(tmp_path / "other"))
    assert storage.delete_prefix("videos/7/v1") == 5
    assert storage.list_keys("videos/7/v1") == []
    assert len(storage.list_keys("videos/7/v10")) == 5
    assert storage.delete_prefix("videos/7/v1") == 0
    assert storage.list_keys("nothing/here") == []


def test_local_put_tree_links_without_touching_the_source(tmp_path: Path) -> None:
    storage = LocalStorage(root=tmp_path / "media")
    source = make_tree(tmp_path / "hls")
    storage.put_tree("videos/1/v1", source)
    stored = storage.path("videos/1/v1/360p/seg_00000.ts")
    assert stored.read_bytes() == (source / "360p" / "seg_00000.ts").read_bytes()
    assert not [p for p in stored.parent.iterdir() if p.name.endswith(".partial")]
    # The work folder can go; the published copy stays.
    for path in sorted(source.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    assert stored.is_file()


def test_s3_put_tree_types_and_multipart(s3_endpoint: str, s3: S3Client, tmp_path: Path) -> None:
    bucket = moto.new_bucket(s3)
    storage = moto.storage(s3_endpoint, bucket)
    storage.put_tree("videos/1/v1", make_tree(tmp_path / "hls", big=True))

    def head(key: str) -> tuple[str, str]:
        found = s3.head_object(Bucket=bucket, Key=key)
        return found["ContentType"], found["ETag"]

    assert head("videos/1/v1/master.m3u8")[0] == "application/vnd.apple.mpegurl"
    assert head("videos/1/v1/360p/index.m3u8")[0] == "application/vnd.apple.mpegurl"
    kind, etag = head("videos/1/v1/360p/seg_00000.ts")
    assert kind == "video/mp2t"
    assert etag.strip('"').endswith("-2"), "a large segment goes up in parts"
    assert head("videos/1/v1/poster.jpg")[0] == "image/jpeg"
    assert head("videos/1/v1/thumbnails.vtt")[0] == "text/vtt"
