"""Reading and rewriting the URIs of HLS playlists."""

from __future__ import annotations

import pytest

from media.playlist import resolve, rewrite_image_references, rewrite_uris, uris

MASTER = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",URI="subs/en.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2",SUBTITLES="subs"
360p/index.m3u8
"""
VARIANT = """#EXTM3U
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.0,
seg_00000.ts

#EXTINF:2.0,
seg_00001.ts
#EXT-X-ENDLIST
"""


def test_uris_lists_media_lines_and_uri_attributes() -> None:
    assert uris(MASTER) == ["subs/en.m3u8", "360p/index.m3u8"]
    assert uris(VARIANT) == ["init.mp4", "seg_00000.ts", "seg_00001.ts"]


@pytest.mark.parametrize(
    ("uri", "key"),
    [
        ("seg_00000.ts", "videos/1/v1/360p/seg_00000.ts"),
        ("./seg_00000.ts?x=1#t", "videos/1/v1/360p/seg_00000.ts"),
        ("../poster.jpg", "videos/1/v1/poster.jpg"),
        ("../../../../../etc/passwd", None),
        ("https://cdn.example/seg.ts", None),
        ("/media/videos/1/seg.ts", None),
        ("data:text/plain,x", None),
        ("", None),
    ],
)
def test_resolve_relative_uris_to_keys(uri: str, key: str | None) -> None:
    assert resolve("videos/1/v1/360p/index.m3u8", uri) == key


def test_rewrite_keeps_everything_else() -> None:
    rewritten = rewrite_uris(VARIANT, lambda uri: f"https://signed/{uri}?sig=1")
    assert rewritten.splitlines() == [
        "#EXTM3U",
        '#EXT-X-MAP:URI="https://signed/init.mp4?sig=1"',
        "#EXTINF:4.0,",
        "https://signed/seg_00000.ts?sig=1",
        "",
        "#EXTINF:2.0,",
        "https://signed/seg_00001.ts?sig=1",
        "#EXT-X-ENDLIST",
    ]
    assert rewrite_uris(MASTER, lambda uri: uri) == MASTER


def test_rewrite_image_references_in_a_thumbnail_map() -> None:
    vtt = (
        "WEBVTT\n\n00:00:00.000 --> 00:00:05.000\nsprite-001.jpg#xywh=0,0,160,90\n\n"
        "00:00:05.000 --> 00:00:07.500\nsprite-001.jpg#xywh=160,0,160,90\n"
    )
    rewritten = rewrite_image_references(vtt, lambda uri: f"https://signed/{uri}?sig=1")
    assert rewritten.splitlines() == [
        "WEBVTT",
        "",
        "00:00:00.000 --> 00:00:05.000",
        "https://signed/sprite-001.jpg?sig=1#xywh=0,0,160,90",
        "",
        "00:00:05.000 --> 00:00:07.500",
        "https://signed/sprite-001.jpg?sig=1#xywh=160,0,160,90",
    ]
    captions = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nSee the chart in slides.png today\n"
    assert rewrite_image_references(captions, lambda uri: "x") == captions
