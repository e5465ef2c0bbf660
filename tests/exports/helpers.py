"""Test images with a recognisable focal point, and approved assets that carry them."""

from __future__ import annotations

import io
import os
import shutil
from typing import Any

from PIL import Image, ImageDraw

from tests.factories import make_asset


def marked_image(
    size: tuple[int, int] = (1024, 1280),
    *,
    focal: tuple[float, float] = (0.5, 0.5),
    fmt: str = "PNG",
) -> bytes:
    """A grey image with a red disc at the focal point (so crops can be checked by colour)."""
    image = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(image)
    cx, cy, r = focal[0] * size[0], focal[1] * size[1], min(size) // 20
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(230, 20, 20))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def approved_asset(campaign: Any, **fields: Any) -> Any:
    size = fields.pop("size", (1024, 1280))
    focal = fields.pop("focal", None)
    asset = make_asset(
        campaign,
        image=marked_image(size, focal=focal or (0.5, 0.5)),
        review_status=fields.pop("review_status", "approved"),
        **fields,
    )
    if focal is not None:
        asset.focal_x, asset.focal_y = focal
        asset.save(update_fields=["focal_x", "focal_y"])
    return asset


def has_exiftool() -> bool:
    """Whether exiftool (the independent reader of the packs' provenance) is here. On CI it must
    be (scripts/test.sh installs it; .ci/run: nothing is skipped silently there)."""
    if shutil.which("exiftool"):
        return True
    assert not os.environ.get("CI"), "exiftool is missing (scripts/test.sh installs it)"
    return False
