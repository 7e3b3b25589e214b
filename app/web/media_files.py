"""`/media/...`: published video files for players, from local disk or S3. Never the uploads.

Only keys under `videos/` with a known media extension are served, and the editor's public
images (`images/<random>.<ext>`, never rewritten, so cached for a year); sources under
`uploads/` and anything else in the store answer 404, as do hidden and half-written names.

- Local storage: the file itself, with its content type and HTTP range requests (206).
- S3 with a public or CDN base URL: a redirect there (players then resolve relative URIs
  against that base, so they fetch everything else from it directly).
- A private S3 bucket: playlists come from here with every segment URI replaced by a presigned
  URL (a presigned master could not authorise the segments its variants name relatively);
  playlist URIs stay relative, so variant and subtitle playlists come back here too. The
  thumbnail map gets its sprite sheets presigned the same way. Other files redirect to a
  presigned URL. The bucket must allow cross-origin GETs from the app's
  origin (see the README).
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from app.services.images import IMAGE_PREFIX, is_image_key
from app.services.storage import shared_storage
from app.settings import get_settings
from media.playlist import resolve, rewrite_image_references, rewrite_uris
from media.storage import (
    KeyNotFound,
    LocalStorage,
    S3Storage,
    Storage,
    StorageError,
    clean_key,
    content_type_for,
)
from media.thumbnails import VTT_NAME

PUBLISHED_PREFIX = "videos/"
PLAYLIST_CACHE = "no-cache"  # a master playlist may be rewritten in place (subtitles)
FILE_CACHE = "public, max-age=86400"
IMAGE_CACHE = "public, max-age=31536000, immutable"  # a new image always gets a new key
SIGNED_CACHE = "private, max-age=300"


def current_storage() -> Storage:
    """The configured media storage, built once per settings (an S3 client is not cheap)."""
    return shared_storage()


def published_key(raw: str) -> str | None:
    """The storage key of a published media file named in a URL, or None if it may not be served."""
    if raw.startswith(IMAGE_PREFIX):
        # Only the flat images/<random>.<ext> keys the image service writes, nothing deeper.
        if not is_image_key(raw) or not (content_type_for(raw) or "").startswith("image/"):
            return None
    elif not raw.startswith(PUBLISHED_PREFIX) or content_type_for(raw) is None:
        return None
    try:
        key = clean_key(raw)
    except StorageError:
        return None
    if any(part.startswith(".") for part in key.split("/")) or key.endswith(".partial"):
        return None
    return key


def needs_signing(key: str) -> bool:
    """Whether a file names others relatively, so a private bucket needs it rewritten here."""
    return key.endswith(".m3u8") or key.rsplit("/", 1)[-1] == VTT_NAME


def signed_playlist(storage: Storage, key: str, text: str, *, expires_in: int) -> str:
    """A stored playlist (or thumbnail map) with file URIs presigned, playlist URIs relative."""

    def sign(uri: str) -> str:
        target = resolve(key, uri)
        if target is None or target.endswith(".m3u8") or published_key(target) is None:
            return uri
        return storage.url(target, expires_in=expires_in)

    if key.endswith(".m3u8"):
        return rewrite_uris(text, sign)
    return rewrite_image_references(text, sign)


def _not_found() -> HTTPException:
    return HTTPException(status_code=404)


async def serve(request: Request) -> Response:
    """Serve or point to one published media file."""
    key = published_key(request.path_params["key"])
    if key is None:
        raise _not_found()
    kind = content_type_for(key) or "application/octet-stream"
    storage = current_storage()
    if isinstance(storage, LocalStorage):
        path = storage.path(key)
        if not path.is_file():
            raise _not_found()
        cache = PLAYLIST_CACHE if key.endswith(".m3u8") else FILE_CACHE
        if key.startswith(IMAGE_PREFIX):
            cache = IMAGE_CACHE
        return FileResponse(path, media_type=kind, headers={"Cache-Control": cache})
    ttl = get_settings().media_url_ttl_seconds
    if needs_signing(key) and isinstance(storage, S3Storage) and not storage.public_base_url:
        try:
            data = await asyncio.to_thread(storage.read_bytes, key)
        except KeyNotFound:
            raise _not_found() from None
        text = data.decode("utf-8", errors="replace")
        body = await asyncio.to_thread(signed_playlist, storage, key, text, expires_in=ttl)
        return Response(body, media_type=kind, headers={"Cache-Control": SIGNED_CACHE})
    url = storage.url(key, expires_in=ttl)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": SIGNED_CACHE})
