"""Pillow checks and thumbnails for generated images and command-line reference files.

A provider's bytes are never trusted: the format must be one we serve, the pixel count bounded
(before decoding: decompression bombs), and the whole stream must decode. The thumbnail is made in
the same pass (JPEG draft mode decodes at a reduced scale, which still reads every byte).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from campaigns.images import ImageRejected

FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpeg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "AVIF": ("avif", "image/avif"),
}
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "avif": "avif"}


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "jpeg", "png", "webp", "avif"
    content_type: str
    width: int
    height: int
    byte_size: int
    sha256: str

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def _header(content: bytes, image: Image.Image, *, max_pixels: int) -> ImageInfo:
    """What an opened image's header says, if it passes (format, pixel bound); raise ImageRejected."""
    fmt = image.format or ""
    width, height = image.size
    if fmt not in FORMATS:
        raise ImageRejected(f"unsupported image format {fmt or 'unknown'}")
    if width * height > max_pixels:
        raise ImageRejected(
            f"{width}×{height} px is over the {max_pixels:,}-pixel limit"
        )
    name, content_type = FORMATS[fmt]
    return ImageInfo(
        name,
        content_type,
        width,
        height,
        len(content),
        hashlib.sha256(content).hexdigest(),
    )


def inspect(content: bytes, *, max_pixels: int) -> ImageInfo:
    """Check the header and structure (no full decode); raise ImageRejected."""
    if not content:
        raise ImageRejected("empty file")
    try:
        with Image.open(io.BytesIO(content)) as image:
            info = _header(content, image, max_pixels=max_pixels)
            image.verify()
    except ImageRejected:
        raise
    except Exception as exc:  # Pillow raises many types for bad data
        raise ImageRejected(
            f"not a readable image ({type(exc).__name__}: {exc})"
        ) from exc
    return info


def inspect_and_thumbnail(
    content: bytes, *, max_pixels: int, max_side: int
) -> tuple[ImageInfo, bytes]:
    """inspect() plus a WebP thumbnail no larger than max_side, from one open and one decode.

    The header is checked before any pixel is decoded (format, pixel bound: decompression bombs);
    the decode that makes the thumbnail is the check that the whole stream is readable (a
    truncated or corrupt stream raises in load()), so no separate verify() pass is made.
    """
    if not content:
        raise ImageRejected("empty file")
    try:
        with Image.open(io.BytesIO(content)) as image:
            info = _header(content, image, max_pixels=max_pixels)
            image.draft("RGB", (max_side, max_side))
            image.load()
            thumb = ImageOps.exif_transpose(image)
            if thumb.mode not in ("RGB", "RGBA"):
                thumb = thumb.convert("RGBA" if "A" in thumb.getbands() else "RGB")
            thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            # method 1: on photos both faster and smaller than the default 4 (and than 2).
            thumb.save(out, format="WEBP", quality=80, method=1)
    except ImageRejected:
        raise
    except Exception as exc:  # Pillow raises many types for bad data
        raise ImageRejected(
            f"not a readable image ({type(exc).__name__}: {exc})"
        ) from exc
    return info, out.getvalue()
