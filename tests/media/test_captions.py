"""Caption files: WebVTT checks, SRT conversion, markup cleaning, HLS subtitle playlists."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import pytest

from media import captions, hls
from media.captions import (
    CaptionError,
    Captions,
    Cue,
    SubtitleTrack,
    clean_cue_text,
    clean_settings,
    detect_format,
    first_segment_uri,
    format_timestamp,
    language_name,
    mpegts_start,
    normalize_language,
    parse_captions,
    rewrite_master,
    size_message,
    subtitle_playlist,
    variant_uris,
    with_timestamp_map,
)
from media.commands import MASTER
from media.probe import probe
from tests.media.clips import h264_mp4

BOM = b"\xef\xbb\xbf"


def cues(data: bytes) -> list[tuple[int, int, str]]:
    return [(c.start, c.end, c.text) for c in parse_captions(data).cues]


# --- SRT -------------------------------------------------------------------------------------

SRT_CASES = {
    "plain": (
        b"1\n00:00:01,000 --> 00:00:04,000\nHello\n\n2\n00:00:05,500 --> 00:00:07,250\nWorld\n",
        [(1000, 4000, "Hello"), (5500, 7250, "World")],
    ),
    "bom and crlf": (
        BOM + b"1\r\n00:00:01,000 --> 00:00:02,000\r\nHello\r\nthere\r\n\r\n",
        [(1000, 2000, "Hello\nthere")],
    ),
    "old mac line ends": (b"1\r00:00:01,000 --> 00:00:02,000\rHi\r\r", [(1000, 2000, "Hi")]),
    "utf-16 with bom": (
        "1\r\n00:00:01,000 --> 00:00:02,000\r\nGrüße\r\n".encode("utf-16"),
        [(1000, 2000, "Grüße")],
    ),
    "no sequence numbers": (
        b"00:00:01,000 --> 00:00:02,000\nA\n\n00:00:03,000 --> 00:00:04,000\nB\n",
        [(1000, 2000, "A"), (3000, 4000, "B")],
    ),
    "dots instead of commas": (b"1\n00:00:01.000 --> 00:00:02.000\nA\n", [(1000, 2000, "A")]),
    "short fractions and no hours": (
        b"1\n00:01,5 --> 01:02,25\nA\n\n2\n1:00:00 --> 1:00:01\nB\n",
        [(1500, 62250, "A"), (3600000, 3601000, "B")],
    ),
    "no spaces around the arrow, coordinates after it": (
        b"1\n00:00:01,000-->00:00:02,000  X1:100 X2:200 Y1:10 Y2:20\nA\n",
        [(1000, 2000, "A")],
    ),
    "missing blank line between cues": (
        b"1\n00:00:01,000 --> 00:00:02,000\nA\n2\n00:00:03,000 --> 00:00:04,000\nB\n",
        [(1000, 2000, "A"), (3000, 4000, "B")],
    ),
    "blank line inside a cue": (
        b"1\n00:00:01,000 --> 00:00:02,000\nFirst line\n\nsecond line\n\n"
        b"2\n00:00:03,000 --> 00:00:04,000\nB\n",
        [(1000, 2000, "First line\nsecond line"), (3000, 4000, "B")],
    ),
    "many blank lines and trailing spaces": (
        b"\n\n1  \n00:00:01,000 --> 00:00:02,000   \nA   \n\n\n\n",
        [(1000, 2000, "A")],
    ),
    "out of order": (
        b"1\n00:00:05,000 --> 00:00:06,000\nB\n\n2\n00:00:01,000 --> 00:00:02,000\nA\n",
        [(1000, 2000, "A"), (5000, 6000, "B")],
    ),
    "font tags and ampersands": (
        b'1\n00:00:01,000 --> 00:00:02,000\n<font color="#ff0">Tom & Jerry</font> <B>bold</B>\n',
        [(1000, 2000, "Tom &amp; Jerry <b>bold</b>")],
    ),
    "brace tags": (
        b"1\n00:00:01,000 --> 00:00:02,000\n{i}slanted{/i} {\\c&H00FFFF&}plain\n",
        [(1000, 2000, "<i>slanted</i> plain")],
    ),
    "zero-length and empty cues are left out": (
        b"1\n00:00:01,000 --> 00:00:01,000\nnever shown\n\n2\n00:00:02,000 --> 00:00:03,000\n\n"
        b"3\n00:00:04,000 --> 00:00:05,000\nshown\n",
        [(4000, 5000, "shown")],
    ),
    "long hours": (b"1\n100:00:00,000 --> 100:00:01,000\nA\n", [(360000000, 360001000, "A")]),
}


@pytest.mark.parametrize(("data", "expected"), SRT_CASES.values(), ids=SRT_CASES.keys())
def test_srt_is_converted(data: bytes, expected: list[tuple[int, int, str]]) -> None:
    parsed = parse_captions(data)
    assert parsed.source_format == "srt"
    assert [(c.start, c.end, c.text) for c in parsed.cues] == expected
    # What we write reads back the same (as WebVTT).
    again = parse_captions(parsed.to_vtt().encode())
    assert again.source_format == "vtt"
    assert again.cues == parsed.cues


def test_srt_position_tags_become_cue_settings() -> None:
    parsed = parse_captions(
        b"1\n00:00:01,000 --> 00:00:02,000\n{\\an8}On top\n\n"
        b"2\n00:00:03,000 --> 00:00:04,000\n{\\an2}At the bottom\n"
    )
    assert [(c.text, c.settings) for c in parsed.cues] == [
        ("On top", "line:0"),
        ("At the bottom", ""),
    ]


def test_srt_to_vtt_output() -> None:
    parsed = parse_captions(
        BOM + b"1\r\n00:00:01,000 --> 00:00:04,000\r\nHello <i>there</i>\r\n\r\n"
        b"2\r\n01:02:03,045 --> 01:02:04,500\r\n{\\an8}Two\r\nlines\r\n"
    )
    assert parsed.to_vtt() == (
        "WEBVTT\n"
        "\n"
        "00:00:01.000 --> 00:00:04.000\n"
        "Hello <i>there</i>\n"
        "\n"
        "01:02:03.045 --> 01:02:04.500 line:0\n"
        "Two\n"
        "lines\n"
    )
    assert parsed.end == pytest.approx(3724.5)


SRT_ERRORS = {
    "end before start": (
        b"1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n00:00:09,000 --> 00:00:04,000\nB\n",
        r"^Line 6: the caption ends \(00:00:04\.000\) before it starts \(00:00:09\.000\)$",
    ),
    "seconds out of range": (
        b"1\n00:00:61,000 --> 00:01:02,000\nA\n",
        r"^Line 2: 00:00:61,000 is not a valid time",
    ),
    "minutes out of range": (
        b"1\n00:75:00,000 --> 00:76:00,000\nA\n",
        r"^Line 2: 00:75:00,000 is not a valid time",
    ),
    "garbled timing": (
        b"1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n00:00:0x,000 --> 00:00:04,000\nB\n",
        r"^Line 6: expected a timing line like 00:00:01,000 --> 00:00:04,000, found "
        r"'00:00:0x,000 --> 00:00:04,000'$",
    ),
    "number without timing at the end": (
        b"1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n",
        r"^Line 5: caption 2 is not followed by a timing line",
    ),
    "negative time": (
        b"1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n-00:00:01,000 --> 00:00:02,000\nB\n",
        r"^Line 6: expected a timing line like 00:00:01,000 --> 00:00:04,000, found "
        r"'-00:00:01,000 --> 00:00:02,000'$",
    ),
    "not utf-8": (
        b"1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n00:00:03,000 --> 00:00:04,000\nCaf\xe9\n",
        r"^Line 7: the file is not UTF-8 text\. Save it with UTF-8 encoding",
    ),
    "caption too long (a missing blank line)": (
        b"1\n00:00:01,000 --> 00:00:02,000\n" + b"word " * 300 + b"\n",
        r"^Line 2: this caption is 1,500 characters long; the limit is 1,000",
    ),
}


@pytest.mark.parametrize(("data", "message"), SRT_ERRORS.values(), ids=SRT_ERRORS.keys())
def test_malformed_srt_names_the_line(data: bytes, message: str) -> None:
    with pytest.raises(CaptionError, match=message) as caught:
        parse_captions(data)
    assert caught.value.line is not None


def test_a_broken_arrow_after_a_blank_line_stays_with_the_caption_before() -> None:
    # Players treat it the same way: text, not a new caption.
    data = b"00:00:01,000 --> 00:00:02,000\nA\n\n00:00:03,000 -> 00:00:04,000\nB\n"
    assert cues(data) == [(1000, 2000, "A\n00:00:03,000 -&gt; 00:00:04,000\nB")]


# --- WebVTT ----------------------------------------------------------------------------------

VTT_CASES = {
    "minimal": (b"WEBVTT\n\n00:01.000 --> 00:02.000\nHi\n", [(1000, 2000, "Hi")]),
    "header text, identifiers, notes": (
        b"WEBVTT - My captions\nKind: captions\n\nNOTE written by hand\nmore note\n\n"
        b"intro\n00:00:01.000 --> 00:00:02.000\nHi\n",
        [(1000, 2000, "Hi")],
    ),
    "style and region blocks are dropped": (
        b"WEBVTT\n\nSTYLE\n::cue { background-image: url(https://tracker.example/x.png) }\n\n"
        b"REGION\nid:r1 width:40%\n\n00:00:01.000 --> 00:00:02.000 region:r1\nHi\n",
        [(1000, 2000, "Hi")],
    ),
    "cues without a blank line between": (
        b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nA\n00:00:03.000 --> 00:00:04.000\nB\n",
        [(1000, 2000, "A"), (3000, 4000, "B")],
    ),
    "allowed markup is kept": (
        b"WEBVTT\n\n00:00:01.000 --> 00:00:05.000\n"
        b"<v.loud Ann>Hi</v> <c.yellow.big>there</c> <i>i</i><b>b</b><u>u</u>\n"
        b"<ruby>\xe6\xbc\xa2<rt>kan</rt></ruby> <lang de>Hallo</lang> <00:00:02.000>later\n",
        [
            (
                1000,
                5000,
                "<v.loud Ann>Hi</v> <c.yellow.big>there</c> <i>i</i><b>b</b><u>u</u>\n"
                "<ruby>漢<rt>kan</rt></ruby> <lang de>Hallo</lang> <00:00:02.000>later",
            )
        ],
    ),
    "html that players would render goes": (
        b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n"
        b'<script>alert("x")</script><img src=x onerror=alert(1)><a href="javascript:x">link</a>\n'
        b"<span style='color:red'>red</span> <iframe src=//evil>\n",
        [(1000, 2000, 'alert("x")link\nred')],
    ),
    "unbalanced tags are balanced": (
        b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<b><i>open</b> stray</u> end\n",
        [(1000, 2000, "<b><i>open</i></b> stray end")],
    ),
    "stray angle brackets and ampersands are escaped": (
        b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n"
        b"1 < 2 & 3 > 2 &amp; &lt;b&gt; &bogus; &#x263A;\n",
        [(1000, 2000, "1 &lt; 2 &amp; 3 &gt; 2 &amp; &lt;b&gt; &amp;bogus; &#x263A;")],
    ),
    "bad class names and voice annotations are cleaned": (
        b'WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<c.ok.no"pe>x</c> <v Tom & "Co">y</v>\n',
        [(1000, 2000, '<c.ok>x</c> <v Tom &amp; "Co">y</v>')],
    ),
    "an existing timestamp map is dropped": (
        b"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\n"
        b"00:00:01.000 --> 00:00:02.000\nA\n",
        [(1000, 2000, "A")],
    ),
    "leading blank lines": (
        b"\n\nWEBVTT\n\n00:00:01.000 --> 00:00:02.000\nA\n",
        [(1000, 2000, "A")],
    ),
}


@pytest.mark.parametrize(("data", "expected"), VTT_CASES.values(), ids=VTT_CASES.keys())
def test_vtt_is_read_and_cleaned(data: bytes, expected: list[tuple[int, int, str]]) -> None:
    parsed = parse_captions(data)
    assert parsed.source_format == "vtt"
    assert [(c.start, c.end, c.text) for c in parsed.cues] == expected
    written = parsed.to_vtt()
    assert "STYLE" not in written
    assert "X-TIMESTAMP-MAP" not in written
    assert parse_captions(written.encode()).cues == parsed.cues


def test_vtt_reports_what_it_left_out() -> None:
    parsed = parse_captions(VTT_CASES["style and region blocks are dropped"][0])
    assert parsed.dropped == ("settings", "styles")
    assert parse_captions(VTT_CASES["minimal"][0]).dropped == ()
    assert parse_captions(VTT_CASES["html that players would render goes"][0]).dropped == (
        "markup",
    )


def test_vtt_settings_are_kept_when_valid() -> None:
    data = (
        b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000 align:start line:10% position:20%,line-left "
        b"size:50% vertical:rl region:r1 foo:bar align:sideways\nA\n"
    )
    (cue,) = parse_captions(data).cues
    assert cue.settings == "align:start line:10% position:20%,line-left size:50% vertical:rl"


VTT_ERRORS = {
    "no header": (b"00:00:01.000 --> 00:00:02.000\nA\n", None),
    "header glued to text": (b"WEBVTTX\n\n00:01.000 --> 00:02.000\nA\n", r"^This is neither"),
    "end before start": (
        b"WEBVTT\n\n00:00:05.000 --> 00:00:04.000\nA\n",
        r"^Line 3: the caption ends \(00:00:04\.000\) before it starts \(00:00:05\.000\)$",
    ),
    "bad timing": (
        b"WEBVTT\n\nintro\n00:00:01.000 --> soon\nA\n",
        r"^Line 4: expected a timing line like 00:00:01\.000 --> 00:00:04\.000, found "
        r"'00:00:01\.000 --> soon'$",
    ),
    "text after a blank line inside a cue": (
        b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nA\n\nstray text\n",
        r"^Line 6: expected a timing line .* found 'stray text' \(a blank line ends a caption\)$",
    ),
    "no cues": (b"WEBVTT\n\nNOTE nothing here\n", r"^The file has no captions in it\.$"),
    "header only": (b"WEBVTT\n", r"^The file has no captions in it\.$"),
    "thumbnail map": (
        b"WEBVTT\n\n00:00:00.000 --> 00:00:05.000\nsprite-001.jpg#xywh=0,0,160,90\n\n"
        b"00:00:05.000 --> 00:00:10.000\nsprite-001.jpg#xywh=160,0,160,90\n",
        r"thumbnail or image map, not captions",
    ),
    "metadata": (
        b'WEBVTT\n\n00:00:00.000 --> 00:00:05.000\n{"chapter": 1}\n',
        r"metadata \(JSON\), not captions",
    ),
}


@pytest.mark.parametrize(("data", "message"), VTT_ERRORS.values(), ids=VTT_ERRORS.keys())
def test_bad_vtt_is_refused(data: bytes, message: str | None) -> None:
    if message is None:
        # Without the header it is read as what it is: SRT without numbers.
        assert parse_captions(data).source_format == "srt"
        return
    with pytest.raises(CaptionError, match=message):
        parse_captions(data)


# --- any file --------------------------------------------------------------------------------

GARBAGE = {
    "empty": (b"", r"^The file is empty\.$"),
    "only whitespace": (b" \r\n\t\n", r"^The file is empty\.$"),
    "binary": (bytes(range(256)) * 8, r"^This is a binary file, not a caption text file\.$"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, r"binary"),
    "control characters in text": (
        b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nA\x07\n",
        r"^Line 4: the file contains binary data",
    ),
    "plain prose": (b"Just some notes\nabout the talk\n", r"^This is neither WebVTT nor SRT"),
    "ass": (b"[Script Info]\nTitle: x\n", r"ASS/SSA"),
    "ttml": (b'<?xml version="1.0"?><tt xmlns="http://www.w3.org/ns/ttml"/>', r"TTML"),
}


@pytest.mark.parametrize(("data", "message"), GARBAGE.values(), ids=GARBAGE.keys())
def test_non_caption_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(CaptionError, match=message):
        parse_captions(data)


def test_size_limit() -> None:
    line = b"00:00:01.000 --> 00:00:02.000\nA\n\n"
    data = b"WEBVTT\n\n" + line * (captions.MAX_BYTES // len(line) + 1)
    with pytest.raises(
        CaptionError,
        match=r"^The file is 1,025 KB; caption files can be up to 1 MB \(1,024 KB\)\.$",
    ):
        parse_captions(data)
    with pytest.raises(CaptionError, match=r"^The file is 4 KB; .* up to 2 KB\.$"):
        parse_captions(b"WEBVTT\n\n" + line * 100, max_bytes=2048)
    assert size_message(10 * 1024 * 1024, 1024 * 1024).startswith("The file is 10,240 KB;")


def test_cue_limit() -> None:
    data = b"WEBVTT\n\n" + b"".join(
        f"{format_timestamp(n * 1000)} --> {format_timestamp(n * 1000 + 500)}\n{n}\n\n".encode()
        for n in range(11)
    )
    assert len(parse_captions(data, max_cues=11).cues) == 11
    with pytest.raises(CaptionError, match=r"^The file has 11 captions; the limit is 10\.$"):
        parse_captions(data, max_cues=10)


def test_format_comes_from_the_content_not_the_name() -> None:
    assert detect_format("WEBVTT\n\n00:01.000 --> 00:02.000\nA") == "vtt"
    assert detect_format("WEBVTT\tcomment") == "vtt"
    assert detect_format("1\n00:00:01,000 --> 00:00:02,000\nA") == "srt"
    assert detect_format("\n\n00:00:01,000 --> 00:00:02,000\nA") == "srt"
    with pytest.raises(CaptionError):
        detect_format("WEBVTTX")


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "00:00:00.000"),
        (1, "00:00:00.001"),
        (61_001, "00:01:01.001"),
        (3_600_000, "01:00:00.000"),
    ],
)
def test_format_timestamp(ms: int, text: str) -> None:
    assert format_timestamp(ms) == text


def test_clean_cue_text_and_settings_directly() -> None:
    assert clean_cue_text("<b>a</b>\n\n  <i>b") == "<b>a</b>\n<i>b</i>"
    assert clean_cue_text("a --> b") == "a --&gt; b"
    assert clean_cue_text("<lang not a tag>x</lang>") == "x"
    assert clean_settings("line:-1 line:0,start position:101.5%") == "line:0,start"


# --- language tags ---------------------------------------------------------------------------

LANGUAGES = {
    "en": "en",
    "EN": "en",
    " de ": "de",
    "pt-br": "pt-BR",
    "pt_BR": "pt-BR",
    "zh-hant": "zh-Hant",
    "zh-hant-tw": "zh-Hant-TW",
    "es-419": "es-419",
    "fil": "fil",
    "yue-HK": "yue-HK",
}


@pytest.mark.parametrize(("raw", "tag"), LANGUAGES.items())
def test_language_tags_are_normalized(raw: str, tag: str) -> None:
    assert normalize_language(raw) == tag


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("english", "is not a language tag"),
        ("e", "is not a language tag"),
        ("en-", "is not a language tag"),
        ("en-US-x-private", "is not a language tag"),
        ("de/../../x", "is not a language tag"),
        ('en"', "is not a language tag"),
        ("xx", "'xx' is not a known language code"),
        ("qq-US", "'qq' is not a known language code"),
    ],
)
def test_bad_language_tags(raw: str, message: str) -> None:
    with pytest.raises(CaptionError, match=message):
        normalize_language(raw)


def test_language_names() -> None:
    assert language_name("de") == "Deutsch"
    assert language_name("pt-BR") == "Português (Brasil)"
    assert language_name("de-AT") == "Deutsch"
    assert language_name("fil") == "fil"


# --- HLS -------------------------------------------------------------------------------------


def test_subtitle_playlist() -> None:
    assert subtitle_playlist("en.vtt?v=1", 61.2) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:3\n"
        "#EXT-X-TARGETDURATION:62\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXTINF:61.200,\n"
        "en.vtt?v=1\n"
        "#EXT-X-ENDLIST\n"
    )


def test_timestamp_map_is_set_replaced_and_removed() -> None:
    vtt = Captions((Cue(1000, 2000, "A"),), "vtt").to_vtt()
    mapped = with_timestamp_map(vtt, 133200)
    assert mapped.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:133200,LOCAL:00:00:00.000\n\n")
    assert with_timestamp_map(mapped, 126000).count("X-TIMESTAMP-MAP") == 1
    assert "MPEGTS:126000," in with_timestamp_map(mapped, 126000)
    assert with_timestamp_map(mapped, None) == vtt
    assert parse_captions(mapped.encode()).cues == parse_captions(vtt.encode()).cues


FFMPEG_MASTER = (
    "#EXTM3U\n"
    "#EXT-X-VERSION:6\n"
    '#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,CODECS="avc1.4d401f,mp4a.40.2"\n'
    "720p/index.m3u8\n"
    "\n"
    '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"\n'
    "360p/index.m3u8\n"
    "\n"
)
EN = SubtitleTrack(language="en", name="English", uri="../captions/en.m3u8")
DE = SubtitleTrack(language="de", name="Deutsch", uri="../captions/de.m3u8")
PT_BR = SubtitleTrack(language="pt-BR", name="Português (Brasil)", uri="../captions/pt-BR.m3u8")


def test_master_rewrite_adds_tracks_and_groups() -> None:
    rewritten = rewrite_master(FFMPEG_MASTER, [DE, EN])
    assert rewritten == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Deutsch",LANGUAGE="de",'
        'DEFAULT=NO,AUTOSELECT=YES,URI="../captions/de.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",'
        'DEFAULT=NO,AUTOSELECT=YES,URI="../captions/en.m3u8"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,CODECS="avc1.4d401f,mp4a.40.2",'
        'SUBTITLES="subs"\n'
        "720p/index.m3u8\n"
        "\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2",'
        'SUBTITLES="subs"\n'
        "360p/index.m3u8\n"
        "\n"
    )


SETS = [[], [EN], [DE, EN], [EN, DE, PT_BR], [PT_BR], []]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_master_rewrite_is_idempotent_and_reversible(newline: str) -> None:
    original = FFMPEG_MASTER.replace("\n", newline)
    for before, after in itertools.product(SETS, SETS):
        once = rewrite_master(rewrite_master(original, before), after)
        assert once == rewrite_master(original, after), (before, after)
        assert rewrite_master(once, after) == once
        assert rewrite_master(once, []) == original
        assert once.count("#EXT-X-MEDIA:") == len(after)
        assert once.count('SUBTITLES="subs"') == (2 if after else 0)
    # Added lines end like the playlist's own.
    lines = rewrite_master(original, [EN, DE]).splitlines(keepends=True)
    assert all(
        line.endswith(newline) and not line[: -len(newline)].endswith("\r") for line in lines
    )


def test_master_rewrite_keeps_other_media_and_refuses_what_it_cannot_do() -> None:
    with_audio = FFMPEG_MASTER.replace(
        "#EXT-X-VERSION:6\n",
        '#EXT-X-VERSION:6\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Main",URI="a.m3u8"\n',
    )
    assert rewrite_master(rewrite_master(with_audio, [EN]), []) == with_audio
    assert 'TYPE=AUDIO,GROUP-ID="aud"' in rewrite_master(with_audio, [EN])
    foreign = FFMPEG_MASTER.replace('mp4a.40.2"\n720p', 'mp4a.40.2",SUBTITLES="other"\n720p')
    with pytest.raises(ValueError, match="another subtitle group"):
        rewrite_master(foreign, [EN])
    with pytest.raises(ValueError, match="not a master playlist"):
        rewrite_master("#EXTM3U\n#EXTINF:4,\nseg.ts\n", [EN])
    with pytest.raises(ValueError, match="no #EXTM3U"):
        rewrite_master("hello", [EN])
    with pytest.raises(ValueError, match="unique"):
        rewrite_master(FFMPEG_MASTER, [EN, EN])
    with pytest.raises(ValueError, match="quotes"):
        rewrite_master(FFMPEG_MASTER, [SubtitleTrack("en", 'Say "hi"', "en.m3u8")])


def test_variant_and_segment_uris() -> None:
    assert variant_uris(FFMPEG_MASTER) == ["360p/index.m3u8", "720p/index.m3u8"]
    assert variant_uris(rewrite_master(FFMPEG_MASTER, [EN])) == [
        "360p/index.m3u8",
        "720p/index.m3u8",
    ]
    playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg_00000.ts\n#EXT-X-ENDLIST\n"
    assert first_segment_uri(playlist) == "seg_00000.ts"
    assert first_segment_uri("#EXTM3U\n#EXT-X-ENDLIST\n") is None


def test_mpegts_start_ignores_what_is_not_transport_stream() -> None:
    assert mpegts_start(b"") is None
    assert mpegts_start(b"\x00" * 188 * 4) is None
    assert mpegts_start(b"WEBVTT\n" * 100) is None


# --- on a real HLS ladder --------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real HLS folder made by the pipeline (a remux of a tiny H.264/AAC clip with B-frames)."""
    folder = tmp_path_factory.mktemp("captions-hls")
    source = h264_mp4(folder / "clip.mp4", seconds=3, extra=("-bf", "2"))
    output = hls.remux(probe(source, max_duration=60, max_size=10**8), folder / "v1")
    return output.folder


def test_rewrite_of_a_master_made_by_the_pipeline(published: Path) -> None:
    original = (published / MASTER).read_text()
    with_two = rewrite_master(original, [EN, DE])
    assert rewrite_master(with_two, [EN, DE]) == with_two
    with_one = rewrite_master(with_two, [DE])
    assert 'LANGUAGE="en"' not in with_one
    assert with_one == rewrite_master(original, [DE])
    assert rewrite_master(with_one, []) == original
    # Every variant names the group, and the group is declared before it is used.
    lines = with_two.splitlines()
    streams = [n for n, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF:")]
    media = [n for n, line in enumerate(lines) if line.startswith("#EXT-X-MEDIA:")]
    assert streams
    assert all(lines[n].endswith(',SUBTITLES="subs"') for n in streams)
    assert max(media) < min(streams)


def test_mpegts_start_is_the_first_video_frame_of_the_segment(published: Path) -> None:
    uri = variant_uris((published / MASTER).read_text())[0]
    playlist = published / uri
    segment = playlist.parent / str(first_segment_uri(playlist.read_text()))
    with av.open(str(segment)) as container:
        stream = container.streams.video[0]
        first = min(
            packet.pts
            for packet in itertools.islice(container.demux(stream), 8)
            if packet.pts is not None
        )
    start = mpegts_start(segment.read_bytes())
    assert start == first
    # ffmpeg starts MPEG-TS output 1.4 s in, plus the B-frame delay of this clip.
    assert 126000 <= start < 126000 + 90000 // 2
