"""Browser-direct S3 uploads against a real moto S3 server on loopback: no byte passes the app."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.models import Role, Upload, Video, VideoState
from app.services import s3_uploads, uploads
from app.settings import Settings, load_settings, use_settings
from tests import s3 as moto
from tests.conftest import csrf_token, login, make_user
from tests.media.clips import H264, ffmpeg, picture

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MiB = 1024 * 1024
S3 = "/admin/uploads/s3"


@pytest.fixture
def s3_settings(database: Settings, s3_endpoint: str, bucket: str) -> Settings:
    """The test settings with MEDIA_BACKEND=s3 on the moto server."""
    env = moto.settings_env(s3_endpoint, bucket)
    value = load_settings(**{**database.model_dump(), **{k.lower(): v for k, v in env.items()}})
    use_settings(value)
    return value


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """5 MiB parts (S3's minimum) so a small real recording spans several parts."""
    monkeypatch.setattr(s3_uploads, "S3_PART_SIZE", 5 * MiB)
    return 5 * MiB


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 60 s recording of about 11.6 MB (uncompressed sound): three 5 MiB parts."""
    path = tmp_path_factory.mktemp("s3-clips") / "talk.mov"
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=60"]
    ffmpeg(*picture("160x90", 60, 5), *sound, "-ac", "2", *H264, "-c:a", "pcm_s16le",
           "-shortest", str(path))  # fmt: skip
    return path.read_bytes()


@pytest.fixture
async def editor(s3_settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """An editor signed in to the app (ASGI), and the CSRF token its pages carry."""
    from app.main import create_app

    app = create_app(s3_settings, manage_db=False)
    await make_user(Role.OWNER, email="owner@example.com")
    await make_user(Role.EDITOR, email="editor@example.com")
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http,
    ):
        assert (await login(http, "editor@example.com")).status_code == 303
        yield http, await csrf_token(http, "/admin")


def _multipart_uploads(s3: S3Client, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def _objects(s3: S3Client, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


async def _post(
    editor: tuple[httpx.AsyncClient, str], url: str, body: dict[str, Any]
) -> httpx.Response:
    http, token = editor
    return await http.post(url, json=body, headers={"X-CSRF-Token": token})


async def _start(editor: tuple[httpx.AsyncClient, str], data: bytes, name: str) -> dict[str, Any]:
    response = await _post(editor, S3, {"filename": name, "size": len(data), "type": "video/mp4"})
    assert response.status_code == 201, response.text
    started: dict[str, Any] = response.json()
    return started


async def _put_parts(
    editor: tuple[httpx.AsyncClient, str], started: dict[str, Any], data: bytes, numbers: list[int]
) -> dict[int, str]:
    """Sign a batch, then PUT each part straight to S3 as a browser would; the ETags."""
    signed = await _post(editor, f"{S3}/{started['upload_id']}/sign", {"parts": numbers})
    assert signed.status_code == 200, signed.text
    urls = signed.json()["urls"]
    size = started["part_size"]
    etags: dict[int, str] = {}
    async with httpx.AsyncClient(timeout=30) as direct:
        for number in numbers:
            url = urls[str(number)]
            assert "X-Amz-Signature=" in url
            chunk = data[(number - 1) * size : number * size]
            response = await direct.put(url, content=chunk)
            assert response.status_code == 200, response.text
            etags[number] = response.headers["etag"]
    return etags


async def test_parts_go_straight_to_s3_and_become_a_video(
    editor: tuple[httpx.AsyncClient, str],
    s3: S3Client,
    bucket: str,
    s3_settings: Settings,
    small_parts: int,
    recording: bytes,
) -> None:
    http, _ = editor
    started = await _start(editor, recording, "Launch talk.mov")
    upload_id = started["upload_id"]
    assert uploads.is_upload_id(upload_id)
    assert started["key"] == f"uploads/{upload_id}/source"
    assert started["part_size"] == small_parts
    assert started["part_count"] == 3
    assert _multipart_uploads(s3, bucket) == [started["key"]]

    # Two parts, then the page is reloaded: the server says which parts S3 has.
    etags = await _put_parts(editor, started, recording, [1, 2])
    listed = await http.get(f"{S3}/{upload_id}")
    assert listed.status_code == 200
    state = listed.json()
    assert state["filename"] == "Launch talk.mov"
    assert state["size"] == len(recording)
    assert [(p["number"], p["etag"], p["size"]) for p in state["parts"]] == [
        (1, etags[1], small_parts),
        (2, etags[2], small_parts),
    ]

    # Completing without every part is refused and keeps the upload going.
    early = await _post(
        editor,
        f"{S3}/{upload_id}/complete",
        {"parts": [{"number": n, "etag": e} for n, e in etags.items()]},
    )
    assert early.status_code == 409
    assert _multipart_uploads(s3, bucket) == [started["key"]]

    etags |= await _put_parts(editor, started, recording, [3])
    done = await _post(
        editor,
        f"{S3}/{upload_id}/complete",
        {"parts": [{"number": n, "etag": etags[n]} for n in (1, 2, 3)]},
    )
    assert done.status_code == 200, done.text
    video = await Video.get(id=done.json()["video_id"])
    assert video.state == VideoState.UPLOADED
    assert video.source_key == started["key"]
    assert video.title == "Launch talk"
    assert video.content_type == "video/quicktime"
    assert video.size_bytes == len(recording)
    assert video.duration_seconds is not None
    assert 59 < video.duration_seconds < 61

    assert _objects(s3, bucket) == [started["key"]]
    assert _multipart_uploads(s3, bucket) == []
    stored = s3.get_object(Bucket=bucket, Key=started["key"])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(recording).hexdigest()
    # The temporary copy made for the probe is gone.
    assert list(uploads.uploads_dir(s3_settings).glob("*")) == []

    again = await _post(editor, f"{S3}/{upload_id}/complete", {"parts": []})
    assert again.json()["video_id"] == video.id


async def test_abort_drops_the_parts(
    editor: tuple[httpx.AsyncClient, str], s3: S3Client, bucket: str
) -> None:
    http, token = editor
    data = os.urandom(1000)
    started = await _start(editor, data, "x.mp4")
    await _put_parts(editor, started, data, [1])
    assert _multipart_uploads(s3, bucket) == [started["key"]]

    response = await http.delete(f"{S3}/{started['upload_id']}", headers={"X-CSRF-Token": token})
    assert response.status_code == 204
    assert _multipart_uploads(s3, bucket) == []
    assert _objects(s3, bucket) == []
    assert await Upload.all().count() == 0
    assert (await http.get(f"{S3}/{started['upload_id']}")).status_code == 404


async def test_a_refused_file_is_deleted_from_the_bucket(
    editor: tuple[httpx.AsyncClient, str], s3: S3Client, bucket: str
) -> None:
    data = b"#EXTM3U\n#EXTINF:10,\nhttp://169.254.169.254/latest/meta-data\n"
    started = await _start(editor, data, "clip.mp4")
    etags = await _put_parts(editor, started, data, [1])
    response = await _post(
        editor,
        f"{S3}/{started['upload_id']}/complete",
        {"parts": [{"number": 1, "etag": etags[1]}]},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "playlist"
    assert await Video.all().count() == 0
    assert await Upload.all().count() == 0
    assert _objects(s3, bucket) == []
    assert _multipart_uploads(s3, bucket) == []


async def test_requests_are_checked(
    editor: tuple[httpx.AsyncClient, str], s3_settings: Settings, s3: S3Client, bucket: str
) -> None:
    http, token = editor
    too_big = s3_settings.max_upload_bytes + 1
    response = await _post(editor, S3, {"filename": "a.mp4", "size": too_big})
    assert response.status_code == 413
    assert (await _post(editor, S3, {"filename": "a.mp4", "size": "12"})).status_code == 400
    assert (await _post(editor, S3, {"filename": "a.mp4", "size": 0})).status_code == 422
    assert _multipart_uploads(s3, bucket) == []

    started = await _start(editor, b"x" * 10, "a.mp4")
    sign = f"{S3}/{started['upload_id']}/sign"
    for parts in ([], [0], [2], list(range(1, 200)), ["1"]):
        assert (await _post(editor, sign, {"parts": parts})).status_code == 400, parts
    # tus is for local disk only: with S3 the bytes never pass through the app.
    response = await http.post(
        "/admin/uploads/tus",
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10", "X-CSRF-Token": token},
    )
    assert response.status_code == 409


async def test_another_staff_members_upload_is_404(
    editor: tuple[httpx.AsyncClient, str], s3: S3Client, bucket: str
) -> None:
    http, _ = editor
    started = await _start(editor, b"x" * 10, "a.mp4")
    http.cookies.clear()
    await make_user(Role.ADMIN, email="admin@example.com")
    assert (await login(http, "admin@example.com")).status_code == 303
    token = await csrf_token(http, "/admin")
    other = (http, token)
    upload = started["upload_id"]
    assert (await http.get(f"{S3}/{upload}")).status_code == 404
    assert (await _post(other, f"{S3}/{upload}/sign", {"parts": [1]})).status_code == 404
    assert (await _post(other, f"{S3}/{upload}/complete", {"parts": []})).status_code == 404
    response = await http.delete(f"{S3}/{upload}", headers={"X-CSRF-Token": token})
    assert response.status_code == 404
    assert _multipart_uploads(s3, bucket) == [started["key"]]


async def test_abandoned_s3_uploads_expire(
    editor: tuple[httpx.AsyncClient, str], s3: S3Client, bucket: str
) -> None:
    started = await _start(editor, b"x" * 10, "a.mp4")
    await Upload.filter(id=started["upload_id"]).update(
        expires_at=uploads.utcnow() - timedelta(seconds=1)
    )
    assert await uploads.expire_uploads() == 1
    assert _multipart_uploads(s3, bucket) == []
    assert await Upload.all().count() == 0


def test_part_size_grows_only_past_ten_thousand_parts() -> None:
    assert s3_uploads.part_size_for(1) == 16 * MiB
    assert s3_uploads.part_size_for(20 * 1024**3) == 16 * MiB
    big = 200 * 1024**3
    size = s3_uploads.part_size_for(big)
    assert size % MiB == 0
    assert big / size <= 10_000
