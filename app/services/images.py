"""Pictures editors upload (logos, covers, presenter photos): checked, cleaned and stored.

Every accepted image is decoded and encoded again, so what is stored holds pixels only: no
EXIF (camera, GPS position), comments or other metadata survive, and the EXIF orientation is
applied to the pixels first so that a phone photo stays upright. Images are stored under
`images/<random>.<ext>`, a key nobody can guess and nothing else shares, served publicly by
`/media/images/...`.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import tempfile
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from media.storage import Storage

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGE_SIDE = 4000
IMAGE_PREFIX = "images/"
# Pillow's own plugins for these formats only: no SVG (scripts), no exotic decoders.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
ACCEPT_ATTRIBUTE = "image/png,image/jpeg,image/webp,image/gif"


class ImagePurpose(StrEnum):
    """Where an image is shown, which decides how wide it is kept."""

    COVER = "cover"
    LOGO = "logo"
    PHOTO = "photo"


# Wider than any place the public pages show them (at 2x for sharp screens), no wider.
MAX_WIDTH = {ImagePurpose.COVER: 1600, ImagePurpose.LOGO: 400, ImagePurpose.PHOTO: 400}
_OUTPUT = {  # input format -> (output format, extension, content type)
    "PNG": ("PNG", "png", "image/png"),
    "JPEG": ("JPEG", "jpg", "image/jpeg"),
    "WEBP": ("WEBP", "webp", "image/webp"),
    # A GIF keeps its first frame only, as a PNG (lossless, and what the pages can show still).
    "GIF": ("PNG", "png", "image/png"),
}


class ImageError(ValueError):
    """An uploaded file that is not an acceptable image; the message says why, for the editor."""


@dataclass(frozen=True)
class ImageUpload:
    """An uploaded file as received: its name and at most MAX_IMAGE_BYTES + 1 of its bytes."""

    filename: str
    data: bytes
    size: int


@dataclass(frozen=True)
class CleanImage:
    """An image re-encoded without metadata, ready to store."""

    data: bytes
    extension: str
    content_type: str
    width: int
    height: int


def _megabytes(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB"


def _flatten_mode(image: Image.Image) -> Image.Image:
    """RGB, or RGBA where there is transparency (palette, 16-bit and CMYK images included)."""
    if image.mode in {"RGB", "RGBA"}:
        return image
    has_alpha = image.mode in {"LA", "PA", "La", "RGBa"} or (
        image.mode == "P" and "transparency" in image.info
    )
    return image.convert("RGBA" if has_alpha else "RGB")


def clean_image(upload: ImageUpload, *, purpose: ImagePurpose) -> CleanImage:
    """Check an upload; re-encode it without metadata, upright, at most the purpose's width."""
    if upload.size == 0 or not upload.data:
        raise ImageError("The file is empty. Choose a PNG, JPEG, WebP or GIF image.")
    if upload.size > MAX_IMAGE_BYTES or len(upload.data) > MAX_IMAGE_BYTES:
        raise ImageError(
            f"The image is {_megabytes(max(upload.size, len(upload.data)))}; "
            f"the limit is {_megabytes(MAX_IMAGE_BYTES)}."
        )
    try:
        # A decompression-bomb warning means an absurd pixel count: refuse instead of decoding.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(upload.data), formats=ACCEPTED_FORMATS) as opened:
                kind = opened.format or ""
                width, height = opened.size
                # Checked before decoding a single pixel: the header alone gives the size.
                if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
                    raise ImageError(
                        f"The image is {width} x {height} pixels; the limit is "
                        f"{MAX_IMAGE_SIDE} x {MAX_IMAGE_SIDE}."
                    )
                opened.load()
                image = ImageOps.exif_transpose(opened)
                icc = opened.info.get("icc_profile")
                clean = _flatten_mode(image)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            "This file is not a PNG, JPEG, WebP or GIF image (SVG is not accepted)."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"The image has too many pixels; the limit is {MAX_IMAGE_SIDE} x {MAX_IMAGE_SIDE}."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageError("The image file is damaged or incomplete.") from None

    limit = MAX_WIDTH[purpose]
    if clean.width > limit:
        height = max(1, round(clean.height * limit / clean.width))
        clean = clean.resize((limit, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    output, extension, content_type = _OUTPUT[kind]
    if output == "JPEG" and clean.mode != "RGB":
        clean = clean.convert("RGB")
    # Nothing of the original's metadata rides along: only the colour profile is kept.
    clean.info = {}
    options: dict[str, object] = {}
    if isinstance(icc, bytes) and icc:
        options["icc_profile"] = icc
    if output == "JPEG":
        options.update(quality=85, optimize=True, progressive=True)
    elif output == "WEBP":
        options.update(quality=85, method=4)
    else:
        options.update(optimize=True)
    buffer = io.BytesIO()
    clean.save(buffer, format=output, **options)
    return CleanImage(buffer.getvalue(), extension, content_type, clean.width, clean.height)


def new_image_key(extension: str) -> str:
    """A fresh, unguessable storage key for an image."""
    return f"{IMAGE_PREFIX}{secrets.token_urlsafe(18)}.{extension}"


def _put(storage: Storage, key: str, image: CleanImage) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"image.{image.extension}"
        path.write_bytes(image.data)
        storage.put_file(key, path, content_type=image.content_type)


async def store_image(image: CleanImage, *, storage: Storage) -> str:
    """Store a cleaned image under a new key; the key."""
    key = new_image_key(image.extension)
    await asyncio.to_thread(_put, storage, key, image)
    return key


def is_image_key(key: str | None) -> bool:
    """Whether a key names an uploaded image (and so may be deleted with its owner)."""
    if not key or not key.startswith(IMAGE_PREFIX):
        return False
    name = key[len(IMAGE_PREFIX) :]
    return bool(name) and "/" not in name and not name.startswith(".")


async def delete_images(keys: list[str], *, storage: Storage) -> None:
    """Remove stored images (keys that are not images are left alone)."""
    for key in keys:
        if is_image_key(key):
            await asyncio.to_thread(storage.delete, key)
