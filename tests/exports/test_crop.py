"""Crop geometry around the focal point, and the too-small flag."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from exports.crop import focal_crop, plan
from exports.render import prepare, render
from tests.exports.helpers import marked_image


def test_a_centred_crop_of_a_portrait_image_to_square() -> None:
    assert focal_crop(1024, 1280, 1080, 1080) == (0, 128, 1024, 1152)


def test_the_crop_follows_the_focal_point_and_stays_inside() -> None:
    # Focal point near the top: the square slides up to the edge, not beyond.
    assert focal_crop(1024, 1280, 1080, 1080, 0.5, 0.1) == (0, 0, 1024, 1024)
    assert focal_crop(1024, 1280, 1080, 1080, 0.5, 0.95) == (0, 256, 1024, 1280)
    # A 16:9 crop of a landscape image moves sideways with focal_x.
    assert focal_crop(2000, 1000, 1600, 900, 0.9, 0.5) == (222, 0, 2000, 1000)
    assert focal_crop(2000, 1000, 1600, 900, 0.0, 0.5) == (0, 0, 1778, 1000)


@pytest.mark.parametrize("fx", [0.0, 0.13, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("fy", [0.0, 0.4, 1.0])
@pytest.mark.parametrize(
    "target", [(1080, 1080), (1080, 1920), (1200, 628), (728, 90), (300, 250)]
)
def test_every_crop_has_the_target_aspect_and_holds_the_focal_point_when_it_can(
    fx: float, fy: float, target: tuple[int, int]
) -> None:
    left, top, right, bottom = focal_crop(1024, 1280, *target, fx, fy)
    assert 0 <= left < right <= 1024 and 0 <= top < bottom <= 1280
    w, h = right - left, bottom - top
    # The target's aspect ratio to within one source pixel (rounding).
    assert (
        abs(h - w * target[1] / target[0]) <= 1
        or abs(w - h * target[0] / target[1]) <= 1
    )
    assert left <= fx * 1024 <= right and top <= fy * 1280 <= bottom


def test_too_small_is_flagged_and_never_upscaled_beyond_the_limit() -> None:
    ok = plan(1024, 1280, 1080, 1080, max_upscale=1.25)
    assert (ok.width, ok.height, ok.too_small) == (1080, 1080, False)
    story = plan(1024, 1280, 1080, 1920, max_upscale=1.25)
    assert story.too_small and story.scale == pytest.approx(1.5)
    assert (story.width, story.height) == (900, 1600)  # 720×1280 × 1.25, still 9:16
    never = plan(1024, 1280, 1080, 1080, max_upscale=1.0)
    assert never.too_small and (never.width, never.height) == (1024, 1024)
    big = plan(4096, 4096, 1080, 1080, max_upscale=1.0)
    assert not big.too_small and big.scale < 1


def test_the_rendition_shows_the_focal_point_in_its_middle() -> None:
    # A red disc at (0.8, 0.25) of a landscape image: after a square crop it is still in frame.
    source = prepare(
        Image.open(io.BytesIO(marked_image((1600, 900), focal=(0.8, 0.25))))
    )
    p = plan(1600, 900, 500, 500, focal_x=0.8, focal_y=0.25)
    out = Image.open(io.BytesIO(render(source, p, "png", xmp=b"<x/>")))
    assert out.size == (500, 500)
    # The disc's centre maps to (0.8*1600 - left) / crop width of the output.
    x = round((0.8 * 1600 - p.box[0]) * 500 / (p.box[2] - p.box[0]))
    y = round(0.25 * 900 * 500 / 900)
    r, g, b = out.convert("RGB").getpixel((x, y))
    assert r > 200 and g < 60
