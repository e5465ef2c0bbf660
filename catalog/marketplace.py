"""The marketplace preset: a main image needs a pure-white background and a minimum size.

Marketplaces (Amazon, Zalando, eBay) ask for main images on pure white (RGB 255,255,255) of at
least 1,000 px on the longest side for zoom. "Background" is measured on the border: a strip of
2 % of each side all around the image, where a product photographed on white shows only white;
near-white JPEG noise (>= 250 on every channel) is allowed on at most 2 % of the strip's pixels.
"""

from __future__ import annotations

from PIL import Image

MIN_LONGEST_SIDE = 1000
WHITE_MIN = 250
ALLOWED_OFF_WHITE = 0.02


def check_main_image(
    image: Image.Image, *, min_side: int = MIN_LONGEST_SIDE
) -> list[str]:
    """What keeps `image` from being a marketplace main image; empty when it passes."""
    problems = []
    if max(image.size) < min_side:
        problems.append(
            f"{image.width}×{image.height} px: the longest side must be at least {min_side} px."
        )
    rgb = image.convert("RGB")
    w, h = rgb.size
    strip = max(1, round(min(w, h) * 0.02))
    small = rgb.load()
    off = total = 0
    step = max(
        1, min(w, h) // 400
    )  # sample: a 4,000 px image needs no 16 M pixel reads
    for y in range(0, h, step):
        edge_row = y < strip or y >= h - strip
        xs = (
            range(0, w, step)
            if edge_row
            else [*range(0, strip, step), *range(w - strip, w, step)]
        )
        for x in xs:
            total += 1
            r, g, b = small[x, y]  # type: ignore[misc,index]
            if min(r, g, b) < WHITE_MIN:
                off += 1
    if total and off / total > ALLOWED_OFF_WHITE:
        problems.append(
            f"The background is not pure white ({100 * off / total:.0f}% of the border is not white)."
        )
    return problems
