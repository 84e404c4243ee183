"""Images are decoded and written again with Pillow before they are stored: what is stored is pixels, not
whatever else the file carried (EXIF with GPS positions, comments, trailing data), and a thumbnail is made.

Decoding is where memory goes: an image is refused before decoding when its pixels exceed
CHAT_ATTACHMENT_MAX_PIXELS (a "decompression bomb": a small file that decodes to gigabytes), and at most
IMAGE_SLOTS images are decoded at once per process, so a worker's memory for images is bounded by
IMAGE_SLOTS x max pixels x 4 bytes. Only the first frame is ever decoded: an animated GIF or WebP is stored
as a still image. (Pillow grows an image to a later frame's declared size, and its writers keep a copy of
every frame: a few-KB animation could claim gigabytes, which no first-frame check sees.)
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# Two cores on the machines this runs on: more decoders at once only queue for CPU while holding memory.
IMAGE_SLOTS = 2
# How long an upload waits for a decoding slot before it is told to retry (503).
SLOT_WAIT_S = 30.0
THUMBNAIL_BOX = (320, 320)
PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}

_slots = threading.BoundedSemaphore(IMAGE_SLOTS)
# Pillow's own bomb check warns past 89 MP and fails past twice that, whatever the setting; the size is checked
# here instead, against CHAT_ATTACHMENT_MAX_PIXELS, after reading the header and before decoding anything.
Image.MAX_IMAGE_PIXELS = None


class ImageRefused(Exception):
    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail)
        self.detail, self.code = detail, code


class ImagesBusy(Exception):
    """No decoding slot came free in time."""


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    thumbnail: bytes  # WebP
    width: int
    height: int


def reencode(data: bytes, content_type: str, *, max_pixels: int) -> CleanImage:
    if not _slots.acquire(timeout=SLOT_WAIT_S):
        raise ImagesBusy
    try:
        return _reencode(data, content_type, max_pixels)
    finally:
        _slots.release()


def _reencode(data: bytes, content_type: str, max_pixels: int) -> CleanImage:
    fmt = PILLOW_FORMATS[content_type]
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt])  # reads the header only
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRefused("The image could not be read.", "attachment_unreadable") from exc
    width, height = image.size  # the header's (a GIF's logical screen): what decoding frame 0 allocates
    if width * height > max_pixels:
        raise ImageRefused(
            f"The image is {width}x{height} pixels; at most {max_pixels} pixels are accepted.",
            "attachment_image_too_large",
        )
    try:
        out, first = _still(image, fmt)
        thumbnail = _thumbnail(first)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # truncated or corrupt data
        raise ImageRefused("The image could not be read.", "attachment_unreadable") from exc
    return CleanImage(out, thumbnail, first.width, first.height)


def _still(image: Image.Image, fmt: str) -> tuple[bytes, Image.Image]:
    image.load()
    icc = image.info.get("icc_profile")
    # Turned upright first: the orientation is in the EXIF that is about to be dropped.
    upright = ImageOps.exif_transpose(image)
    upright.info = {}
    if fmt == "JPEG" and upright.mode not in ("RGB", "L", "CMYK"):
        upright = upright.convert("RGB")
    options: dict = {"icc_profile": icc} if icc and fmt != "GIF" else {}
    if fmt == "JPEG" or fmt == "WEBP":
        options["quality"] = 90
    out = io.BytesIO()
    upright.save(out, format=fmt, **options)
    return out.getvalue(), upright


def _thumbnail(image: Image.Image) -> bytes:
    thumb = image.copy()
    thumb.info = {}
    if thumb.mode not in ("RGB", "RGBA"):
        thumb = thumb.convert("RGBA" if "transparency" in image.info or "A" in image.getbands() else "RGB")
    thumb.thumbnail(THUMBNAIL_BOX)
    out = io.BytesIO()
    thumb.save(out, format="WEBP", quality=80)
    return out.getvalue()
