"""Read and rewrite the URIs inside HLS playlists and thumbnail maps (pure text, no I/O).

A private S3 bucket authorises each object by its own presigned URL, so a presigned master
playlist cannot authorise the segments its variants name relatively. The app therefore serves
the playlists itself and swaps each segment URI for a presigned URL (`rewrite_uris`), while
playlist URIs stay relative and come back to the app.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePosixPath

_URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')
_IMAGE_REFERENCE = re.compile(
    r"^(?P<uri>[^\s#]+\.(?:jpe?g|png|webp))(?P<region>#xywh=\d+,\d+,\d+,\d+)?$", re.IGNORECASE
)


def resolve(base_key: str, uri: str) -> str | None:
    """The storage key that a URI inside the playlist stored at `base_key` points to.

    None for absolute URLs, absolute paths and anything climbing out of the storage root.
    """
    if not uri or "://" in uri or uri.startswith(("/", "data:")):
        return None
    path = uri.split("#", 1)[0].split("?", 1)[0]
    parts = list(PurePosixPath(base_key).parent.parts)
    for part in path.split("/"):
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in {"", "."}:
            parts.append(part)
    return "/".join(parts) or None


def uris(text: str) -> list[str]:
    """Every URI a playlist names: media lines and URI="..." attributes, in order."""
    found: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            found += _URI_ATTRIBUTE.findall(stripped)
        else:
            found.append(stripped)
    return found


def rewrite_uris(text: str, rewrite: Callable[[str], str]) -> str:
    """The playlist with every URI (media lines, URI="..." attributes) passed through `rewrite`."""
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            lines.append(line)
        elif stripped.startswith("#"):
            lines.append(_URI_ATTRIBUTE.sub(lambda m: f'URI="{rewrite(m.group(1))}"', stripped))
        else:
            lines.append(rewrite(stripped))
    return "\n".join(lines) + "\n"


def rewrite_image_references(vtt: str, rewrite: Callable[[str], str]) -> str:
    """A WebVTT thumbnail map with each cue's image URI (before `#xywh=`) passed to `rewrite`."""
    lines: list[str] = []
    for line in vtt.splitlines():
        match = _IMAGE_REFERENCE.match(line.strip())
        if match is None:
            lines.append(line)
        else:
            lines.append(rewrite(match.group("uri")) + (match.group("region") or ""))
    return "\n".join(lines) + "\n"
