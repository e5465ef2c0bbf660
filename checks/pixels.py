"""Decoding an image once for every check, and the downscaled copies each check works on.

Every check reads pixels, none needs all of them: the palette is a statistic (160 px on the long
side, 19,200 pixels at 4:3, keeps every colour that covers a noticeable share of the image), feature matching and OCR
need detail (1024 px: headline text stays legible, small print may not; a 4 MP image halves exactly). Downscaling with INTER_AREA averages, so small areas keep
their colour instead of aliasing.

The full-size pixels are read once: the largest copy asked for is made from them, every smaller
one from the smallest copy already made that is large enough (a 4 MP image is averaged down to
1024 px once, the 160 px palette copy comes from that 1 MP, not from the 4 MP again), and the
grey copy that OCR and ORB both read is converted once (`grey`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageOps

# Long sides the checks work at (the original is used when it is smaller).
PALETTE_SIDE = 160
MATCH_SIDE = 1024
OCR_SIDE = 1024


@dataclass
class Picture:
    """One decoded image: RGB pixels (uint8, H×W×3), an alpha mask where it had one."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    _cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _grey: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    def fitted(self, side: int) -> np.ndarray:
        """The RGB pixels with the long side at most `side` (cached: several checks share one)."""
        if side not in self._cache:
            larger = [s for s in self._cache if s > side]
            source = self._cache[min(larger)] if larger else self.rgb
            self._cache[side] = fit(source, side)
        return self._cache[side]

    def grey(self, side: int) -> np.ndarray:
        """`fitted(side)` in grey (uint8), converted once for OCR and feature matching."""
        if side not in self._grey:
            self._grey[side] = cv2.cvtColor(self.fitted(side), cv2.COLOR_RGB2GRAY)
        return self._grey[side]

    def opaque(self, side: int) -> np.ndarray | None:
        """Where `fitted(side)` is opaque (bool, same shape), None for an image without alpha."""
        if self.alpha is None:
            return None
        height, width = self.fitted(side).shape[:2]
        if (height, width) == self.alpha.shape:
            return self.alpha >= 128
        small = cv2.resize(self.alpha, (width, height), interpolation=cv2.INTER_AREA)
        return small >= 128

    def prepare(self, *sides: int) -> None:
        """Make the copies for these sides largest first, so each smaller one comes from a copy."""
        for side in sorted(sides, reverse=True):
            self.fitted(side)


def fit(pixels: np.ndarray, side: int) -> np.ndarray:
    """Averaged down to `side` on the long side. OpenCV's INTER_AREA is fast only for a whole
    factor (2048 -> 1024: 2 ms; 2048 -> 1280: 60 ms), so a large reduction first averages whole
    blocks (dropping at most factor-1 edge pixels), and what is left (a factor under 2, where each
    output pixel reads the 2x2 inputs around it and aliasing stays small) is bilinear."""
    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return pixels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    factor = int(1 / scale)
    if factor >= 2:
        h, w = height // factor * factor, width // factor * factor
        pixels = cv2.resize(
            pixels[:h, :w], (w // factor, h // factor), interpolation=cv2.INTER_AREA
        )
        if (pixels.shape[1], pixels.shape[0]) == size:
            return pixels
    return cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)


def decode(data: bytes) -> Picture:
    """Decode with Pillow (the same decoder ingest verified the file with), EXIF orientation applied."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
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
