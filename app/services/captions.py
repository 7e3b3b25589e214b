"""Caption tracks of a video: checked, stored as WebVTT, and listed in its master playlist.

Each language is one Caption row and two files beside the video's versions:
`videos/<id>/captions/<lang>.vtt` and its subtitle playlist `<lang>.m3u8`. They live outside
the `v<n>` version folders, so publishing a new version neither copies nor deletes them; the
master playlist of whichever version is published names them (`../captions/<lang>.m3u8`).

`refresh_master` makes the published master list exactly the stored tracks, and sets each
.vtt file's X-TIMESTAMP-MAP to the published segments' clock. It runs after every caption
change; `add_to_version` does the same for a version about to be published (a publish hook of
app.services.transcoding), so a new version never plays without its captions.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import posixpath
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tortoise.exceptions import IntegrityError

from app.models import Caption, Video
from app.services.videos import PublishedVersion, published_version, video_prefix
from media.captions import (
    MAX_BYTES,
    CaptionError,
    SubtitleTrack,
    first_segment_uri,
    language_name,
    mpegts_start,
    normalize_language,
    parse_captions,
    rewrite_master,
    subtitle_playlist,
    variant_uris,
    with_timestamp_map,
)
from media.storage import KeyNotFound, Storage, clean_key

log = logging.getLogger("encore.captions")

MAX_CAPTION_BYTES = MAX_BYTES
MAX_LABEL_LENGTH = 80
VTT_TYPE = "text/vtt; charset=utf-8"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"

_LABEL_FORBIDDEN = re.compile(r'["\x00-\x1f\x7f]')


class CaptionInputError(ValueError):
    """Input the person can fix; `field` names the form field it concerns."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SavedCaption:
    """What add_caption stored: the row, how many cues, and what was left out of the file."""

    caption: Caption
    cues: int
    source_format: str
    dropped: tuple[str, ...]


def captions_prefix(video_id: int) -> str:
    """The storage folder of a video's caption files."""
    return f"{video_prefix(video_id)}/captions"


def vtt_key(video_id: int, language: str) -> str:
    """Where the WebVTT file of one language is stored."""
    return clean_key(f"{captions_prefix(video_id)}/{language}.vtt")


def playlist_key(caption_key: str) -> str:
    """The subtitle playlist stored beside a .vtt file."""
    return caption_key.removesuffix(".vtt") + ".m3u8"


def check_language(value: str) -> str:
    """A language tag in canonical form, or CaptionInputError."""
    if not value.strip():
        raise CaptionInputError("Enter the language, such as en, de or pt-BR.", field="language")
    try:
        return normalize_language(value)
    except CaptionError as exc:
        raise CaptionInputError(str(exc), field="language") from exc


def check_label(value: str, language: str) -> str:
    """The label shown in players' caption menus (the language's name when empty)."""
    label = " ".join(value.split())
    if not label:
        return language_name(language)
    if len(label) > MAX_LABEL_LENGTH:
        raise CaptionInputError(
            f"The label can be up to {MAX_LABEL_LENGTH} characters long.", field="label"
        )
    if _LABEL_FORBIDDEN.search(label):
        raise CaptionInputError('The label cannot contain double quotes (").', field="label")
    return label


async def list_captions(*, video: Video) -> list[Caption]:
    """A video's caption tracks, by language."""
    return await Caption.filter(video_id=video.id).order_by("language")


async def add_caption(
    *, video: Video, language: str, label: str, data: bytes, storage: Storage
) -> SavedCaption:
    """Check and store a WebVTT or SRT file as a language's captions (replacing any before)."""
    tag = check_language(language)
    name = check_label(label, tag)
    try:
        parsed = parse_captions(data, max_bytes=MAX_CAPTION_BYTES)
    except CaptionError as exc:
        raise CaptionInputError(str(exc), field="file") from exc
    clash = await Caption.filter(video_id=video.id, label=name).exclude(language=tag).first()
    if clash is not None:
        raise CaptionInputError(
            f"The {clash.language} captions already use the label {name!r}; choose another.",
            field="label",
        )
    key = vtt_key(video.id, tag)
    duration = video.duration_seconds or parsed.end
    # Timed for the published segments already, so no player ever gets it untimed.
    vtt = with_timestamp_map(parsed.to_vtt(), await _published_clock(video, storage))
    playlist = subtitle_playlist(_segment_uri(key, vtt), duration)
    await asyncio.to_thread(_put_text, storage, key, vtt, VTT_TYPE)
    await asyncio.to_thread(_put_text, storage, playlist_key(key), playlist, PLAYLIST_TYPE)
    caption = await _save_row(video, tag, name, key)
    await refresh_master(video=video, storage=storage)
    return SavedCaption(caption, len(parsed.cues), parsed.source_format, parsed.dropped)


async def _save_row(video: Video, language: str, label: str, key: str) -> Caption:
    """Create or update the one row of a language (a concurrent upload may have just made it)."""
    for _ in range(2):
        caption = await Caption.get_or_none(video_id=video.id, language=language)
        if caption is not None:
            caption.label, caption.key = label, key
            await caption.save(update_fields=["label", "key"])
            return caption
        try:
            return await Caption.create(video=video, language=language, label=label, key=key)
        except IntegrityError:
            continue
    raise RuntimeError("could not save the caption row")  # pragma: no cover


async def remove_caption(*, video: Video, language: str, storage: Storage) -> bool:
    """Remove a language's captions: from the master playlist first, then its files."""
    try:
        tag = normalize_language(language)
    except CaptionError:
        return False
    caption = await Caption.get_or_none(video_id=video.id, language=tag)
    if caption is None:
        return False
    await caption.delete()
    await refresh_master(video=video, storage=storage)
    await asyncio.to_thread(storage.delete, caption.key)
    await asyncio.to_thread(storage.delete, playlist_key(caption.key))
    return True


async def refresh_master(*, video: Video, storage: Storage) -> bool:
    """Make the published master playlist list the current captions; whether it changed.

    Does nothing while the video is not published. Call it after every publish too (or add
    `add_to_version` as a publish hook, which does it before players switch over).
    """
    row = await Video.get_or_none(id=video.id)
    version = published_version(row) if row is not None else None
    if row is None or version is None:
        return False
    return await _apply(row, version.master_key, storage)


async def add_to_version(version: PublishedVersion, storage: Storage) -> None:
    """Publish hook: list the captions in a version's master before players switch to it."""
    row = await Video.get_or_none(id=version.video_id)
    if row is None or not await Caption.filter(video_id=row.id).exists():
        return
    try:
        await _apply(row, version.master_key, storage)
    except (KeyNotFound, ValueError, UnicodeDecodeError):
        # A version without captions still plays; the next caption change tries again.
        log.exception("captions not added to %s", version.master_key)


async def _published_clock(video: Video, storage: Storage) -> int | None:
    row = await Video.get_or_none(id=video.id)
    version = published_version(row) if row is not None else None
    if version is None:
        return None

    def read() -> int | None:
        try:
            master = storage.read_bytes(version.master_key).decode("utf-8")
        except (KeyNotFound, UnicodeDecodeError):
            return None
        return _segment_clock(storage, version.master_key, master)

    return await asyncio.to_thread(read)


async def _apply(video: Video, master_key: str, storage: Storage) -> bool:
    captions = await Caption.filter(video_id=video.id).order_by("language")
    tracks = [(c.language, c.label, c.key) for c in captions]
    return await asyncio.to_thread(
        _apply_blocking, storage, master_key, tracks, video.duration_seconds
    )


def _apply_blocking(
    storage: Storage,
    master_key: str,
    tracks: list[tuple[str, str, str]],
    duration: float | None,
) -> bool:
    master = storage.read_bytes(master_key).decode("utf-8")
    mpegts = _segment_clock(storage, master_key, master) if tracks else None
    listed: list[SubtitleTrack] = []
    for language, label, key in tracks:
        try:
            vtt = storage.read_bytes(key).decode("utf-8")
        except KeyNotFound:
            log.warning("caption file %s is missing; its track is left out", key)
            continue
        timed = with_timestamp_map(vtt, mpegts)
        if timed != vtt:
            _put_text(storage, key, timed, VTT_TYPE)
        if timed != vtt or duration:
            playlist = subtitle_playlist(_segment_uri(key, timed), duration or _end(timed))
            _put_text(storage, playlist_key(key), playlist, PLAYLIST_TYPE)
        uri = posixpath.relpath(playlist_key(key), posixpath.dirname(master_key))
        listed.append(SubtitleTrack(language=language, name=label, uri=uri))
    rewritten = rewrite_master(master, listed)
    if rewritten == master:
        return False
    _put_text(storage, master_key, rewritten, PLAYLIST_TYPE)
    return True


def _segment_uri(key: str, vtt: str) -> str:
    """The .vtt file's name with a content version: players and caches never keep an old one."""
    digest = hashlib.sha256(vtt.encode("utf-8")).hexdigest()[:12]
    return f"{posixpath.basename(key)}?v={digest}"


def _end(vtt: str) -> float:
    """When the last cue of a stored WebVTT file ends, in seconds."""
    data = vtt.encode("utf-8")
    return parse_captions(data, max_bytes=len(data)).end


def _resolve(base_key: str, uri: str) -> str | None:
    if "://" in uri or uri.startswith("/"):
        return None
    key = posixpath.normpath(posixpath.join(posixpath.dirname(base_key), uri.split("?")[0]))
    return None if key.startswith("..") else key


def _segment_clock(storage: Storage, master_key: str, master: str) -> int | None:
    """The MPEG-TS time of the recording's start, from the first segment of the smallest variant."""
    variants = variant_uris(master)
    variant = _resolve(master_key, variants[0]) if variants else None
    if variant is None:
        return None
    try:
        segment_uri = first_segment_uri(storage.read_bytes(variant).decode("utf-8"))
        segment = _resolve(variant, segment_uri) if segment_uri else None
        return mpegts_start(storage.read_bytes(segment)) if segment else None
    except (KeyNotFound, UnicodeDecodeError):
        return None


def _put_text(storage: Storage, key: str, text: str, content_type: str) -> None:
    with tempfile.TemporaryDirectory(prefix="encore-captions-") as folder:
        path = Path(folder) / posixpath.basename(key)
        path.write_text(text, encoding="utf-8")
        storage.put_file(key, path, content_type=content_type)
