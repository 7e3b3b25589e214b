"""The probe on real files: good recordings described; bad and hostile ones refused, and why."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from media import probe as probe_module
from media.probe import ProbeError, ProbeResult, Reason, probe, sniff
from tests.media.clips import aac_m4a, ffmpeg, h264_mp4, picture, tone, vp9_webm

HOUR = 3600.0
GB = 10**9


def accept(path: Path) -> ProbeResult:
    return probe(path, max_duration=HOUR, max_size=GB)


def refuse(
    path: Path,
    *,
    max_duration: float = HOUR,
    max_size: int = GB,
    timeout: float = 60.0,
    memory_bytes: int = 2 * 1024**3,
) -> ProbeError:
    with pytest.raises(ProbeError) as caught:
        probe(
            path,
            max_duration=max_duration,
            max_size=max_size,
            timeout=timeout,
            memory_bytes=memory_bytes,
        )
    error = caught.value
    assert error.message == str(error)
    assert error.message  # always something to show the person who uploaded it
    return error


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of small recordings, made once for the module."""
    folder = tmp_path_factory.mktemp("probe-clips")
    h264_mp4(folder / "h264.mp4")
    h264_mp4(folder / "faststart.mp4", extra=("-movflags", "+faststart"))
    vp9_webm(folder / "vp9.webm")
    aac_m4a(folder / "audio.m4a")
    h264_mp4(folder / "portrait.mp4", size="180x320", seconds=2, audio=False)
    ffmpeg("-display_rotation", "90", "-i", str(folder / "h264.mp4"), "-c", "copy",
           str(folder / "rotated.mp4"))  # fmt: skip
    return folder


def cut_in_half(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def test_h264_aac_mp4_is_described(clips: Path) -> None:
    result = accept(clips / "h264.mp4")

    assert result.container == "mp4"
    assert result.demuxer == "mov"
    assert result.size == (clips / "h264.mp4").stat().st_size
    assert result.duration == pytest.approx(3.0, abs=0.1)
    assert result.bit_rate is not None
    assert result.bit_rate > 0
    assert not result.audio_only
    video, audio = result.video, result.audio
    assert video is not None
    assert audio is not None
    assert (video.codec, video.width, video.height) == ("h264", 320, 180)
    assert (video.rotation, video.fps, video.pix_fmt) == (0, 25.0, "yuv420p")
    assert video.profile is not None
    assert video.bit_rate is not None
    assert video.bit_rate > 0
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", 48000, 1)
    assert audio.bit_rate is not None
    assert audio.bit_rate > 0
    assert result.keyframe_interval is not None


def test_vp9_opus_webm_is_described(clips: Path) -> None:
    result = accept(clips / "vp9.webm")

    assert (result.container, result.demuxer) == ("webm", "matroska")
    assert result.video is not None
    assert result.audio is not None
    assert (result.video.codec, result.audio.codec) == ("vp9", "opus")
    assert result.duration == pytest.approx(3.0, abs=0.1)


def test_audio_only_recording_is_accepted(clips: Path) -> None:
    result = accept(clips / "audio.m4a")

    assert result.audio_only
    assert result.video is None
    assert result.container == "m4a"
    assert result.audio is not None
    assert (result.audio.codec, result.audio.sample_rate) == ("aac", 44100)
    assert result.keyframe_interval is None


def test_portrait_video_keeps_its_shape(clips: Path) -> None:
    video = accept(clips / "portrait.mp4").video
    assert video is not None
    assert (video.width, video.height) == (180, 320)
    assert (video.display_width, video.display_height) == (180, 320)


def test_rotation_is_read_and_applied_to_the_displayed_size(clips: Path) -> None:
    video = accept(clips / "rotated.mp4").video
    assert video is not None
    assert video.rotation in {90, 270}
    assert (video.width, video.height) == (320, 180)
    assert (video.display_width, video.display_height) == (180, 320)


def test_content_decides_not_the_file_name(clips: Path, tmp_path: Path) -> None:
    disguised = tmp_path / "recording.webm"
    disguised.write_bytes((clips / "h264.mp4").read_bytes())
    assert accept(disguised).container == "mp4"


@pytest.mark.parametrize("name", ["h264.mp4", "faststart.mp4", "vp9.webm"])
def test_truncated_file_is_corrupt(clips: Path, tmp_path: Path, name: str) -> None:
    error = refuse(cut_in_half(clips / name, tmp_path / name))
    assert error.reason is Reason.CORRUPT
    assert "damaged or incomplete" in error.message


def test_text_file_renamed_mp4_is_not_media(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("Agenda for the webinar\n1. Welcome\n2. Demo\n" * 20)
    error = refuse(path)
    assert error.reason is Reason.NOT_MEDIA
    assert "not a video" in error.message


def test_image_renamed_mp4_is_not_media(tmp_path: Path) -> None:
    path = tmp_path / "slide.mp4"
    ffmpeg(*picture("64x64", 1), "-frames:v", "1", "-f", "image2", "-c:v", "png", str(path))
    assert refuse(path).reason is Reason.NOT_MEDIA


def _never_opened_fifo(folder: Path) -> Path:
    # Opening a FIFO for reading blocks until a writer comes: were it ever opened, the probe
    # would hang until its timeout instead of answering at once.
    fifo = folder / "secret.mp4"
    os.mkfifo(fifo)
    return fifo


@pytest.mark.parametrize(
    "text",
    [
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n{target}\n#EXT-X-ENDLIST\n",
        "ffconcat version 1.0\nfile '{target}'\n",
        "file '{target}'\n",
    ],
    ids=["m3u8", "ffconcat", "concat-list"],
)
def test_playlists_and_lists_of_files_are_refused_unread(tmp_path: Path, text: str) -> None:
    target = _never_opened_fifo(tmp_path)
    path = tmp_path / "playlist.mp4"
    path.write_text(text.format(target=target))

    started = time.monotonic()
    error = refuse(path, timeout=10)

    assert error.reason is Reason.PLAYLIST
    assert time.monotonic() - started < 5


def test_worker_never_follows_a_playlist_even_if_asked_with_another_demuxer(
    tmp_path: Path,
) -> None:
    target = _never_opened_fifo(tmp_path)
    path = tmp_path / "playlist.mp4"
    path.write_text(f"#EXTM3U\n#EXTINF:4,\n{target}\n#EXT-X-ENDLIST\n")
    facts = probe_module._run_worker(
        path,
        "mov",
        timeout=10,
        cpu_seconds=10,
        memory_bytes=2 * 1024**3,
        decode_seconds=1,
        keyframe_seconds=1,
    )
    assert facts["error"] == "open"


def test_zero_byte_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    error = refuse(path)
    assert error.reason is Reason.EMPTY
    assert error.message == "The file is empty."


def test_longer_than_the_limit_is_too_long(clips: Path) -> None:
    error = refuse(clips / "h264.mp4", max_duration=2.0)
    assert error.reason is Reason.TOO_LONG
    assert error.message == "The recording is 0:00:03 long; the limit is 0:00:02."


def test_larger_than_the_limit_is_too_large(clips: Path) -> None:
    error = refuse(clips / "h264.mp4", max_size=50_000)
    assert error.reason is Reason.TOO_LARGE
    assert "the limit is 50.0 KB" in error.message


def test_lossless_archive_codec_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "archive.mkv"
    ffmpeg(*picture("64x64", 1), "-c:v", "ffv1", str(path))
    error = refuse(path)
    assert error.reason is Reason.UNSUPPORTED_CODEC
    assert "ffv1" in error.message


def test_windows_media_container_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "old.wmv"
    ffmpeg(*picture("64x64", 1), *tone(1), "-c:v", "wmv2", "-c:a", "wmav2", "-f", "asf", str(path))
    error = refuse(path)
    assert error.reason is Reason.UNSUPPORTED_CONTAINER
    assert "ASF/WMV" in error.message


def test_a_probe_that_runs_out_of_time_is_stopped(clips: Path) -> None:
    started = time.monotonic()
    error = refuse(clips / "h264.mp4", timeout=0.01)
    assert error.reason is Reason.CORRUPT
    assert "longer than 0.01 s" in error.detail
    assert time.monotonic() - started < 5


def test_the_probe_runs_under_a_memory_limit(clips: Path) -> None:
    # 64 MiB of address space is too little even to load the decoders: the worker dies, the
    # caller gets a clear refusal instead of a crash.
    error = refuse(clips / "h264.mp4", memory_bytes=64 * 1024**2)
    assert error.reason is Reason.CORRUPT
    assert "probe exited" in error.detail


@pytest.mark.parametrize(
    ("head", "label", "demuxer"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "mp4", "mov"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "mov", "mov"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "m4a", "mov"),
        (b"\x00\x00\x00\x20ftypM4V \x00\x00\x00\x00", "m4v", "mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "webm", "matroska"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "mkv", "matroska"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "avi", "avi"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav", "wav"),
        (b"FLV\x01\x05\x00\x00\x00\x09", "flv", "flv"),
        (b"OggS\x00\x02", "ogg", "ogg"),
        (b"fLaC\x00\x00\x00\x22", "flac", "flac"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "mp3", "mp3"),
        ((b"\x47" + b"\x00" * 187) * 6, "mpegts", "mpegts"),
        ((b"\x00\x00\x00\x00\x47" + b"\x00" * 187) * 6, "mpegts", "mpegts"),
    ],
)
def test_sniff_recognises_allowed_containers(head: bytes, label: str, demuxer: str) -> None:
    container = sniff(head + b"\x00" * 64)
    assert (container.label, container.demuxer) == (label, demuxer)


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"#EXTM3U\n", Reason.PLAYLIST),
        (b"\xef\xbb\xbf#EXTM3U\n", Reason.PLAYLIST),
        (b"<?xml version='1.0'?><MPD>", Reason.PLAYLIST),
        (b"[playlist]\nFile1=http://example.com/a.mp4", Reason.PLAYLIST),
        (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9", Reason.UNSUPPORTED_CONTAINER),
        (b"\x06\x0e\x2b\x34\x02\x05\x01\x01", Reason.UNSUPPORTED_CONTAINER),
        (b"\x00\x00\x01\xba\x44\x00", Reason.UNSUPPORTED_CONTAINER),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", Reason.NOT_MEDIA),
        (b"\x89PNG\r\n\x1a\n", Reason.NOT_MEDIA),
        (b"%PDF-1.7\n", Reason.NOT_MEDIA),
        (b"PK\x03\x04\x14\x00", Reason.NOT_MEDIA),
        (b"\x00" * 64, Reason.NOT_MEDIA),
        (b"", Reason.NOT_MEDIA),
    ],
)
def test_sniff_refuses_everything_else(head: bytes, reason: Reason) -> None:
    with pytest.raises(ProbeError) as caught:
        sniff(head)
    assert caught.value.reason is reason
