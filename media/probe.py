"""Validate an uploaded file before it is accepted: what it is, whether it is whole, and its facts.

Nothing in the file is trusted. Its first bytes name the container (the file name never does),
and only containers on the allowlist below are opened, always with that demuxer forced and with
the `file` protocol alone allowed: a playlist (m3u8), a concat list or any other file that points
at further files or URLs is refused before any demuxer sees it. The file is then read in a
separate, short-lived Python process (media/probe_worker.py, PyAV) under a timeout and CPU,
memory and file-size limits, which decodes the first seconds of each stream and reads the end
of the file, so damaged and truncated files are found here rather than halfway through a
transcode.

The container allowlist is what screen recorders, cameras, phones, browsers and editors write:
MP4/MOV/M4V/M4A (QuickTime family), Matroska and WebM, AVI, MPEG-TS, FLV (older OBS default),
Ogg, and for audio-only recordings MP3, WAV and FLAC. Formats seen mostly in broadcast or legacy
archives (MXF, ASF/WMV, RealMedia, MPEG-PS) are refused: each extra demuxer is parser code
that hostile input can reach, for little gain here.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from media.progress import resource_limits

WORKER = Path(__file__).with_name("probe_worker.py")

# fmt: off
VIDEO_CODECS = frozenset({
    "h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "mpeg1video", "h263", "flv1",
    "theora", "mjpeg", "prores", "dnxhd", "qtrle",
})
"""Delivery and camera codecs plus the intermediates editors export; not lossless archival ones."""

AUDIO_CODECS = frozenset({
    "aac", "mp3", "mp2", "opus", "vorbis", "flac", "alac", "ac3", "eac3", "pcm_s16le",
    "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_f32le", "pcm_f32be", "pcm_u8",
    "pcm_alaw", "pcm_mulaw",
})
# fmt: on

# Demuxers whose header states the duration: a file that ends early there was cut short.
_DECLARES_DURATION = frozenset({"mov", "matroska", "avi", "flv"})

_GIB = 1024**3


class Reason(StrEnum):
    """Why a file was refused; stable codes the UI can map to help text."""

    NOT_MEDIA = "not_media"
    PLAYLIST = "playlist"
    UNSUPPORTED_CONTAINER = "unsupported_container"
    UNSUPPORTED_CODEC = "unsupported_codec"
    CORRUPT = "corrupt"
    EMPTY = "empty"
    TOO_LONG = "too_long"
    TOO_LARGE = "too_large"


class ProbeError(Exception):
    """A file was refused: `reason` is a stable code, `message` is for the person who sent it."""

    def __init__(self, reason: Reason, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class Container:
    """A container recognised from its first bytes: a label to show and the demuxer to force."""

    label: str
    demuxer: str


@dataclass(frozen=True)
class VideoStream:
    """The video stream that will be transcoded; `index` is its position in the file."""

    index: int
    codec: str
    profile: str | None
    width: int
    height: int
    rotation: int
    fps: float | None
    pix_fmt: str | None
    bit_rate: int | None
    sample_aspect_ratio: float = 1.0

    @property
    def display_width(self) -> int:
        """Width as shown: pixel aspect ratio and rotation applied."""
        return self._display()[0]

    @property
    def display_height(self) -> int:
        """Height as shown: pixel aspect ratio and rotation applied."""
        return self._display()[1]

    def _display(self) -> tuple[int, int]:
        width = round(self.width * self.sample_aspect_ratio) if self.sample_aspect_ratio else 0
        width = width or self.width
        if self.rotation in (90, 270):
            return self.height, width
        return width, self.height


@dataclass(frozen=True)
class AudioStream:
    """The audio stream that will be transcoded; `index` is its position in the file."""

    index: int
    codec: str
    profile: str | None
    sample_rate: int
    channels: int
    bit_rate: int | None


@dataclass(frozen=True)
class ProbeResult:
    """What an accepted file is; `container` is the label, `demuxer` the format to force."""

    path: Path
    container: str
    demuxer: str
    size: int
    duration: float
    bit_rate: int | None
    video: VideoStream | None
    audio: AudioStream | None
    keyframe_interval: float | None = None

    @property
    def audio_only(self) -> bool:
        """True for a recording without pictures (a still or waveform is used)."""
        return self.video is None


def _is_mpegts(head: bytes, packet: int, offset: int) -> bool:
    starts = range(offset, min(len(head), offset + packet * 5), packet)
    return len(starts) >= 3 and all(head[i] == 0x47 for i in starts)


def _mp4_label(head: bytes) -> str:
    brand = head[8:12] if head[4:8] == b"ftyp" else b""
    if brand in {b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis", b"crx "}:
        raise ProbeError(Reason.NOT_MEDIA, "This is an image, not a video or audio recording.")
    if brand == b"qt  " or head[4:8] in {b"moov", b"wide", b"mdat", b"free"}:
        return "mov"
    if brand.startswith(b"M4A"):
        return "m4a"
    if brand.startswith(b"M4V"):
        return "m4v"
    if brand.startswith(b"3g"):
        return "3gp"
    return "mp4"


_PLAYLIST = (
    "This is a playlist or a list of other files, not a video. Upload the video file itself."
)
_TEXT_REFERENCES = (b"#EXTM3U", b"#EXTINF", b"ffconcat", b"[playlist]", b"<?xml", b"<MPD", b"<smil")
_REFUSED = {
    b"\x30\x26\xb2\x75\x8e\x66\xcf\x11": "ASF/WMV",
    b"\x06\x0e\x2b\x34": "MXF",
    b".RMF": "RealMedia",
    b"\x00\x00\x01\xba": "MPEG program stream",
}
_NOT_MEDIA_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"%PDF", b"PK\x03\x04", b"\x7fELF")


def sniff(head: bytes) -> Container:
    """The container named by a file's first bytes (read at least 1 KiB); ProbeError otherwise."""
    if head[4:8] in {b"ftyp", b"moov", b"mdat", b"wide", b"free"}:
        return Container(_mp4_label(head), "mov")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Container("webm" if b"webm" in head[:64] else "mkv", "matroska")
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return Container("avi", "avi")
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return Container("wav", "wav")
    if head.startswith(b"FLV\x01"):
        return Container("flv", "flv")
    if head.startswith(b"OggS"):
        return Container("ogg", "ogg")
    if head.startswith(b"fLaC"):
        return Container("flac", "flac")
    if _is_mpegts(head, 188, 0) or _is_mpegts(head, 192, 4):
        return Container("mpegts", "mpegts")
    if head.startswith(b"ID3") or (len(head) > 2 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return Container("mp3", "mp3")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(_TEXT_REFERENCES) or text.startswith(b"file ") or b"\nfile " in text:
        raise ProbeError(Reason.PLAYLIST, _PLAYLIST, detail=f"starts with {head[:16]!r}")
    for magic, name in _REFUSED.items():
        if head.startswith(magic):
            raise ProbeError(
                Reason.UNSUPPORTED_CONTAINER,
                f"{name} files are not supported. Please upload MP4, MOV, MKV, WebM, AVI, "
                "MPEG-TS or FLV.",
            )
    detail = f"starts with {head[:16]!r}"
    if head.startswith(_NOT_MEDIA_MAGIC):
        raise ProbeError(Reason.NOT_MEDIA, "This is not a video or audio file.", detail=detail)
    raise ProbeError(
        Reason.NOT_MEDIA,
        "This is not a video or audio file we recognise (we check its content, not its name).",
        detail=detail,
    )


def _clock(seconds: float) -> str:
    whole = math.ceil(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _size(count: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def _corrupt(detail: str) -> ProbeError:
    return ProbeError(
        Reason.CORRUPT,
        "The file is damaged or incomplete; was the upload or the export cut short?",
        detail=detail,
    )


def _run_worker(
    path: Path,
    demuxer: str,
    *,
    timeout: float,
    cpu_seconds: float,
    memory_bytes: int,
    decode_seconds: float,
    keyframe_seconds: float,
) -> dict[str, Any]:
    args = [
        sys.executable,
        "-I",  # no PYTHONPATH, user site or current folder: only the worker and installed packages
        "-B",
        str(WORKER),
        # An explicit file: URL, so a name such as "concat:x" is never read as a protocol.
        f"file:{path.resolve()}",
        demuxer,
        str(decode_seconds),
        str(keyframe_seconds),
    ]
    try:
        done = subprocess.run(  # noqa: S603 - a fixed interpreter and script, no shell
            args,
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env={"LC_ALL": "C.UTF-8"},
            preexec_fn=resource_limits(
                cpu_seconds=cpu_seconds, memory_bytes=memory_bytes, file_bytes=0
            ),
        )
    except subprocess.TimeoutExpired as exc:
        raise _corrupt(f"probe took longer than {timeout:g} s") from exc
    stderr = done.stderr.decode("utf-8", errors="replace").strip()
    if done.returncode != 0:
        tail = "\n".join(stderr.splitlines()[-5:])
        raise _corrupt(f"probe exited with {done.returncode}: {tail}")
    try:
        facts = json.loads(done.stdout)
    except ValueError as exc:
        raise _corrupt(f"probe printed no report: {stderr[-500:]}") from exc
    if not isinstance(facts, dict):
        raise _corrupt("probe printed no report")
    return facts


def _stream(facts: dict[str, Any], key: str) -> dict[str, Any] | None:
    index = facts.get(key)
    if index is None:
        return None
    return next((s for s in facts.get("streams", []) if s.get("index") == index), None)


def _check_codecs(video: dict[str, Any] | None, audio: dict[str, Any] | None) -> None:
    if video is not None and video.get("codec") not in VIDEO_CODECS:
        raise ProbeError(
            Reason.UNSUPPORTED_CODEC,
            f"The video is encoded as {video.get('codec') or 'an unknown codec'}, which is not "
            "supported. Please export it as H.264 (MP4).",
        )
    if audio is not None and audio.get("codec") not in AUDIO_CODECS:
        raise ProbeError(
            Reason.UNSUPPORTED_CODEC,
            f"The sound is encoded as {audio.get('codec') or 'an unknown codec'}, which is not "
            "supported. Please export it with AAC audio.",
        )


def _duration(facts: dict[str, Any], demuxer: str) -> float:
    declared = facts.get("duration")
    end = facts.get("end")
    if end is None:
        raise ProbeError(Reason.EMPTY, "The recording has no length.", detail="no packets")
    if not declared:
        return float(end)
    # Streams end within a frame or two of the declared duration; allow that and then some.
    if demuxer in _DECLARES_DURATION and end < declared - (0.5 + 0.005 * declared):
        raise _corrupt(f"ends at {end:.2f} s of {declared:.2f} s")
    # Elsewhere the declared duration is an estimate (MP3, Ogg, MPEG-TS): what is there counts.
    return float(min(declared, end))


def probe(
    path: Path,
    *,
    max_duration: float,
    max_size: int,
    timeout: float = 60.0,
    cpu_seconds: float = 60.0,
    memory_bytes: int = 2 * _GIB,
    decode_seconds: float = 5.0,
    keyframe_seconds: float = 30.0,
) -> ProbeResult:
    """Check a local file is an acceptable recording and describe it; raise ProbeError if not."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise ProbeError(Reason.NOT_MEDIA, "The file could not be read.", detail=str(exc)) from exc
    if size == 0:
        raise ProbeError(Reason.EMPTY, "The file is empty.")
    if size > max_size:
        raise ProbeError(
            Reason.TOO_LARGE, f"The file is {_size(size)}; the limit is {_size(max_size)}."
        )
    container = sniff(head)
    facts = _run_worker(
        path,
        container.demuxer,
        timeout=timeout,
        cpu_seconds=cpu_seconds,
        memory_bytes=memory_bytes,
        decode_seconds=decode_seconds,
        keyframe_seconds=keyframe_seconds,
    )
    if facts.get("error") == "open":
        raise _corrupt(str(facts.get("detail", "")))
    video, audio = _stream(facts, "video_index"), _stream(facts, "audio_index")
    if video is None and audio is None:
        raise ProbeError(
            Reason.NOT_MEDIA, "This file has neither pictures nor sound.", detail="no streams"
        )
    _check_codecs(video, audio)
    if facts.get("error"):
        raise _corrupt(f"{facts['error']}: {facts.get('detail', '')}")
    decoded = facts.get("decoded_frames", {})
    for stream in (video, audio):
        if stream is not None and not decoded.get(str(stream["index"])):
            raise _corrupt(f"no {stream['type']} frame could be decoded")
    duration = _duration(facts, container.demuxer)
    if duration <= 0:
        raise ProbeError(Reason.EMPTY, "The recording has no length.")
    if duration > max_duration:
        raise ProbeError(
            Reason.TOO_LONG,
            f"The recording is {_clock(duration)} long; the limit is {_clock(max_duration)}.",
        )
    return ProbeResult(
        path=path,
        container=container.label,
        demuxer=container.demuxer,
        size=size,
        duration=round(duration, 3),
        bit_rate=facts.get("bit_rate"),
        video=_video(video, facts) if video is not None else None,
        audio=_audio(audio) if audio is not None else None,
        keyframe_interval=facts.get("keyframe_interval") if video is not None else None,
    )


def _video(stream: dict[str, Any], facts: dict[str, Any]) -> VideoStream:
    rotation = int(facts.get("rotation") or 0) % 360
    return VideoStream(
        index=int(stream["index"]),
        codec=stream["codec"],
        profile=stream.get("profile"),
        width=int(stream["width"]),
        height=int(stream["height"]),
        # Quarter turns only: a display matrix can say 89.99.
        rotation=round(rotation / 90) * 90 % 360,
        fps=stream.get("fps"),
        pix_fmt=stream.get("pix_fmt"),
        bit_rate=stream.get("bit_rate"),
        sample_aspect_ratio=float(stream.get("sample_aspect_ratio") or 1.0),
    )


def _audio(stream: dict[str, Any]) -> AudioStream:
    return AudioStream(
        index=int(stream["index"]),
        codec=stream["codec"],
        profile=stream.get("profile"),
        sample_rate=int(stream.get("sample_rate") or 0),
        channels=int(stream.get("channels") or 0),
        bit_rate=stream.get("bit_rate"),
    )
