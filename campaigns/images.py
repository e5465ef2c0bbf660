"""Cleaning of uploaded reference images: the one gate every uploaded image goes through.

Pure functions over bytes (no models, no storage), so the same pipeline serves the upload view,
the demo-data command and tests. The order of the checks is the point:

1. size in bytes, before anything is read into memory;
2. the real format, from the content (the file name and its extension are never trusted), and
   only through the Pillow plugins we accept: Pillow never runs e.g. its EPS plugin (Ghostscript)
   on an upload;
3. the pixel count from the header, before any pixel is decoded (decompression bombs);
4. still images only (animated GIF/WebP/APNG/AVIF and multi-page TIFF are refused);
5. a full decode, so truncated and corrupt files are caught here and not later in a worker;
6. EXIF orientation applied, colours converted to 8-bit sRGB (RGB, or RGBA when the image really
   has transparency), all metadata dropped, and the result re-encoded;
7. a WebP thumbnail.

Anything wrong raises `ImageRejected` with a message meant for the person who uploaded the file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from typing import IO, cast

from django.conf import settings
from django.core.files.base import File
from PIL import ExifTags, Image, ImageCms, ImageOps

logger = logging.getLogger(__name__)

# Pillow format ids we open. MPO is what Pillow calls a camera JPEG that carries extra images
# (a preview, a depth map); we keep its first image, which is the photo.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "AVIF", "GIF", "BMP", "TIFF")
ACCEPTED_LABEL = "PNG, JPEG, WebP, AVIF, GIF (still), BMP or TIFF"
# <input accept>; the server decides from the content whatever the browser lets through.
ACCEPT_ATTRIBUTE = (
    "image/png,image/jpeg,image/webp,image/avif,image/gif,image/bmp,image/tiff"
)

THUMBNAIL_SIZE = 480
THUMBNAIL_QUALITY = 80
# Sources that were already lossy (JPEG, lossy WebP, AVIF) are re-encoded as JPEG at this quality
# with full-resolution colour (4:4:4), so text and logo edges keep their colour.
JPEG_QUALITY = 92
JPEG_MAX_SIDE = 65_500  # the JPEG format's own limit is 65,535 px per side

_SOURCE_LOSSY = {"JPEG", "MPO", "AVIF"}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class ImageRejected(ValueError):
    """The bytes are not an image we accept (an upload, a reference, a provider's result).

    `message` says what is wrong and what to do. The one such error: generation/imaging.py raises
    it too.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class CleanImage:
    content: bytes  # the cleaned, re-encoded image
    content_type: str  # "image/png" or "image/jpeg"
    extension: str  # "png" or "jpg"
    width: int
    height: int
    has_alpha: bool
    thumbnail: bytes  # WebP, at most THUMBNAIL_SIZE px on its longest side
    thumbnail_width: int
    thumbnail_height: int
    # Of the bytes as uploaded, so the same file uploaded twice is recognised.
    sha256: str
    original_format: str  # Pillow's name for what was uploaded: "JPEG", "PNG", ...
    original_byte_size: int

    @property
    def byte_size(self) -> int:
        return len(self.content)


def clean_image(
    source: bytes | IO[bytes] | File,
    *,
    name: str,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
) -> CleanImage:
    """Check and clean one uploaded image; raise ImageRejected when it cannot be stored.

    `source` is the uploaded bytes or a file object (a Django UploadedFile); `name` is the name the
    browser sent, used in messages only. The limits default to settings.STUDIO_UPLOAD_MAX_BYTES and
    settings.STUDIO_UPLOAD_MAX_PIXELS.
    """
    label = _display_name(name)
    max_bytes = settings.STUDIO_UPLOAD_MAX_BYTES if max_bytes is None else max_bytes
    max_pixels = settings.STUDIO_UPLOAD_MAX_PIXELS if max_pixels is None else max_pixels

    data = _read_limited(source, label=label, max_bytes=max_bytes)
    sha256 = hashlib.sha256(data).hexdigest()
    image = _open(data, label=label, max_pixels=max_pixels)
    source_format = image.format or "?"
    try:
        _decode(image, label=label)
        cleaned = _to_srgb(_apply_orientation(image), label=label)
    finally:
        image.close()

    lossless = source_format not in _SOURCE_LOSSY and not (
        source_format == "WEBP" and not _webp_is_lossless(data)
    )
    content, content_type, extension = _encode(cleaned, lossless=lossless)
    thumbnail, thumb_size = _thumbnail(cleaned)
    return CleanImage(
        content=content,
        content_type=content_type,
        extension=extension,
        width=cleaned.width,
        height=cleaned.height,
        has_alpha=cleaned.mode == "RGBA",
        thumbnail=thumbnail,
        thumbnail_width=thumb_size[0],
        thumbnail_height=thumb_size[1],
        sha256=sha256,
        original_format=source_format,
        original_byte_size=len(data),
    )


def _display_name(name: str) -> str:
    # Some browsers send a full client path; messages only need the file's own name.
    base = os.path.basename(name.replace("\\", "/")).strip() or "The file"
    return base if len(base) <= 80 else base[:77] + "…"


def _megabytes(n: int) -> str:
    return (
        f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{max(n // 1024, 1)} kB"
    )


def _megapixels(n: int) -> str:
    return (
        f"{n / 1_000_000:.0f} megapixels"
        if n >= 10_000_000
        else f"{n / 1_000_000:.1f} megapixels"
    )


def _read_limited(
    source: bytes | IO[bytes] | File, *, label: str, max_bytes: int
) -> bytes:
    def too_big(size: int | None) -> ImageRejected:
        what = f"is {_megabytes(size)}, over" if size is not None else "is larger than"
        return ImageRejected(
            f"“{label}” {what} the {_megabytes(max_bytes)} limit for reference images. "
            "Export it smaller (as JPEG, or with fewer pixels) and upload it again."
        )

    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        # An UploadedFile knows its size: refuse before reading a byte of a file that is too big.
        size = getattr(source, "size", None)
        if isinstance(size, int) and size > max_bytes:
            raise too_big(size)
        if hasattr(source, "seek"):
            source.seek(0)
        data = source.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise too_big(None)
    if not data:
        raise ImageRejected(
            f"“{label}” is empty (0 bytes). Choose the file again; if it lives in a cloud drive, download it first."
        )
    if len(data) > max_bytes:
        raise too_big(len(data))
    return data


def _open(data: bytes, *, label: str, max_pixels: int) -> Image.Image:
    """Identify the format and check the header's dimensions; no pixel is decoded here."""

    def too_many(detail: str) -> ImageRejected:
        return ImageRejected(
            f"“{label}” {detail}; the limit for reference images is {_megapixels(max_pixels)}. "
            "Resize it (for example to at most 6000 px on the longest side) and upload it again."
        )

    try:
        # Pillow's own bomb check runs inside open(): above Image.MAX_IMAGE_PIXELS it warns, above
        # twice that it raises. The warning becomes an error here. catch_warnings swaps the
        # process-wide filter list (not thread-local before Python 3.14), so under threads this is
        # best effort; the explicit header check below always runs and is the real guard.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise too_many("claims far more pixels than can be checked safely") from exc
    except Exception as exc:
        # Pillow's plugins raise many exception types on hostile input (OSError, SyntaxError,
        # ValueError, struct.error, EOFError...): for the uploader all mean "not an image we read".
        raise ImageRejected(_not_an_image(data, label)) from exc

    width, height = image.size
    if width < 1 or height < 1:
        image.close()
        raise ImageRejected(_damaged(label))
    if width * height > max_pixels:
        image.close()
        raise too_many(f"is {width} × {height} pixels ({_megapixels(width * height)})")

    # is_animated stops at the second frame; n_frames (for the message) may walk the whole file.
    if getattr(image, "is_animated", False) and image.format != "MPO":
        frames = getattr(image, "n_frames", 2)
        image.close()
        if image.format == "TIFF":
            raise ImageRejected(
                f"“{label}” is a TIFF with {frames} pages. Save the page you want as a single image and upload that."
            )
        kind = {"PNG": "PNG (APNG)", "WEBP": "WebP"}.get(
            image.format or "", image.format
        )
        raise ImageRejected(
            f"“{label}” is an animated {kind} ({frames} frames). References must be still images: "
            "export one frame as PNG or JPEG and upload that."
        )
    return image


def _not_an_image(data: bytes, label: str) -> str:
    """Name what the upload really is when it is a common non-image, else say what we accept."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%pdf-"):
        return f"“{label}” is a PDF document, not an image. Export the page as PNG or JPEG and upload that."
    if b"<svg" in head or (head.startswith(b"<?xml") and b"svg" in head):
        return (
            f"“{label}” is an SVG (vector) file. SVG is not accepted because it can carry scripts; "
            "export it as PNG (keep transparency for logos) and upload that."
        )
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:256]:
        return f"“{label}” is a web page (HTML), not an image. Save the image itself and upload that."
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypmif1", b"ftypmsf1"):
        return (
            f"“{label}” is a HEIC photo, which is not supported. Export it as JPEG "
            "(on an iPhone: Settings › Camera › Formats › Most Compatible) and upload that."
        )
    return (
        f"“{label}” is not an image we can read: its content is not {ACCEPTED_LABEL}, or it is damaged. "
        "The file name does not matter; open it in an image editor, export it as PNG or JPEG, and upload that."
    )


def _damaged(label: str) -> str:
    return (
        f"“{label}” is damaged or incomplete (it could not be decoded to the end), perhaps because a "
        "download was cut short. Open it in an image editor, save it again, and upload the new file."
    )


def _decode(image: Image.Image, *, label: str) -> None:
    # With ImageFile.LOAD_TRUNCATED_IMAGES left at False (never set it in this process), a short
    # file fails here instead of being padded with grey.
    try:
        image.load()
    except MemoryError:
        raise
    except Exception as exc:
        logger.info("Reference upload %r could not be decoded: %s", label, exc)
        raise ImageRejected(_damaged(label)) from exc


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Turn the pixels the way the camera said (EXIF Orientation), so no viewer needs the tag."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        # A broken EXIF block is dropped with the rest of the metadata; the pixels are fine.
        logger.info("Ignoring unreadable EXIF in an uploaded reference", exc_info=True)
        return image
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return image
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        logger.info(
            "Ignoring an unusable EXIF orientation on an uploaded reference",
            exc_info=True,
        )
        return image


def _to_srgb(image: Image.Image, *, label: str) -> Image.Image:
    """Return a fresh 8-bit sRGB image: RGB, or RGBA when some pixel is not fully opaque.

    ICC decision: an embedded profile is used to convert the pixels to sRGB and is then dropped.
    Browsers, thumbnails and the generation providers all assume sRGB, and most of them ignore
    embedded profiles, so an Adobe RGB or CMYK (press) image would otherwise show wrong colours
    in some places and right ones in others. A profile that cannot be used (damaged, or for a
    different colour space than the pixels) is ignored and the plain conversion is used.
    """
    work = _to_8bit(image) if image.mode.startswith("I") or image.mode == "F" else image
    if work.mode == "1":
        work = work.convert("L")
    has_alpha = work.has_transparency_data

    alpha = None
    if has_alpha:
        alpha = work.convert("RGBA").getchannel("A")
        if alpha.getextrema() == (255, 255):
            alpha = None  # an alpha channel that is opaque everywhere is just weight
    try:
        if work.mode in ("L", "LA", "La"):
            base = work.convert("L")
        elif work.mode == "CMYK":
            base = work
        else:
            base = work.convert("RGB")  # P, PA, RGBA, RGBa, RGBX, YCbCr, LAB, HSV
    except ValueError as exc:
        raise ImageRejected(
            f"“{label}” uses a colour mode ({image.mode}) we cannot convert. Save it as an RGB PNG or JPEG and upload that."
        ) from exc

    rgb = _apply_icc(base, image.info.get("icc_profile"))
    if rgb.mode != "RGB":
        rgb = rgb.convert("RGB")
    if alpha is not None:
        rgb.putalpha(alpha)

    # `rgb` is always a new in-memory image (convert() and profileToProfile() copy), so its only
    # metadata is the `.info` dict they copied along: EXIF with GPS, XMP, ICC, PNG text chunks,
    # comments. The encoders read metadata from there, so emptying it strips everything.
    rgb.info = {}
    return rgb


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale to 8-bit "L" by scaling (Pillow's convert() would clip to white).

    A 16-bit transparent colour key (PNG tRNS) is dropped: it does not survive the scaling.
    """
    if image.mode.startswith("I;16"):
        result = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
        result.info.pop("transparency", None)
        return result
    work = image if image.mode in ("I", "F") else image.convert("I")
    # "I" and "F" have one band: the extrema are (low, high), not a pair per band.
    low, high = cast("tuple[float, float]", work.getextrema())
    if low >= 0 and high <= (1.0 if work.mode == "F" else 255):
        scale, offset = (255.0 if work.mode == "F" else 1.0), 0.0
    elif low >= 0 and high <= 65535:
        scale, offset = 1 / 256, 0.0  # 16-bit data in a 32-bit container
    else:
        scale = 255 / (high - low) if high > low else 1.0
        offset = -low * scale
    result = work.point(lambda v: v * scale + offset).convert("L")
    result.info.pop("transparency", None)
    return result


def _apply_icc(image: Image.Image, icc: bytes | None) -> Image.Image:
    if not icc:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(
            image,
            source,
            _SRGB,
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
            outputMode="RGB",
        )
    except Exception:
        logger.info(
            "Ignoring an unusable ICC profile on an uploaded reference", exc_info=True
        )
        return image
    return converted if converted is not None else image


def _webp_is_lossless(data: bytes) -> bool:
    """True when the WebP's image data is a VP8L (lossless) chunk; walks the RIFF chunk list."""
    position = 12
    while position + 8 <= len(data):
        fourcc = data[position : position + 4]
        if fourcc == b"VP8L":
            return True
        if fourcc == b"VP8 ":
            return False
        length = int.from_bytes(data[position + 4 : position + 8], "little")
        position += 8 + length + (length & 1)
    return False


def _encode(image: Image.Image, *, lossless: bool) -> tuple[bytes, str, str]:
    """PNG for transparency and for lossless sources; JPEG for sources that were already lossy.

    Why not one format for all: PNG of a camera photo is five to ten times the JPEG, which hurts
    storage and the per-request size limits of generation providers, and buys nothing because
    the detail was already lost to the source's compression. JPEG of a logo, UI screenshot or
    flat illustration (the PNG/GIF/lossless-WebP uploads) would add ringing around text and edges,
    the details a reference exists for. Keeping each source's family avoids both.
    """
    buffer = io.BytesIO()
    if image.mode == "RGBA" or lossless or max(image.size) > JPEG_MAX_SIDE:
        image.save(buffer, format="PNG")
        return buffer.getvalue(), "image/png", "png"
    image.save(
        buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True
    )
    return buffer.getvalue(), "image/jpeg", "jpg"


def _thumbnail(image: Image.Image) -> tuple[bytes, tuple[int, int]]:
    thumb = image
    if max(image.size) > THUMBNAIL_SIZE:
        scale = THUMBNAIL_SIZE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        # reducing_gap: a fast integer reduce first, then Lanczos (what Image.thumbnail does,
        # without first copying a possibly 40-megapixel image).
        thumb = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    thumb.save(buffer, format="WEBP", quality=THUMBNAIL_QUALITY, method=4)
    return buffer.getvalue(), thumb.size
