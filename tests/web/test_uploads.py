"""The tus server over HTTP, through the real ASGI app: protocol, ownership, resume and finish."""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.models import Role, StaffUser, Upload, Video, VideoState
from app.services import uploads
from app.settings import Settings, load_settings, use_settings
from scheduler import clock
from tests.conftest import csrf_token, login, make_user
from tests.media.clips import h264_mp4

TUS = "/admin/uploads/tus"
OFFSET_TYPE = "application/offset+octet-stream"


@dataclass
class Staff:
    """An HTTP client signed in as one staff member, with the token its pages carry."""

    http: httpx.AsyncClient
    app: Any
    user: StaffUser
    token: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Tus-Resumable": "1.0.0", "X-CSRF-Token": self.token, **extra}

    async def create(self, size: int, filename: str = "talk.mp4") -> str:
        metadata = f"filename {_b64(filename)},filetype {_b64('video/mp4')}"
        response = await self.http.post(
            TUS, headers=self.headers(**{"Upload-Length": str(size), "Upload-Metadata": metadata})
        )
        assert response.status_code == 201, response.text
        location = response.headers["location"]
        assert location.startswith(f"{TUS}/")
        return location

    async def patch(self, url: str, offset: int, data: bytes) -> httpx.Response:
        return await self.http.patch(
            url,
            content=data,
            headers=self.headers(**{"Upload-Offset": str(offset), "Content-Type": OFFSET_TYPE}),
        )

    async def head(self, url: str) -> httpx.Response:
        return await self.http.head(url, headers=self.headers())

    async def finish(self, url: str) -> httpx.Response:
        upload_id = url.rsplit("/", 1)[1]
        return await self.http.post(
            f"/admin/uploads/{upload_id}/finish", headers=self.headers(Accept="application/json")
        )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def upload_settings(database: Settings) -> Settings:
    """The test settings with a small upload limit (so 413 is cheap to reach)."""
    value = load_settings(
        **{**database.model_dump(), "max_upload_bytes": 5_000_000, "max_video_seconds": 600}
    )
    use_settings(value)
    return value


@pytest.fixture
async def app(upload_settings: Settings) -> AsyncIterator[Any]:
    """The ASGI app with its lifespan running."""
    from app.main import create_app

    instance = create_app(upload_settings, manage_db=False)
    await make_user(Role.OWNER, email="owner@example.com", name="Olivia Owner")
    async with LifespanManager(instance):
        yield instance


async def _signed_in(app: Any, role: Role, email: str) -> Staff:
    user = await make_user(role, email=email, name=email.split("@")[0].title())
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"accept": "text/html"},
    )
    response = await login(http, email)
    assert response.status_code == 303
    return Staff(http=http, app=app, user=user, token=await csrf_token(http, "/admin"))


@pytest.fixture
async def editor(app: Any) -> AsyncIterator[Staff]:
    """An editor (holds MANAGE_MEDIA), signed in."""
    staff = await _signed_in(app, Role.EDITOR, "editor@example.com")
    yield staff
    await staff.http.aclose()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 3 s H.264/AAC recording."""
    return h264_mp4(tmp_path_factory.mktemp("upload-clips") / "clip.mp4").read_bytes()


def _partial(settings: Settings, url: str) -> Path:
    return uploads.partial_path(url.rsplit("/", 1)[1], settings)


def _stored_files(settings: Settings) -> list[Path]:
    root = settings.resolved_media_dir / "uploads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _leftovers(settings: Settings) -> list[Path]:
    folder = uploads.uploads_dir(settings)
    partials = sorted(folder.iterdir()) if folder.exists() else []
    return partials + _stored_files(settings)


# --- protocol ---------------------------------------------------------------------------------


async def test_options_advertises_the_server(editor: Staff, upload_settings: Settings) -> None:
    response = await editor.http.options(TUS)
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-resumable"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) >= {"creation", "termination"}
    assert int(response.headers["tus-max-size"]) == upload_settings.max_upload_bytes


async def test_create_head_patch_in_chunks_and_finish(
    editor: Staff, upload_settings: Settings, clip: bytes
) -> None:
    url = await editor.create(len(clip), "Quarterly review.mp4")
    upload_id = url.rsplit("/", 1)[1]
    assert uploads.is_upload_id(upload_id)
    partial = _partial(upload_settings, url)
    assert partial.parent == upload_settings.var_dir / "uploads"
    assert not partial.is_relative_to(upload_settings.resolved_media_dir)

    head = await editor.head(url)
    assert head.status_code == 200
    assert head.headers["upload-offset"] == "0"
    assert head.headers["upload-length"] == str(len(clip))
    assert head.headers["cache-control"] == "no-store"
    assert head.headers["tus-resumable"] == "1.0.0"

    offset = 0
    for size in (10_000, 25_000, len(clip)):
        chunk = clip[offset : offset + size]
        response = await editor.patch(url, offset, chunk)
        assert response.status_code == 204, response.text
        offset += len(chunk)
        assert response.headers["upload-offset"] == str(offset)
        assert "upload-expires" in response.headers
        assert (await editor.head(url)).headers["upload-offset"] == str(offset)
        if offset == len(clip):
            break
    assert partial.read_bytes() == clip

    finished = await editor.finish(url)
    assert finished.status_code == 200, finished.text
    body = finished.json()
    video = await Video.get(id=body["video_id"])
    assert body["url"] == f"/admin/media/{video.id}"
    assert video.title == "Quarterly review"
    assert video.original_filename == "Quarterly review.mp4"
    assert video.state == VideoState.UPLOADED
    assert video.source_key == f"uploads/{upload_id}/source"
    assert video.size_bytes == len(clip)
    assert video.content_type == "video/mp4"
    assert video.width == 320
    assert video.height == 180
    assert video.duration_seconds is not None
    assert 2.5 < video.duration_seconds < 3.5
    assert video.probe["container"] == "mp4"
    assert "path" not in video.probe
    assert await Video.filter(id=video.id, created_by_id=editor.user.id).exists()
    stored = upload_settings.resolved_media_dir / video.source_key
    assert _sha256(stored.read_bytes()) == _sha256(clip)
    assert not partial.exists()

    # Finishing again answers with the same video; nothing is created twice.
    again = await editor.finish(url)
    assert again.status_code == 200
    assert again.json()["video_id"] == video.id
    assert await Video.all().count() == 1


async def test_offset_mismatch_is_409(editor: Staff) -> None:
    url = await editor.create(1000)
    assert (await editor.patch(url, 0, b"a" * 100)).status_code == 204
    for wrong in (0, 50, 200):
        response = await editor.patch(url, wrong, b"b" * 10)
        assert response.status_code == 409, wrong
        assert response.headers["upload-offset"] == "100"
    assert (await editor.head(url)).headers["upload-offset"] == "100"


async def test_wrong_content_type_is_415(editor: Staff) -> None:
    url = await editor.create(1000)
    for content_type in ("application/octet-stream", "multipart/form-data", ""):
        response = await editor.http.patch(
            url,
            content=b"x" * 10,
            headers=editor.headers(**{"Upload-Offset": "0", "Content-Type": content_type}),
        )
        assert response.status_code == 415, content_type
    assert (await editor.head(url)).headers["upload-offset"] == "0"


async def test_over_the_size_limit_is_413(editor: Staff, upload_settings: Settings) -> None:
    too_big = upload_settings.max_upload_bytes + 1
    response = await editor.http.post(
        TUS, headers=editor.headers(**{"Upload-Length": str(too_big)})
    )
    assert response.status_code == 413
    assert "the limit is 5.0 MB" in response.json()["message"]
    assert await Upload.all().count() == 0

    # More bytes than announced: refused, and nothing past the recorded offset is kept.
    url = await editor.create(100)
    assert (await editor.patch(url, 0, b"a" * 60)).status_code == 204
    assert (await editor.patch(url, 60, b"b" * 41)).status_code == 413

    async def body() -> AsyncIterator[bytes]:  # no Content-Length: caught while streaming
        yield b"c" * 30
        yield b"d" * 30

    response = await editor.http.patch(
        url,
        content=body(),
        headers=editor.headers(**{"Upload-Offset": "60", "Content-Type": OFFSET_TYPE}),
    )
    assert response.status_code == 413
    assert (await editor.head(url)).headers["upload-offset"] == "60"
    assert _partial(upload_settings, url).read_bytes() == b"a" * 60


async def test_missing_or_bad_headers(editor: Staff) -> None:
    response = await editor.http.post(TUS, headers=editor.headers())
    assert response.status_code == 400  # no Upload-Length
    response = await editor.http.post(
        TUS, headers={"X-CSRF-Token": editor.token, "Upload-Length": "10"}
    )
    assert response.status_code == 412  # no Tus-Resumable
    assert response.headers["tus-version"] == "1.0.0"
    response = await editor.http.post(
        TUS, headers=editor.headers(**{"Upload-Length": "10", "Upload-Metadata": "filename ***"})
    )
    assert response.status_code == 400
    response = await editor.http.post(TUS, headers=editor.headers(**{"Upload-Length": "0"}))
    assert response.status_code == 422
    assert response.json()["message"] == "The file is empty."
    url = await editor.create(10)
    response = await editor.http.patch(
        url, content=b"x", headers=editor.headers(**{"Content-Type": OFFSET_TYPE})
    )
    assert response.status_code == 400  # no Upload-Offset
    # Without the CSRF header, nothing changes.
    response = await editor.http.patch(
        url,
        content=b"x",
        headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": OFFSET_TYPE},
    )
    assert response.status_code == 403
    assert (await editor.head(url)).headers["upload-offset"] == "0"


async def test_delete_cancels_and_removes_the_bytes(
    editor: Staff, upload_settings: Settings
) -> None:
    url = await editor.create(1000)
    assert (await editor.patch(url, 0, b"a" * 500)).status_code == 204
    partial = _partial(upload_settings, url)
    assert partial.exists()

    response = await editor.http.delete(url, headers=editor.headers())
    assert response.status_code == 204
    assert not partial.exists()
    assert await Upload.all().count() == 0
    assert (await editor.head(url)).status_code == 404
    assert (await editor.patch(url, 500, b"a")).status_code == 404
    assert (await editor.http.delete(url, headers=editor.headers())).status_code == 404


async def test_another_staff_members_upload_is_404(
    app: Any, editor: Staff, upload_settings: Settings
) -> None:
    url = await editor.create(1000)
    assert (await editor.patch(url, 0, b"a" * 100)).status_code == 204
    other = await _signed_in(app, Role.EDITOR, "another.editor@example.com")
    try:
        assert (await other.head(url)).status_code == 404
        assert (await other.patch(url, 100, b"b" * 10)).status_code == 404
        assert (await other.http.delete(url, headers=other.headers())).status_code == 404
        assert (await other.finish(url)).status_code == 404
    finally:
        await other.http.aclose()
    assert (await editor.head(url)).headers["upload-offset"] == "100"
    assert _partial(upload_settings, url).read_bytes() == b"a" * 100


async def test_anonymous_and_unpermitted_are_refused(app: Any, editor: Staff) -> None:
    url = await editor.create(1000)
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    analyst = await _signed_in(app, Role.ANALYST, "analyst@example.com")
    try:
        token = await csrf_token(anonymous, "/login")
        headers = {"Tus-Resumable": "1.0.0", "X-CSRF-Token": token}
        for method, path in (("OPTIONS", TUS), ("POST", TUS), ("HEAD", url), ("DELETE", url)):
            response = await anonymous.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path)
            if method != "HEAD":
                assert response.json()["error"] == "signed_out"
        response = await anonymous.patch(
            url,
            content=b"x",
            headers={**headers, "Upload-Offset": "0", "Content-Type": OFFSET_TYPE},
        )
        assert response.status_code == 401

        assert (await analyst.head(url)).status_code == 403
        response = await analyst.patch(url, 0, b"x")
        assert response.status_code == 403
        assert "does not allow this" in response.json()["message"]
    finally:
        await anonymous.aclose()
        await analyst.http.aclose()
    assert (await editor.head(url)).headers["upload-offset"] == "0"


# --- resume -----------------------------------------------------------------------------------


async def _interrupted_patch(staff: Staff, url: str, offset: int, data: bytes) -> int:
    """Send a PATCH whose connection drops after `data` (the ASGI disconnect a server sees)."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": data[i : i + 4096], "more_body": True}
        for i in range(0, len(data), 4096)
    ]
    messages.append({"type": "http.disconnect"})
    cookie = "; ".join(f"{name}={value}" for name, value in staff.http.cookies.items())
    headers = {
        **staff.headers(**{"Upload-Offset": str(offset), "Content-Type": OFFSET_TYPE}),
        # The client announced the whole file; only part of it arrives.
        "Content-Length": str(len(data) * 2),
        "Cookie": cookie,
        "Host": "testserver",
    }
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PATCH",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await staff.app(scope, receive, send)
    return status


async def test_an_interrupted_upload_resumes_byte_identical(
    editor: Staff, upload_settings: Settings, clip: bytes
) -> None:
    url = await editor.create(len(clip), "resumed.mp4")
    half = len(clip) // 2

    # The connection drops halfway: what arrived is kept and recorded.
    assert await _interrupted_patch(editor, url, 0, clip[:half]) == 400
    head = await editor.head(url)
    assert head.status_code == 200
    assert head.headers["upload-offset"] == str(half)

    # A crash after writing but before recording leaves extra bytes on disk: they are ignored.
    with _partial(upload_settings, url).open("ab") as handle:
        handle.write(b"garbage written before a crash")
    assert (await editor.head(url)).headers["upload-offset"] == str(half)

    # Finishing early says how far it got, and changes nothing.
    early = await editor.finish(url)
    assert early.status_code == 409
    assert early.json()["offset"] == half

    # The client resumes from the offset the server reports.
    offset = int((await editor.head(url)).headers["upload-offset"])
    response = await editor.patch(url, offset, clip[offset:])
    assert response.status_code == 204
    assert response.headers["upload-offset"] == str(len(clip))

    finished = await editor.finish(url)
    assert finished.status_code == 200, finished.text
    video = await Video.get(id=finished.json()["video_id"])
    stored = (upload_settings.resolved_media_dir / video.source_key).read_bytes()
    assert _sha256(stored) == _sha256(clip)


async def test_a_lost_partial_file_is_resumed_from_what_is_on_disk(
    editor: Staff, upload_settings: Settings, clip: bytes
) -> None:
    url = await editor.create(len(clip))
    assert (await editor.patch(url, 0, clip[:20_000])).status_code == 204
    # The disk lost the tail (the database is ahead of the file): trust the file.
    with _partial(upload_settings, url).open("r+b") as handle:
        handle.truncate(5_000)
    assert (await editor.head(url)).headers["upload-offset"] == "5000"
    assert (await editor.patch(url, 20_000, clip[20_000:])).status_code == 409
    assert (await editor.patch(url, 5_000, clip[5_000:])).status_code == 204
    finished = await editor.finish(url)
    assert finished.status_code == 200, finished.text
    video = await Video.get(id=finished.json()["video_id"])
    assert (upload_settings.resolved_media_dir / video.source_key).read_bytes() == clip


# --- refused files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"Just some notes, renamed to look like a video.\n" * 50, "not_media"),
        (b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n", "playlist"),
    ],
    ids=["text-renamed-mp4", "playlist"],
)
async def test_a_refused_file_creates_no_video_and_leaves_no_bytes(
    editor: Staff, upload_settings: Settings, content: bytes, reason: str
) -> None:
    url = await editor.create(len(content), "innocent.mp4")
    assert (await editor.patch(url, 0, content)).status_code == 204

    response = await editor.finish(url)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == reason
    assert body["message"]
    assert await Video.all().count() == 0
    assert await Upload.all().count() == 0
    assert _leftovers(upload_settings) == []
    assert (await editor.head(url)).status_code == 404


async def test_a_recording_over_the_duration_limit_is_refused(
    editor: Staff, upload_settings: Settings, clip: bytes
) -> None:
    use_settings(load_settings(**{**upload_settings.model_dump(), "max_video_seconds": 1}))
    url = await editor.create(len(clip))
    assert (await editor.patch(url, 0, clip)).status_code == 204
    response = await editor.finish(url)
    assert response.status_code == 422
    assert response.json()["error"] == "too_long"
    assert "the limit is 0:00:01" in response.json()["message"]
    assert await Video.all().count() == 0
    assert _leftovers(upload_settings) == []


# --- expiry -----------------------------------------------------------------------------------


async def test_abandoned_uploads_expire(editor: Staff, upload_settings: Settings) -> None:
    stale = await editor.create(1000)
    fresh = await editor.create(1000)
    assert (await editor.patch(stale, 0, b"a" * 10)).status_code == 204
    stale_id = stale.rsplit("/", 1)[1]
    await Upload.filter(id=stale_id).update(expires_at=uploads.utcnow() - timedelta(minutes=1))
    # A partial file whose row is long gone is swept too.
    stray = uploads.uploads_dir(upload_settings) / f"{'f' * 32}.part"
    stray.write_bytes(b"x")

    assert (await editor.head(stale)).status_code == 404  # expired means gone at once
    # The scheduler's job does the sweeping.
    scheduler = clock.build_scheduler(upload_settings)
    assert "expire_uploads" in {job.id for job in scheduler.get_jobs()}
    await clock.expire_uploads()
    assert await Upload.filter(id=stale_id).count() == 0
    assert stray.exists(), "a stray file is only swept once nothing can be writing it"
    later = uploads.utcnow() + uploads.FINISH_STALE * 2
    await uploads.expire_uploads(now=later)

    assert not _partial(upload_settings, stale).exists()
    assert not stray.exists()
    assert await Upload.filter(id=stale_id).count() == 0
    assert (await editor.head(fresh)).status_code == 200
    assert _partial(upload_settings, fresh).exists()


async def test_a_second_writer_is_told_to_wait(editor: Staff, upload_settings: Settings) -> None:
    url = await editor.create(1000)
    with _partial(upload_settings, url).open("r+b") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)  # another PATCH is receiving
        response = await editor.patch(url, 0, b"a" * 10)
        assert response.status_code == 423
    assert (await editor.patch(url, 0, b"a" * 10)).status_code == 204


async def test_bytes_are_recorded_only_after_they_are_synced(
    app: Any, editor: Staff, upload_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await editor.create(1000)
    assert (await editor.patch(url, 0, b"a" * 100)).status_code == 204

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "simulated disk failure")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    lenient = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
        cookies=editor.http.cookies,
    )
    async with lenient:
        response = await lenient.patch(
            url,
            content=b"b" * 100,
            headers=editor.headers(**{"Upload-Offset": "100", "Content-Type": OFFSET_TYPE}),
        )
    assert response.status_code == 500
    monkeypatch.undo()
    # The write reached the file but was never synced: the offset did not move past it.
    assert (await editor.head(url)).headers["upload-offset"] == "100"
    assert (await editor.patch(url, 100, b"c" * 900)).status_code == 204
    assert _partial(upload_settings, url).read_bytes() == b"a" * 100 + b"c" * 900


async def test_nothing_is_written_after_the_upload_is_finished(
    editor: Staff, upload_settings: Settings, clip: bytes
) -> None:
    url = await editor.create(len(clip))
    assert (await editor.patch(url, 0, clip)).status_code == 204
    assert (await editor.finish(url)).status_code == 200
    response = await editor.patch(url, len(clip), b"")
    assert response.status_code == 409
    assert not _partial(upload_settings, url).exists()
    head = await editor.head(url)
    assert head.headers["upload-offset"] == str(len(clip))
    response = await editor.http.delete(url, headers=editor.headers())
    assert response.status_code == 409
    assert await Video.all().count() == 1
