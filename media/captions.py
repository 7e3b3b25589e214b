"""Captions: read WebVTT or SRT safely, write clean WebVTT, and expose it as HLS subtitles.

Uploaded files are untrusted text that players hand to a renderer, so nothing passes through
unchecked: the bytes must be UTF-8 (or UTF-16 with a byte order mark) text within a size and
cue limit; every cue timing is parsed and checked; cue text keeps only the markup WebVTT
defines (`c i b u ruby rt v lang` and timestamps) and everything else is dropped or escaped;
STYLE and REGION blocks, comments, identifiers and unknown cue settings are left out. The
format is told by the content (a WebVTT file starts with `WEBVTT`), never by the file name.

The clean file is served as an HLS subtitle rendition: one media playlist whose only segment is
the whole .vtt, listed in the master playlist with an `EXT-X-MEDIA` line per language and a
`SUBTITLES` group on every variant. `rewrite_master` removes what it added before adding the
current set, so it can run any number of times, and with no tracks it restores the original.

Cue times count from the start of the recording. HLS maps them onto the MPEG-TS clock with an
`X-TIMESTAMP-MAP` header (RFC 8216, 3.5); without it players take cue time 0 as MPEG-TS time 0,
while ffmpeg starts its segments 1.4 s in, so every caption would show early. `mpegts_start`
reads the first video timestamp of a published segment for `with_timestamp_map`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

MAX_BYTES = 1024 * 1024
MAX_CUES = 10_000
MAX_CUE_CHARS = 1_000
GROUP_ID = "subs"

Format = Literal["vtt", "srt"]


class CaptionError(ValueError):
    """Why a caption file was refused, naming the line when there is one."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        self.reason = message
        super().__init__(f"Line {line}: {message}" if line else message)


@dataclass(frozen=True)
class Cue:
    """One caption: start and end in milliseconds, clean WebVTT cue text and settings."""

    start: int
    end: int
    text: str
    settings: str = ""


@dataclass(frozen=True)
class Captions:
    """A parsed caption file."""

    cues: tuple[Cue, ...]
    source_format: Format
    dropped: tuple[str, ...] = field(default=())  # what was left out, for the person uploading

    @property
    def end(self) -> float:
        """When the last caption ends, in seconds."""
        return max((cue.end for cue in self.cues), default=0) / 1000

    def to_vtt(self) -> str:
        """The captions as a WebVTT file."""
        blocks = ["WEBVTT\n"]
        for cue in self.cues:
            timing = f"{format_timestamp(cue.start)} --> {format_timestamp(cue.end)}"
            if cue.settings:
                timing += f" {cue.settings}"
            blocks.append(f"{timing}\n{cue.text}\n")
        return "\n".join(blocks)


# --- timestamps ----------------------------------------------------------------------------


def format_timestamp(ms: int) -> str:
    """`HH:MM:SS.mmm` (hours grow past two digits when needed)."""
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


# Lenient on purpose: one or two digit minutes and seconds, `,` or `.` before one to three
# fraction digits, or none; the ranges are checked after matching.
_TIME = r"(?:(\d{1,4}):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*({_TIME})\s*-->\s*({_TIME})(.*)$")


def _millis(hours: str | None, minutes: str, seconds: str, fraction: str | None) -> int | None:
    if int(minutes) > 59 or int(seconds) > 59:
        return None
    frac = int((fraction or "0").ljust(3, "0"))
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + frac


def _parse_timing(line: str, number: int, example: str) -> tuple[int, int, str]:
    match = _TIMING.match(line)
    if match is None:
        raise CaptionError(f"expected a timing line like {example}, found {_show(line)}", number)
    groups = match.groups()
    start = _millis(*groups[1:5])
    end = _millis(*groups[6:10])
    if start is None or end is None:
        bad = groups[0] if start is None else groups[5]
        raise CaptionError(f"{bad} is not a valid time (minutes and seconds go up to 59)", number)
    if end < start:
        raise CaptionError(
            f"the caption ends ({format_timestamp(end)}) before it starts "
            f"({format_timestamp(start)})",
            number,
        )
    return start, end, groups[10]


def _show(line: str) -> str:
    line = line.strip()
    return repr(line if len(line) <= 60 else line[:57] + "...")


# --- text and markup -----------------------------------------------------------------------

_ALLOWED_TAGS = frozenset({"c", "i", "b", "u", "ruby", "rt", "v", "lang"})
# Tag-like text only: `a < b > c` is text (escaped), as players read it.
_TAG = re.compile(r"</?[A-Za-z][^<>\n]*>|<[\d:.]+>")
_START_TAG = re.compile(r"^<([A-Za-z]+)((?:\.[^\s.>]*)*)(?:[ \t]+([^>]*))?>$")
_END_TAG = re.compile(r"^</\s*([A-Za-z]+)\s*>$")
_TIMESTAMP_TAG = re.compile(r"^<(\d{2,}:)?[0-5]\d:[0-5]\d\.\d{3}>$")
_CLASS = re.compile(r"^[A-Za-z0-9_-]+$")
_REFERENCE = re.compile(r"&(?:amp|lt|gt|lrm|rlm|nbsp|quot|apos|#\d{1,7}|#[xX][0-9a-fA-F]{1,6});")


def _escape(text: str) -> str:
    """Escape `<`, `>` and every `&` that does not start a character reference."""
    out: list[str] = []
    position = 0
    for match in _REFERENCE.finditer(text):
        out.append(_escape_plain(text[position : match.start()]))
        out.append(match.group(0))
        position = match.end()
    out.append(_escape_plain(text[position:]))
    return "".join(out)


def _escape_plain(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _start_tag(tag: str) -> tuple[str, str] | None:
    """(name, clean tag) for an allowed start tag, else None."""
    match = _START_TAG.match(tag)
    if match is None:
        return None
    name = match.group(1).lower()
    if name not in _ALLOWED_TAGS:
        return None
    classes = [c for c in match.group(2).split(".")[1:] if _CLASS.match(c)]
    annotation = (match.group(3) or "").strip()
    clean = name + "".join(f".{c}" for c in classes)
    if name == "v" and annotation:
        clean += " " + _escape(annotation)
    elif name == "lang":
        if not _LANGUAGE.match(annotation.replace("_", "-")):
            return None
        clean += " " + annotation.replace("_", "-")
    return name, f"<{clean}>"


def clean_cue_text(text: str) -> str:
    """Cue text with only WebVTT markup, balanced, and everything else escaped."""
    return _clean(text)[0]


def _clean(text: str) -> tuple[str, bool]:
    """Clean cue text, and whether any markup was dropped."""
    out: list[str] = []
    open_tags: list[str] = []
    dropped = False
    position = 0
    for match in _TAG.finditer(text):
        out.append(_escape(text[position : match.start()]))
        position = match.end()
        tag = match.group(0)
        if _TIMESTAMP_TAG.match(tag):
            out.append(tag)
        elif end := _END_TAG.match(tag):
            name = end.group(1).lower()
            dropped = dropped or name not in open_tags
            if name in open_tags:
                while open_tags:
                    closing = open_tags.pop()
                    out.append(f"</{closing}>")
                    if closing == name:
                        break
        elif start := _start_tag(tag):
            open_tags.append(start[0])
            out.append(start[1])
        else:
            # Anything else (font, script, img, a, ...) goes; its content stays as text.
            dropped = True
    out.append(_escape(text[position:]))
    out.extend(f"</{name}>" for name in reversed(open_tags))
    lines = (line.strip() for line in "".join(out).split("\n"))
    return "\n".join(line for line in lines if line), dropped


_SETTING = {
    "vertical": re.compile(r"^(rl|lr)$"),
    "line": re.compile(r"^(-?\d+|\d{1,3}(\.\d+)?%)(,(start|center|end))?$"),
    "position": re.compile(r"^\d{1,3}(\.\d+)?%(,(line-left|center|line-right))?$"),
    "size": re.compile(r"^\d{1,3}(\.\d+)?%$"),
    "align": re.compile(r"^(start|center|end|left|right)$"),
}


_PERCENT = re.compile(r"([\d.]+)%")


def clean_settings(settings: str) -> str:
    """Keep the cue settings WebVTT defines, with valid values; drop regions and the rest."""
    kept: dict[str, str] = {}
    for token in settings.split():
        name, _, value = token.partition(":")
        pattern = _SETTING.get(name)
        in_range = all(float(p) <= 100 for p in _PERCENT.findall(value))
        if pattern is not None and pattern.match(value) and in_range:
            kept[name] = value
    return " ".join(f"{name}:{value}" for name, value in kept.items())


# --- decoding and format detection ---------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def decode_text(data: bytes) -> str:
    """The file as text with LF line ends; refuses binary data and unknown encodings."""
    encoding = "utf-8"
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if b"\x00" in data[:4096]:
            raise CaptionError("This is a binary file, not a caption text file.") from exc
        line = data[: exc.start].count(b"\n") + 1
        raise CaptionError(
            "the file is not UTF-8 text. Save it with UTF-8 encoding and upload it again.",
            line,
        ) from exc
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    control = _CONTROL.search(text)
    if control is not None:
        line = text.count("\n", 0, control.start()) + 1
        raise CaptionError("the file contains binary data, not caption text.", line)
    return text


_VTT_HEADER = re.compile(r"^WEBVTT(?:[ \t].*)?$")
_SRT_INDEX = re.compile(r"^\d+$")
_SRT_EXAMPLE = "00:00:01,000 --> 00:00:04,000"
_VTT_EXAMPLE = "00:00:01.000 --> 00:00:04.000"


def detect_format(text: str) -> Format:
    """'vtt' or 'srt', told by the content; CaptionError for anything else."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        raise CaptionError("The file is empty.")
    first = lines[0]
    if _VTT_HEADER.match(first):
        return "vtt"
    if "-->" in first or (_SRT_INDEX.match(first) and len(lines) > 1 and "-->" in lines[1]):
        return "srt"
    if first.startswith("[Script Info]"):
        raise CaptionError("This is an ASS/SSA subtitle file: export it as SRT or WebVTT.")
    if first.startswith(("<?xml", "<tt")):
        raise CaptionError("This is an XML (TTML/DFXP) file: export it as SRT or WebVTT.")
    raise CaptionError(
        "This is neither WebVTT nor SRT: a WebVTT file starts with the line WEBVTT, and an "
        f"SRT file with a caption number and a timing line like {_SRT_EXAMPLE}."
    )


# --- parsers -------------------------------------------------------------------------------


@dataclass
class _Reader:
    """Cues collected from either format, checked and put in order."""

    cues: list[Cue] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)

    def add(self, line: int, start: int, end: int, text: str, settings: str = "") -> None:
        if len(text) > MAX_CUE_CHARS:
            raise CaptionError(
                f"this caption is {len(text):,} characters long; the limit is "
                f"{MAX_CUE_CHARS:,}. Is a blank line missing between two captions?",
                line,
            )
        cleaned, dropped = _clean(text)
        if dropped:
            self.dropped.add("markup")
        if start == end or not cleaned:
            self.dropped.add("empty")  # never shown: leave it out
            return
        self.cues.append(Cue(start, end, cleaned, settings))

    def finish(self, source: Format, max_cues: int) -> Captions:
        if not self.cues:
            raise CaptionError("The file has no captions in it.")
        if len(self.cues) > max_cues:
            raise CaptionError(
                f"The file has {len(self.cues):,} captions; the limit is {max_cues:,}."
            )
        _refuse_non_captions(self.cues)
        ordered = sorted(self.cues, key=lambda cue: cue.start)
        return Captions(tuple(ordered), source, tuple(sorted(self.dropped)))


_THUMBNAIL = re.compile(r"^\S+#xywh=\d+,\d+,\d+,\d+$")
_URL = re.compile(r"^(?:https?://|/)\S*$|^\S+\.(?:jpe?g|png|webp|gif|avif)$", re.IGNORECASE)


def _refuse_non_captions(cues: Sequence[Cue]) -> None:
    """Thumbnail maps and metadata tracks are WebVTT too, but not text captions."""
    texts = [cue.text for cue in cues]
    if all(_THUMBNAIL.match(t) or _URL.match(t) for t in texts):
        raise CaptionError("This WebVTT file is a thumbnail or image map, not captions.")
    if all(t.startswith("{") and t.endswith("}") for t in texts):
        raise CaptionError("This WebVTT file holds metadata (JSON), not captions.")


def _is_keyword_block(line: str, keyword: str) -> bool:
    return line == keyword or (line.startswith(keyword) and line[len(keyword)] in " \t")


def parse_vtt(text: str, *, max_cues: int = MAX_CUES) -> Captions:
    """Parse a WebVTT file into clean cues (STYLE, REGION and NOTE blocks are left out)."""
    lines = text.split("\n")
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index == len(lines) or not _VTT_HEADER.match(lines[index].strip()):
        raise CaptionError("a WebVTT file must start with the line WEBVTT", index + 1)
    index += 1
    # Header lines (including any X-TIMESTAMP-MAP) run to the first blank line.
    while index < len(lines) and lines[index].strip() and "-->" not in lines[index]:
        index += 1
    reader = _Reader()
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        block_start = index
        block = [lines[index]]
        index += 1
        while index < len(lines) and lines[index].strip():
            # A timing line after the block's own timing line starts the next cue.
            if "-->" in lines[index] and any("-->" in line for line in block):
                break
            block.append(lines[index])
            index += 1
        first = block[0].strip()
        if "-->" not in first and _is_keyword_block(first, "NOTE"):
            continue
        if "-->" not in first and (
            _is_keyword_block(first, "STYLE") or _is_keyword_block(first, "REGION")
        ):
            reader.dropped.add("styles")
            continue
        if "-->" in block[0]:
            timing_at = 0
        elif len(block) > 1 and "-->" in block[1]:
            timing_at = 1  # the first line is the cue's identifier
        else:
            raise CaptionError(
                f"expected a timing line like {_VTT_EXAMPLE}, found {_show(block[0])} "
                "(a blank line ends a caption)",
                block_start + 1,
            )
        line_number = block_start + timing_at + 1
        start, end, rest = _parse_timing(block[timing_at], line_number, _VTT_EXAMPLE)
        settings = clean_settings(rest)
        if settings != " ".join(rest.split()):
            reader.dropped.add("settings")
        reader.add(line_number, start, end, "\n".join(block[timing_at + 1 :]), settings)
    return reader.finish("vtt", max_cues)


_SRT_BRACES = re.compile(r"\{\\[^{}\n]*\}")
_SRT_POSITION = re.compile(r"\{\\an([1-9])\}")
_SRT_SIMPLE_TAGS = re.compile(r"\{(/?)([biu])\}", re.IGNORECASE)
# {\an7..9} put a caption at the top, {\an4..6} in the middle; the bottom is the default.
_SRT_LINE = {
    "7": "line:0",
    "8": "line:0",
    "9": "line:0",
    "4": "line:50%",
    "5": "line:50%",
    "6": "line:50%",
}


def _srt_text(text: str) -> tuple[str, str]:
    """SRT cue text as WebVTT-ready text, and the settings its position tags asked for."""
    position = _SRT_POSITION.search(text)
    settings = _SRT_LINE.get(position.group(1), "") if position else ""
    text = _SRT_BRACES.sub("", text)
    text = _SRT_SIMPLE_TAGS.sub(lambda m: f"<{m.group(1)}{m.group(2).lower()}>", text)
    return text, settings


def parse_srt(text: str, *, max_cues: int = MAX_CUES) -> Captions:
    """Parse an SRT file (numbers optional, `,` or `.` before milliseconds) into clean cues."""
    lines = text.split("\n")
    reader = _Reader()
    index = 0
    last: tuple[int, int, int, list[str]] | None = None  # line, start, end, text lines

    def flush() -> None:
        if last is not None:
            body, settings = _srt_text("\n".join(last[3]))
            reader.add(last[0], last[1], last[2], body, settings)

    def starts_cue(at: int) -> bool:
        line = lines[at].strip()
        if "-->" in line:
            return True
        return bool(_SRT_INDEX.match(line)) and at + 1 < len(lines) and "-->" in lines[at + 1]

    while index < len(lines):
        line = lines[index].strip()
        if not line:
            index += 1
            continue
        if _SRT_INDEX.match(line) and index + 1 < len(lines) and "-->" in lines[index + 1]:
            index += 1
        elif _SRT_INDEX.match(line) and (last is None or _next_is_text(lines, index + 1)):
            raise CaptionError(
                f"caption {line} is not followed by a timing line like {_SRT_EXAMPLE}",
                index + 1,
            )
        elif "-->" not in line:
            if last is None:
                raise CaptionError(
                    f"expected a caption number or a timing line like {_SRT_EXAMPLE}, "
                    f"found {_show(line)}",
                    index + 1,
                )
            # Text after a blank line inside a caption: keep it with that caption.
            last[3].append(line)
            index += 1
            continue
        flush()
        start, end, _ = _parse_timing(lines[index], index + 1, _SRT_EXAMPLE)
        last = (index + 1, start, end, [])
        index += 1
        # The text runs to a blank line, or to the next cue when a blank line is missing.
        while index < len(lines) and lines[index].strip() and not starts_cue(index):
            last[3].append(lines[index])
            index += 1
    flush()
    return reader.finish("srt", max_cues)


def _next_is_text(lines: Sequence[str], index: int) -> bool:
    """Whether a non-blank line follows directly (or nothing but blank lines follows)."""
    if index < len(lines) and lines[index].strip():
        return True
    return not any(line.strip() for line in lines[index:])


def parse_captions(
    data: bytes, *, max_bytes: int = MAX_BYTES, max_cues: int = MAX_CUES
) -> Captions:
    """Check, decode and parse an uploaded WebVTT or SRT file (format told by its content)."""
    if len(data) > max_bytes:
        raise CaptionError(size_message(len(data), max_bytes))
    if not data.strip():
        raise CaptionError("The file is empty.")
    text = decode_text(data)
    if detect_format(text) == "vtt":
        return parse_vtt(text, max_cues=max_cues)
    return parse_srt(text, max_cues=max_cues)


def size_message(size: int, limit: int) -> str:
    """Why a file of `size` bytes is refused when files can be up to `limit` bytes."""
    kb = math.ceil(size / 1024)
    if limit % (1024 * 1024) == 0:
        allowed = f"{limit // (1024 * 1024)} MB ({limit // 1024:,} KB)"
    else:
        allowed = f"{limit // 1024:,} KB"
    return f"The file is {kb:,} KB; caption files can be up to {allowed}."


# --- language tags -------------------------------------------------------------------------

_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|\d{3}))?$")
_ISO_639_1_CODES = """
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu
    cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho
    hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv
    kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr
    nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq
    sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh
    yi yo za zh zu"""
_ISO_639_1 = frozenset(_ISO_639_1_CODES.split())
# Names shown in players' caption menus when no label is given, in the language itself.
LANGUAGE_NAMES = {
    "ar": "العربية",
    "cs": "Čeština",
    "da": "Dansk",
    "de": "Deutsch",
    "el": "Ελληνικά",
    "en": "English",
    "es": "Español",
    "fi": "Suomi",
    "fr": "Français",
    "he": "עברית",
    "hi": "हिन्दी",
    "hu": "Magyar",
    "id": "Bahasa Indonesia",
    "it": "Italiano",
    "ja": "日本語",
    "ko": "한국어",
    "nb": "Norsk bokmål",
    "nl": "Nederlands",
    "pl": "Polski",
    "pt": "Português",
    "pt-BR": "Português (Brasil)",
    "ro": "Română",
    "ru": "Русский",
    "sv": "Svenska",
    "th": "ไทย",
    "tr": "Türkçe",
    "uk": "Українська",
    "vi": "Tiếng Việt",
    "zh": "中文",
    "zh-Hans": "简体中文",
    "zh-Hant": "繁體中文",
}


def normalize_language(tag: str) -> str:
    """A BCP 47 tag (language, optional script and region) in canonical case, e.g. pt-BR."""
    raw = tag.strip().replace("_", "-")
    if not _LANGUAGE.match(raw):
        raise CaptionError(
            f"{tag.strip()!r} is not a language tag. Use a code like en, de, pt-BR or zh-Hant."
        )
    parts = raw.split("-")
    language = parts[0].lower()
    if len(language) == 2 and language not in _ISO_639_1:
        raise CaptionError(f"{language!r} is not a known language code.")
    rest = [part.title() if len(part) == 4 else part.upper() for part in parts[1:]]
    return "-".join([language, *rest])


def language_name(tag: str) -> str:
    """A display name for a normalized tag, or the tag itself."""
    return LANGUAGE_NAMES.get(tag) or LANGUAGE_NAMES.get(tag.split("-")[0]) or tag


# --- HLS -----------------------------------------------------------------------------------


def subtitle_playlist(segment_uri: str, duration: float) -> str:
    """A VOD media playlist whose one segment is the whole WebVTT file."""
    duration = max(duration, 0.001)
    return (
        "#EXTM3U\n"
        "#EXT-X-VERSION:3\n"
        f"#EXT-X-TARGETDURATION:{math.ceil(duration)}\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
        f"#EXTINF:{duration:.3f},\n"
        f"{segment_uri}\n"
        "#EXT-X-ENDLIST\n"
    )


def with_timestamp_map(vtt: str, mpegts: int | None) -> str:
    """The WebVTT file with its X-TIMESTAMP-MAP header set to `mpegts` (or removed if None)."""
    lines = vtt.split("\n")
    end = lines.index("") if "" in lines else len(lines)
    header = [line for line in lines[1:end] if not line.startswith("X-TIMESTAMP-MAP=")]
    if mpegts is not None:
        header.insert(0, f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000")
    return "\n".join([lines[0], *header, *lines[end:]])


@dataclass(frozen=True)
class SubtitleTrack:
    """One subtitle rendition for the master playlist; `uri` is relative to the master."""

    language: str
    name: str
    uri: str


_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",\r\n]*)')
_MEDIA = "#EXT-X-MEDIA:"
_STREAM = "#EXT-X-STREAM-INF:"


def attributes(text: str) -> list[tuple[str, str, int, int]]:
    """(name, raw value, start, end) of each attribute of an HLS attribute list."""
    found: list[tuple[str, str, int, int]] = []
    position = 0
    while position < len(text):
        match = _ATTRIBUTE.match(text, position)
        if match is None:
            raise ValueError(f"malformed attribute list: {text!r}")
        found.append((match.group(1), match.group(2), match.start(), match.end()))
        position = match.end()
        if position < len(text):
            if text[position] != ",":
                raise ValueError(f"malformed attribute list: {text!r}")
            position += 1
    return found


def _quoted(value: str, what: str) -> str:
    if not value or any(char in value for char in '"\r\n'):
        raise ValueError(f"{what} cannot be empty or contain quotes or line breaks: {value!r}")
    return f'"{value}"'


def media_line(track: SubtitleTrack) -> str:
    """The EXT-X-MEDIA line of a subtitle track."""
    return (
        f"{_MEDIA}TYPE=SUBTITLES,GROUP-ID={_quoted(GROUP_ID, 'group')},"
        f"NAME={_quoted(track.name, 'name')},LANGUAGE={_quoted(track.language, 'language')},"
        f"DEFAULT=NO,AUTOSELECT=YES,URI={_quoted(track.uri, 'URI')}"
    )


def _is_our_media(body: str) -> bool:
    values = {name: value for name, value, _, _ in attributes(body)}
    return values.get("TYPE") == "SUBTITLES" and values.get("GROUP-ID") == f'"{GROUP_ID}"'


def _without_our_group(body: str) -> str:
    for name, value, start, end in attributes(body):
        if name != "SUBTITLES":
            continue
        if value != f'"{GROUP_ID}"':
            raise ValueError(f"the playlist already uses another subtitle group {value}")
        before, after = body[:start], body[end:]
        # Take one of the commas around the attribute with it.
        return before[:-1] + after if before.endswith(",") else before + after[1:]
    return body


def rewrite_master(master: str, tracks: Sequence[SubtitleTrack]) -> str:
    """The master playlist listing exactly `tracks` as subtitles (none: the original)."""
    lines = master.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "#EXTM3U":
        raise ValueError("not an HLS playlist (no #EXTM3U)")
    languages = [track.language for track in tracks]
    names = [track.name for track in tracks]
    if len(set(languages)) != len(languages) or len(set(names)) != len(names):
        raise ValueError("subtitle languages and names must be unique")
    out: list[str] = []
    inserted = False
    streams = 0
    for line in lines:
        body = line.rstrip("\r\n")
        ending = line[len(body) :] or "\n"
        if body.startswith(_MEDIA) and _is_our_media(body[len(_MEDIA) :]):
            continue
        if body.startswith(_STREAM):
            streams += 1
            attrs = _without_our_group(body[len(_STREAM) :])
            if tracks and not inserted:
                out.extend(media_line(track) + ending for track in tracks)
                inserted = True
            suffix = f',SUBTITLES="{GROUP_ID}"' if tracks else ""
            line = f"{_STREAM}{attrs}{suffix}{line[len(body) :]}"
        out.append(line)
    if streams == 0:
        raise ValueError("not a master playlist (no #EXT-X-STREAM-INF)")
    return "".join(out)


def variant_uris(master: str) -> list[str]:
    """The variant playlists of a master playlist, lowest bandwidth first."""
    found: list[tuple[int, str]] = []
    lines = [line.strip() for line in master.splitlines()]
    for position, line in enumerate(lines):
        if not line.startswith(_STREAM):
            continue
        values = {name: value for name, value, _, _ in attributes(line[len(_STREAM) :])}
        uri = next((u for u in lines[position + 1 :] if u and not u.startswith("#")), None)
        if uri is not None:
            bandwidth = values.get("BANDWIDTH", "0")
            found.append((int(bandwidth) if bandwidth.isdigit() else 0, uri))
    return [uri for _, uri in sorted(found, key=lambda item: item[0])]


def first_segment_uri(playlist: str) -> str | None:
    """The first media segment of a media playlist."""
    lines = [line.strip() for line in playlist.splitlines()]
    for position, line in enumerate(lines):
        if line.startswith("#EXTINF:"):
            return next((u for u in lines[position + 1 :] if u and not u.startswith("#")), None)
    return None


_TS_PACKET = 188


def _pts(raw: bytes) -> int:
    return (
        ((raw[0] >> 1) & 0x07) << 30
        | raw[1] << 22
        | (raw[2] >> 1) << 15
        | raw[3] << 7
        | raw[4] >> 1
    )


def mpegts_start(data: bytes) -> int | None:
    """The first video PTS (90 kHz) of an MPEG-TS segment, else its first PTS; None if not TS."""
    first_any: int | None = None
    for offset in range(0, len(data) - _TS_PACKET + 1, _TS_PACKET):
        packet = data[offset : offset + _TS_PACKET]
        if packet[0] != 0x47:
            return first_any
        payload_start = packet[1] & 0x40
        adaptation = (packet[3] >> 4) & 0x03
        if not payload_start or adaptation in (0, 2):
            continue
        position = 4 + (1 + packet[4] if adaptation == 3 else 0)
        pes = packet[position:]
        if len(pes) < 14 or pes[:3] != b"\x00\x00\x01" or not pes[7] & 0x80:
            continue
        pts = _pts(pes[9:14])
        if 0xE0 <= pes[3] <= 0xEF:
            return pts
        if first_any is None:
            first_any = pts
    return first_any
