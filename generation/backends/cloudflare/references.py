"""Images in and out of Cloudflare's JSON: base64 results, and reference images fitted to the
512×512 the models take (docs/providers.md §4.2)."""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image

from generation.backends.base import (
    BackendError,
    ErrorClass,
    ReferenceInput,
)
from generation.backends.cloudflare.contract import fitted_size


def b64_image(encoded: str, what: str) -> bytes:
    """Decode a base64 image (a `data:` URI prefix is tolerated)."""
    if encoded.startswith("data:"):
        encoded = encoded.split(",", 1)[-1]
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"{what}: result.image is not valid base64.",
            retryable=True,
        ) from exc


def prepare_reference(ref: ReferenceInput) -> tuple[bytes, str, int, int]:
    """The reference as sent: (bytes, content type, width, height), at most 512×512.

    Fitting references are sent untouched; larger ones are scaled down (aspect kept) to PNG.
    """
    try:
        with Image.open(io.BytesIO(ref.content)) as image:
            image.load()
            width, height = image.size
            target = fitted_size(width, height)
            if target == (width, height):
                mime = Image.MIME.get(image.format or "", "") or ref.content_type
                return ref.content, mime, width, height
            mode = (
                "RGBA"
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
                else "RGB"
            )
            scaled = image.convert(mode).resize(target, Image.Resampling.LANCZOS)
    except Exception as exc:  # Pillow raises many types for bad data
        raise BackendError(
            ErrorClass.INVALID_REQUEST,
            f"reference {ref.name or ref.role!r} is not a decodable image ({type(exc).__name__}).",
            retryable=False,
        ) from exc
    buffer = io.BytesIO()
    scaled.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue(), "image/png", target[0], target[1]
