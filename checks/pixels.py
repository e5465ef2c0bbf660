"""Decoding an image once for every check, and the downscaled copies each check works on.

Every check reads pixels, none needs all of them: the palette is a statistic (160 px on the long
side, 19,200 pixels at 4:3, keeps every colour that covers a noticeable share of the image), feature matching and OCR
need detail (1280 px: headline text stays legible, small print may not). Downscaling with INTER_AREA averages, so small areas keep
their colour instead of aliasing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageOps

# Long sides the checks work at (the original is used when it is smaller).
PALETTE_SIDE = 160
MATCH_SIDE = 1280
OCR_SIDE = 1280


@dataclass
class Picture:
    """One decoded image: RGB pixels (uint8, H×W×3), an alpha mask where it had one."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    _cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    def fitted(self, side: int) -> np.ndarray:
        """The RGB pixels with the long side at most `side` (cached: several checks share one)."""
        if side not in self._cache:
            self._cache[side] = fit(self.rgb, side)
        return self._cache[side]


def fit(pixels: np.ndarray, side: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return pixels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def decode(data: bytes) -> Picture:
    """Decode with Pillow (the same decoder ingest verified the file with), EXIF orientation applied."""
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image)
        alpha = None
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = np.asarray(image.convert("RGBA"))
            alpha = rgba[:, :, 3]
            rgb = np.ascontiguousarray(rgba[:, :, :3])
        else:
            rgb = np.asarray(image.convert("RGB"))
    return Picture(rgb=rgb, alpha=alpha)


def open_file(path: str) -> Picture:
    with open(path, "rb") as handle:
        return decode(handle.read())
