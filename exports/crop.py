"""Crop geometry: the largest region of a preset's aspect ratio, centred on the focal point.

Pure arithmetic, no Pillow, so the tests can check it exhaustively. The focal point is a fraction
of the width and height from the top left (Asset.focal_x/focal_y; None: the centre). The crop is
as large as the image allows, so a 16:9 crop of a portrait image spans its full width and slides
vertically to keep the focal point as close to its middle as the edges allow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    box: tuple[int, int, int, int]  # left, top, right, bottom in source pixels
    width: int  # output size
    height: int
    scale: float  # output / crop (>1: upscaled)
    too_small: bool  # needed more than max_upscale: output is smaller than the preset


def focal_crop(
    width: int,
    height: int,
    target_width: int,
    target_height: int,
    focal_x: float | None = None,
    focal_y: float | None = None,
) -> tuple[int, int, int, int]:
    fx = 0.5 if focal_x is None else min(max(focal_x, 0.0), 1.0)
    fy = 0.5 if focal_y is None else min(max(focal_y, 0.0), 1.0)
    # Compare aspect ratios exactly (integers): which side of the source limits the crop.
    if width * target_height >= height * target_width:
        crop_h = height
        crop_w = max(1, min(width, round(height * target_width / target_height)))
    else:
        crop_w = width
        crop_h = max(1, min(height, round(width * target_height / target_width)))
    left = _place(fx * width, crop_w, width)
    top = _place(fy * height, crop_h, height)
    return left, top, left + crop_w, top + crop_h


def _place(centre: float, size: int, limit: int) -> int:
    """Start of a span of `size` centred on `centre`, moved inside 0..limit."""
    return int(min(max(round(centre - size / 2), 0), limit - size))


def plan(
    width: int,
    height: int,
    target_width: int,
    target_height: int,
    *,
    focal_x: float | None = None,
    focal_y: float | None = None,
    max_upscale: float = 1.0,
) -> Plan:
    box = focal_crop(width, height, target_width, target_height, focal_x, focal_y)
    crop_w = box[2] - box[0]
    scale = target_width / crop_w
    if scale <= max_upscale + 1e-9:
        return Plan(box, target_width, target_height, scale, False)
    # Too small: upscale only as far as allowed, keeping the preset's aspect ratio.
    out_w = max(1, round(crop_w * max_upscale))
    out_h = max(1, round(out_w * target_height / target_width))
    return Plan(box, out_w, out_h, scale, True)
