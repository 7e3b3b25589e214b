"""Caption tracks end to end below the web: storage, rows and a master made by the real pipeline."""

from __future__ import annotations

import hashlib
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from app.models import Caption, Video, VideoState
from app.services import captions, transcoding, videos
from app.services.captions import CaptionInputError
from app.services.videos import PublishedVersion, version_for
from app.settings import Settings
from media import hls
from media.captions import first_segment_uri, mpegts_start, variant_uris
from media.probe import probe
from media.storage import LocalStorage, Storage
from scheduler.transcoder import TranscodeWorker
from tests.media.clips import h264_mp4

SRT = (
    b"1\r\n00:00:01,000 --> 00:00:02,500\r\nHello <b>there</b>\r\n\r\n"
    b"2\r\n00:00:03,000 --> 00:00:04,000\r\nBye\r\n"
)
VTT = b"WEBVTT\n\n00:00:00.500 --> 00:00:02.000\nHallo\n"


@pytest.fixture(scope="module")
def hls_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real published folder: the pipeline's remux of a tiny H.264/AAC clip."""
    folder = tmp_path_factory.mktemp("captions-service")
    source = h264_mp4(folder / "clip.mp4", seconds=3)
    return hls.remux(probe(source, max_duration=60, max_size=10**8), folder / "out").folder


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(root=tmp_path / "media")


async def make_video(storage: LocalStorage, hls_folder: Path, *, publish: bool) -> Video:
    video = await Video.create(title="Talk", source_key="uploads/x/talk.mp4", duration_seconds=3.0)
    if publish:
        version = version_for(video.id, 1)
        storage.put_tree(version.prefix, hls_folder)
        video.hls_key = version.master_key
        await video.save()
    return video


def text(storage: LocalStorage, key: str) -> str:
    return storage.path(key).read_text(encoding="utf-8")


def segment_clock(storage: LocalStorage, master_key: str) -> int:
    uri = variant_uris(text(storage, master_key))[0]
    playlist = storage.path(master_key).parent / uri
    segment = playlist.parent / str(first_segment_uri(playlist.read_text()))
    start = mpegts_start(segment.read_bytes())
    assert start is not None
    return start


async def test_captions_before_publishing_wait_for_the_master(
    database: Settings, storage: LocalStorage, hls_folder: Path
) -> None:
    video = await make_video(storage, hls_folder, publish=False)
    saved = await captions.add_caption(
        video=video, language="en", label="", data=SRT, storage=storage
    )
    assert saved.caption.language == "en"
    assert saved.caption.label == "English"
    assert saved.caption.key == f"videos/{video.id}/captions/en.vtt"
    assert (saved.cues, saved.source_format) == (2, "srt")
    vtt = text(storage, saved.caption.key)
    assert vtt.startswith("WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHello <b>there</b>\n")
    playlist = text(storage, f"videos/{video.id}/captions/en.m3u8")
    digest = hashlib.sha256(vtt.encode()).hexdigest()[:12]
    assert f"\nen.vtt?v={digest}\n" in playlist
    assert "#EXT-X-TARGETDURATION:3\n" in playlist
    assert "#EXTINF:3.000,\n" in playlist
    assert await captions.refresh_master(video=video, storage=storage) is False


async def test_add_replace_and_remove_on_a_published_video(
    database: Settings, storage: LocalStorage, hls_folder: Path
) -> None:
    video = await make_video(storage, hls_folder, publish=True)
    assert video.hls_key is not None
    master_key = video.hls_key
    original = text(storage, master_key)
    clock = segment_clock(storage, master_key)

    await captions.add_caption(
        video=video, language="pt_br", label="Português", data=VTT, storage=storage
    )
    await captions.add_caption(video=video, language="en", label="", data=SRT, storage=storage)
    master = text(storage, master_key)
    assert master.count("#EXT-X-MEDIA:TYPE=SUBTITLES") == 2
    assert (
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",'
        'DEFAULT=NO,AUTOSELECT=YES,URI="../captions/en.m3u8"'
    ) in master
    assert 'NAME="Português",LANGUAGE="pt-BR"' in master
    assert master.index('LANGUAGE="en"') < master.index('LANGUAGE="pt-BR"')
    assert all(
        line.endswith(',SUBTITLES="subs"')
        for line in master.splitlines()
        if line.startswith("#EXT-X-STREAM-INF:")
    )
    # Cue times are tied to the segments' clock, and the playlist names this content.
    vtt = text(storage, f"videos/{video.id}/captions/en.vtt")
    assert vtt.startswith(f"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{clock},LOCAL:00:00:00.000\n\n")
    digest = hashlib.sha256(vtt.encode()).hexdigest()[:12]
    assert f"en.vtt?v={digest}" in text(storage, f"videos/{video.id}/captions/en.m3u8")
    # A second refresh changes nothing.
    assert await captions.refresh_master(video=video, storage=storage) is False
    assert text(storage, master_key) == master

    # Uploading a language again replaces it (one row, new label and content).
    await captions.add_caption(
        video=video, language="EN", label="English (CC)", data=VTT, storage=storage
    )
    rows = await captions.list_captions(video=video)
    assert [(c.language, c.label) for c in rows] == [("en", "English (CC)"), ("pt-BR", "Português")]
    assert 'NAME="English (CC)"' in text(storage, master_key)
    assert "Hallo" in text(storage, f"videos/{video.id}/captions/en.vtt")
    new_digest = re.search(
        r"en\.vtt\?v=(\w+)", text(storage, f"videos/{video.id}/captions/en.m3u8")
    )
    assert new_digest is not None
    assert new_digest.group(1) != digest

    assert await captions.remove_caption(video=video, language="pt-BR", storage=storage)
    assert not storage.exists(f"videos/{video.id}/captions/pt-BR.vtt")
    assert not storage.exists(f"videos/{video.id}/captions/pt-BR.m3u8")
    assert "pt-BR" not in text(storage, master_key)
    assert await captions.remove_caption(video=video, language="pt-BR", storage=storage) is False
    assert (
        await captions.remove_caption(video=video, language="not a tag", storage=storage) is False
    )

    assert await captions.remove_caption(video=video, language="en", storage=storage)
    assert text(storage, master_key) == original
    assert await Caption.filter(video_id=video.id).count() == 0


async def test_a_new_version_gets_the_captions_before_players_switch(
    database: Settings, storage: LocalStorage, hls_folder: Path
) -> None:
    video = await make_video(storage, hls_folder, publish=True)
    await captions.add_caption(video=video, language="de", label="", data=VTT, storage=storage)

    # The transcoder stores a new version, runs its publish hooks, then points the row at it.
    version = version_for(video.id, 2)
    storage.put_tree(version.prefix, hls_folder)
    assert "SUBTITLES" not in text(storage, version.master_key)
    await captions.add_to_version(version, storage)
    master = text(storage, version.master_key)
    assert 'NAME="Deutsch",LANGUAGE="de"' in master
    assert 'URI="../captions/de.m3u8"' in master

    video.hls_key = version.master_key
    await video.save()
    shutil.rmtree(storage.path(version_for(video.id, 1).prefix))
    assert await captions.refresh_master(video=video, storage=storage) is False
    # The caption files live beside the versions, so dropping the old version kept them.
    assert storage.exists(f"videos/{video.id}/captions/de.vtt")


async def test_publish_hook_survives_a_missing_master(
    database: Settings, storage: LocalStorage, hls_folder: Path
) -> None:
    video = await make_video(storage, hls_folder, publish=False)
    await captions.add_caption(video=video, language="de", label="", data=VTT, storage=storage)
    await captions.add_to_version(version_for(video.id, 5), storage)  # logs, does not raise


async def test_a_missing_caption_file_is_left_out(
    database: Settings, storage: LocalStorage, hls_folder: Path
) -> None:
    video = await make_video(storage, hls_folder, publish=True)
    await captions.add_caption(video=video, language="de", label="", data=VTT, storage=storage)
    await captions.add_caption(video=video, language="en", label="", data=SRT, storage=storage)
    storage.delete(f"videos/{video.id}/captions/de.vtt")
    assert await captions.refresh_master(video=video, storage=storage)
    assert video.hls_key is not None
    master = text(storage, video.hls_key)
    assert 'LANGUAGE="en"' in master
    assert 'LANGUAGE="de"' not in master


@pytest.mark.parametrize(
    ("language", "label", "data", "field", "message"),
    [
        ("", "", SRT, "language", "Enter the language"),
        ("klingon", "", SRT, "language", "is not a language tag"),
        ("xx", "", SRT, "language", "is not a known language code"),
        ("en", 'The "best" one', SRT, "label", "double quotes"),
        ("en", "x" * 81, SRT, "label", "up to 80 characters"),
        ("en", "", b"", "file", "The file is empty."),
        ("en", "", b"\x00\xff" * 100, "file", "binary"),
        ("en", "", b"WEBVTT\n\n00:00:05.000 --> 00:00:01.000\nx\n", "file", "Line 3:"),
    ],
)
async def test_bad_input_names_the_field(
    database: Settings,
    storage: LocalStorage,
    hls_folder: Path,
    language: str,
    label: str,
    data: bytes,
    field: str,
    message: str,
) -> None:
    video = await make_video(storage, hls_folder, publish=True)
    assert video.hls_key is not None
    before = text(storage, video.hls_key)
    with pytest.raises(CaptionInputError, match=re.escape(message)) as caught:
        await captions.add_caption(
            video=video, language=language, label=label, data=data, storage=storage
        )
    assert caught.value.field == field
    assert await Caption.all().count() == 0
    assert not storage.exists(f"videos/{video.id}/captions/en.vtt")
    assert text(storage, video.hls_key) == before


async def test_labels_are_unique_per_video(
    database: Settings, storage: LocalStorage, hls_folder: Path
) -> None:
    video = await make_video(storage, hls_folder, publish=True)
    await captions.add_caption(video=video, language="en", label="Main", data=SRT, storage=storage)
    with pytest.raises(CaptionInputError, match="The en captions already use the label 'Main'"):
        await captions.add_caption(
            video=video, language="de", label="  Main ", data=VTT, storage=storage
        )
    # The same language may keep its own label.
    await captions.add_caption(video=video, language="en", label="Main", data=VTT, storage=storage)
    other = await make_video(storage, hls_folder, publish=False)
    await captions.add_caption(video=other, language="de", label="Main", data=VTT, storage=storage)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_transcoder_publishes_every_version_with_its_captions(
    database: Settings, tmp_path: Path
) -> None:
    storage = LocalStorage(root=database.resolved_media_dir)
    clip = h264_mp4(tmp_path / "talk.mp4", seconds=3)
    video = await Video.create(title="Talk", source_key=f"uploads/1/{clip.name}")
    storage.put_file(video.source_key, clip, content_type="video/mp4")
    await captions.add_caption(video=video, language="en", label="", data=SRT, storage=storage)

    seen: list[str] = []

    async def spy(version: PublishedVersion, store: Storage) -> None:
        seen.append(text(storage, version.master_key))

    TranscodeWorker(database)  # the scheduler's worker registers the captions hook
    transcoding.add_publish_hook(spy)  # runs after it, just before players switch
    try:
        claimed = await videos.claim_next(
            videos.utcnow(), stale_after=timedelta(seconds=60), max_attempts=3
        )
        assert claimed is not None
        done = await transcoding.run_transcode(
            claimed.id, storage=storage, workdir=database.var_dir / "work"
        )
    finally:
        transcoding.remove_publish_hook(spy)
        transcoding.remove_publish_hook(captions.add_to_version)
    assert done.state == VideoState.READY, done.error
    assert len(seen) == 2, "a quick version, then the whole ladder"
    assert all('NAME="English",LANGUAGE="en"' in master for master in seen)
    assert done.hls_key is not None
    assert text(storage, done.hls_key) == seen[-1]
    vtt = text(storage, f"videos/{video.id}/captions/en.vtt")
    assert f"X-TIMESTAMP-MAP=MPEGTS:{segment_clock(storage, done.hls_key)}," in vtt
