"""Uploaded images: re-encoded without metadata, upright and resized; bad files refused."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from app.services import images
from app.services.images import (
    ImageError,
    ImagePurpose,
    ImageUpload,
    clean_image,
    delete_images,
    is_image_key,
    store_image,
)
from media.storage import LocalStorage

GPS_IFD = 0x8825
ORIENTATION = 0x0112
MAKE = 0x010F


def encode(image: Image.Image, kind: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
    return buffer.getvalue()


def upload(data: bytes, name: str = "picture") -> ImageUpload:
    return ImageUpload(name, data, len(data))


def camera_jpeg(width: int = 300, height: int = 200, *, orientation: int = 1) -> bytes:
    """A JPEG as a phone writes it: camera make, GPS position and an orientation tag."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    # Left third green so that a rotation can be seen in the pixels.
    image.paste((30, 200, 30), (0, 0, width // 3, height))
    exif = Image.Exif()
    exif[MAKE] = "PhoneMaker"
    exif[ORIENTATION] = orientation
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    return encode(image, "JPEG", exif=exif, quality=95)


def test_a_jpeg_loses_its_exif_and_gps() -> None:
    original = camera_jpeg()
    with Image.open(io.BytesIO(original)) as before:
        assert before.getexif().get(MAKE) == "PhoneMaker"
        assert before.getexif().get_ifd(GPS_IFD)
    clean = clean_image(upload(original), purpose=ImagePurpose.PHOTO)
    assert clean.content_type == "image/jpeg"
    assert clean.extension == "jpg"
    with Image.open(io.BytesIO(clean.data)) as after:
        assert after.format == "JPEG"
        assert len(after.getexif()) == 0
        assert "exif" not in after.info
    assert b"PhoneMaker" not in clean.data


def test_the_exif_orientation_is_applied_to_the_pixels() -> None:
    # Orientation 6: the camera was turned; viewers rotate by 90 degrees clockwise.
    clean = clean_image(upload(camera_jpeg(300, 200, orientation=6)), purpose=ImagePurpose.PHOTO)
    assert (clean.width, clean.height) == (200, 300)
    with Image.open(io.BytesIO(clean.data)) as after:
        assert after.size == (200, 300)
        top = after.convert("RGB").getpixel((100, 20))
        bottom = after.convert("RGB").getpixel((100, 280))
    # The green third (left before) is at the top after turning clockwise.
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    assert top[1] > 150
    assert top[0] < 100
    assert bottom[0] > 150
    assert bottom[1] < 100


@pytest.mark.parametrize(
    ("purpose", "width", "expected"),
    [
        (ImagePurpose.COVER, 2400, (1600, 1000)),
        (ImagePurpose.LOGO, 2400, (400, 250)),
        (ImagePurpose.PHOTO, 800, (400, 250)),
        (ImagePurpose.COVER, 800, (800, 500)),  # never enlarged
    ],
)
def test_images_are_downscaled_to_their_purpose(
    purpose: ImagePurpose, width: int, expected: tuple[int, int]
) -> None:
    data = encode(Image.new("RGB", (width, width * 5 // 8), "navy"), "PNG")
    clean = clean_image(upload(data), purpose=purpose)
    assert (clean.width, clean.height) == expected


def test_png_transparency_and_webp_are_kept_in_their_format() -> None:
    png = encode(Image.new("RGBA", (40, 40), (0, 0, 255, 0)), "PNG")
    clean = clean_image(upload(png), purpose=ImagePurpose.LOGO)
    assert clean.content_type == "image/png"
    with Image.open(io.BytesIO(clean.data)) as after:
        assert after.mode == "RGBA"
        pixel = after.getpixel((5, 5))
    assert isinstance(pixel, tuple)
    assert pixel[3] == 0
    webp = encode(Image.new("RGB", (40, 40), "red"), "WEBP")
    assert clean_image(upload(webp), purpose=ImagePurpose.LOGO).content_type == "image/webp"


def test_a_gif_becomes_a_png_of_its_first_frame() -> None:
    frames = [Image.new("P", (30, 20), colour) for colour in (1, 2)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], comment=b"secret")
    clean = clean_image(upload(data), purpose=ImagePurpose.LOGO)
    assert clean.content_type == "image/png"
    assert clean.extension == "png"
    assert b"secret" not in clean.data
    with Image.open(io.BytesIO(clean.data)) as after:
        assert after.format == "PNG"
        assert after.size == (30, 20)


def test_png_text_chunks_are_removed() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "Somebody Private")
    data = encode(Image.new("RGB", (20, 20), "white"), "PNG", pnginfo=info)
    assert b"Somebody Private" in data
    clean = clean_image(upload(data), purpose=ImagePurpose.LOGO)
    assert b"Somebody Private" not in clean.data


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares a size in its header (and has no real pixel data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    crc = struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    idat = b"IDAT" + zlib.compress(b"\x00" * 10)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + crc
        + struct.pack(">I", len(idat) - 4)
        + idat
        + struct.pack(">I", zlib.crc32(idat) & 0xFFFFFFFF)
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "SVG"),
        (b"%PDF-1.4 not an image", "not a PNG, JPEG, WebP or GIF"),
        (_png_header(4001, 10), "4001 x 10 pixels; the limit is 4000 x 4000"),
        # A decompression bomb: a tiny file that claims 60000 x 60000 pixels.
        (_png_header(60000, 60000), "the limit is 4000 x 4000"),
        (_png_header(100, 100), "damaged or incomplete"),
    ],
    ids=["empty", "svg", "pdf", "too-wide", "bomb", "truncated"],
)
def test_bad_files_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        clean_image(upload(data), purpose=ImagePurpose.PHOTO)


def test_a_truncated_jpeg_is_refused() -> None:
    data = camera_jpeg()
    with pytest.raises(ImageError, match="damaged or incomplete"):
        clean_image(upload(data[: len(data) // 2]), purpose=ImagePurpose.PHOTO)


def test_files_over_the_size_limit_are_refused_before_decoding() -> None:
    big = ImageUpload("huge.png", b"\x89PNG" + b"\0" * 100, images.MAX_IMAGE_BYTES + 1)
    with pytest.raises(ImageError, match=r"the limit is 5\.0 MB"):
        clean_image(big, purpose=ImagePurpose.COVER)


async def test_store_and_delete(tmp_path: Path) -> None:
    storage = LocalStorage(root=tmp_path / "media")
    clean = clean_image(upload(camera_jpeg()), purpose=ImagePurpose.PHOTO)
    key = await store_image(clean, storage=storage)
    other = await store_image(clean, storage=storage)
    assert key != other
    assert key.startswith("images/")
    assert key.endswith(".jpg")
    assert is_image_key(key)
    assert storage.path(key).read_bytes() == clean.data
    await delete_images([key, "videos/1/master.m3u8"], storage=storage)
    assert not storage.exists(key)
    assert storage.exists(other)


def test_image_keys() -> None:
    assert is_image_key("images/abc.png")
    for key in ("", None, "images/", "images/a/b.png", "videos/abc.png", "images/.hidden"):
        assert not is_image_key(key)
