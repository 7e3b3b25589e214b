"""Caption pages over HTTP through the real app: upload, replace, remove, errors, playback."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx
import pytest

from app.models import Caption, Role, Video
from app.services.videos import version_for
from app.settings import Settings
from media import hls
from media.probe import probe
from media.storage import LocalStorage
from tests.conftest import csrf_token, login, make_user
from tests.media.clips import h264_mp4

SRT = b"1\r\n00:00:01,000 --> 00:00:02,000\r\n<font color=red>Hello</font>\r\n"
VTT = b"WEBVTT\n\n00:00:00.500 --> 00:00:02.000\nHallo\n"


@pytest.fixture(scope="module")
def hls_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real HLS folder from the pipeline (a remux of a tiny clip)."""
    folder = tmp_path_factory.mktemp("captions-web")
    source = h264_mp4(folder / "clip.mp4", seconds=2)
    return hls.remux(probe(source, max_duration=60, max_size=10**8), folder / "out").folder


async def editor(client: httpx.AsyncClient) -> str:
    """Sign in as an editor; the CSRF token of the admin pages."""
    await make_user(Role.OWNER)
    user = await make_user(Role.EDITOR, email="editor@example.com")
    assert (await login(client, user.email)).status_code == 303
    return await csrf_token(client, "/admin")


async def upload(
    client: httpx.AsyncClient,
    video: Video,
    token: str,
    data: bytes,
    *,
    language: str = "en",
    label: str = "",
    filename: str = "captions.srt",
    back: str | None = None,
) -> httpx.Response:
    fields = {"csrf_token": token, "language": language, "label": label}
    if back is not None:
        fields["next"] = back
    return await client.post(
        f"/admin/media/{video.id}/captions",
        data=fields,
        files={"file": (filename, data, "application/octet-stream")},
    )


def field_value(page: str, name: str) -> str:
    match = re.search(rf'<input id="caption-{name}" name="{name}"[^>]*value="([^"]*)"', page)
    assert match, f"no {name} field"
    return html.unescape(match.group(1))


async def test_upload_replace_and_remove(client: httpx.AsyncClient, database: Settings) -> None:
    token = await editor(client)
    video = await Video.create(title="Launch talk", source_key="uploads/a/talk.mp4")
    page = await client.get(f"/admin/media/{video.id}/captions")
    assert page.status_code == 200
    assert "No captions yet." in page.text
    assert 'enctype="multipart/form-data"' in page.text

    # From the recording's page (the default), back there.
    response = await upload(client, video, token, SRT, language="pt_br", filename="legendas.txt")
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/media/{video.id}"
    caption = await Caption.get(video_id=video.id)
    assert (caption.language, caption.label) == ("pt-BR", "Português (Brasil)")
    media = database.resolved_media_dir
    stored = (media / caption.key).read_text()
    assert stored.startswith("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nHello\n")

    # From the caption page, back there with a confirmation.
    back = f"/admin/media/{video.id}/captions"
    response = await upload(client, video, token, VTT, language="pt-BR", label="PT", back=back)
    assert response.status_code == 303
    assert response.headers["location"] == f"{back}?saved=pt-BR"
    page = await client.get(response.headers["location"])
    assert "Captions saved: PT (pt-BR)." in page.text
    assert await Caption.filter(video_id=video.id).count() == 1
    assert "Hallo" in (media / caption.key).read_text()

    # Anywhere else is not a place to go back to.
    response = await upload(client, video, token, VTT, language="de", back="https://evil.example/")
    assert response.headers["location"] == f"/admin/media/{video.id}"
    page = await client.get(back)
    assert page.text.index("<strong>Deutsch</strong>") < page.text.index("<strong>PT</strong>")

    german = await Caption.get(video_id=video.id, language="de")
    response = await client.post(
        f"/admin/media/{video.id}/captions/{german.id}/delete",
        data={"csrf_token": token, "next": back},
    )
    assert response.status_code == 303
    assert response.headers["location"] == back
    assert not await Caption.filter(id=german.id).exists()
    assert not (media / german.key).exists()

    again = await client.post(
        f"/admin/media/{video.id}/captions/{german.id}/delete", data={"csrf_token": token}
    )
    assert again.status_code == 404
    assert "Those captions were already removed." in again.text


@pytest.mark.parametrize(
    ("data", "language", "label", "status", "message"),
    [
        (None, "de", "Deutsch", 400, "Choose a WebVTT (.vtt) or SRT (.srt) file."),
        (b"", "de", "Deutsch", 400, "Caption file: The file is empty."),
        (b"\x89PNG\r\n\x1a\n\x00\x00" * 50, "de", "Deutsch", 400, "Caption file: This is a binary"),
        (
            b"1\n00:00:09,000 --> 00:00:01,000\nx\n",
            "de",
            "Deutsch",
            400,
            "Caption file: Line 2: the caption ends (00:00:01.000) before it starts",
        ),
        (b"Meeting notes\n", "de", "Deutsch", 400, "Caption file: This is neither WebVTT nor SRT"),
        (SRT, "deutsch", "Deutsch <3", 400, "Language: &#39;deutsch&#39; is not a language tag."),
        (SRT, "de", 'Say "hi"', 400, "Label: The label cannot contain double quotes"),
        (
            b"WEBVTT\n\n" + b"00:00:01.000 --> 00:00:02.000\nA\n\n" * 40_000,
            "de",
            "Deutsch",
            413,
            "The file is 1,290 KB; caption files can be up to 1 MB (1,024 KB).",
        ),
    ],
    ids=[
        "no file",
        "empty file",
        "binary",
        "bad timing",
        "not captions",
        "language",
        "label",
        "too large",
    ],
)
async def test_refused_uploads_explain_and_keep_what_was_typed(
    client: httpx.AsyncClient,
    database: Settings,
    data: bytes | None,
    language: str,
    label: str,
    status: int,
    message: str,
) -> None:
    token = await editor(client)
    video = await Video.create(title="Talk", source_key="uploads/a/talk.mp4")
    if data is None:
        response = await client.post(
            f"/admin/media/{video.id}/captions",
            data={"csrf_token": token, "language": language, "label": label},
        )
    else:
        response = await upload(client, video, token, data, language=language, label=label)
    assert response.status_code == status
    assert message in response.text
    assert 'role="alert"' in response.text
    assert field_value(response.text, "language") == language
    assert field_value(response.text, "label") == label
    assert await Caption.all().count() == 0


async def test_a_form_over_the_csrf_buffer_is_refused_before_reading(
    client: httpx.AsyncClient, database: Settings
) -> None:
    token = await editor(client)
    video = await Video.create(title="Talk", source_key="uploads/a/talk.mp4")
    response = await upload(client, video, token, b"x" * (3 * 1024 * 1024))
    assert response.status_code == 413
    assert await Caption.all().count() == 0


async def test_unknown_recording(client: httpx.AsyncClient, database: Settings) -> None:
    token = await editor(client)
    assert (await client.get("/admin/media/999/captions")).status_code == 404
    response = await client.post(
        "/admin/media/999/captions", data={"csrf_token": token, "language": "en"}
    )
    assert response.status_code == 404
    response = await client.post("/admin/media/999/captions/1/delete", data={"csrf_token": token})
    assert response.status_code == 404


async def test_the_recording_page_shows_the_captions_partial(
    client: httpx.AsyncClient, database: Settings
) -> None:
    await editor(client)
    video = await Video.create(title="Talk", source_key="uploads/a/talk.mp4")
    page = await client.get(f"/admin/media/{video.id}")
    assert page.status_code == 200
    assert f'action="/admin/media/{video.id}/captions"' in page.text
    assert f'<input type="hidden" name="next" value="/admin/media/{video.id}">' in page.text


async def test_published_captions_are_served_for_players(
    client: httpx.AsyncClient, database: Settings, hls_folder: Path
) -> None:
    token = await editor(client)
    video = await Video.create(title="Talk", source_key="uploads/a/talk.mp4", duration_seconds=2.0)
    version = version_for(video.id, 1)
    LocalStorage(root=database.resolved_media_dir).put_tree(version.prefix, hls_folder)
    video.hls_key = version.master_key
    await video.save()

    assert (await upload(client, video, token, SRT, language="en")).status_code == 303

    master = await client.get(f"/media/{version.master_key}")
    assert master.status_code == 200
    assert 'NAME="English",LANGUAGE="en"' in master.text
    uri = re.search(r'URI="([^"]+)"', master.text)
    assert uri is not None
    playlist_url = httpx.URL(f"http://testserver/media/{version.master_key}").join(uri.group(1))
    playlist = await client.get(playlist_url)
    assert playlist.status_code == 200
    assert playlist.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    segment = next(line for line in playlist.text.splitlines() if line.startswith("en.vtt"))
    vtt = await client.get(playlist_url.join(segment))
    assert vtt.status_code == 200
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:")
    assert "Hello" in vtt.text
