"""Images drawn for the brand-check tests: known colours, real text in a real font, a logo and a
product pasted (rotated, scaled) into a scene. Everything is drawn here, nothing is read from disk
but the font."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
BRAND = [
    {"name": "Midnight", "hex": "#1A1A2E"},
    {"name": "Coral", "hex": "#FF6B6B"},
    {"name": "Sand", "hex": "#F4D35E"},
]


def font_path() -> str:
    for folder in FONT_DIRS:
        for name in ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf"):
            if (Path(folder) / name).exists():
                return str(Path(folder) / name)
    raise RuntimeError("no TrueType font: apt-get install fonts-dejavu-core")


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), size)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def painted_scene(
    colours: list[str], size: tuple[int, int] = (1024, 768), seed: int = 1
) -> Image.Image:
    """A poster-like scene: a ground in the first colour, shapes in the others, soft edges."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size, colours[0])
    draw = ImageDraw.Draw(image)
    for i in range(24):
        colour = colours[1 + i % (len(colours) - 1)] if len(colours) > 1 else colours[0]
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(width // 20, width // 6)
        if i % 2:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
    return image.filter(ImageFilter.GaussianBlur(1.5))


def text_poster(lines: list[str], size: tuple[int, int] = (1200, 800)) -> Image.Image:
    """Dark text on a light ground, one line per string, in DejaVu Sans Bold."""
    image = Image.new("RGB", size, "#F4D35E")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, size[1] - 160, size[0], size[1]), fill="#FF6B6B")
    y = 80
    for line in lines:
        draw.text((80, y), line, font=font(84), fill="#1A1A2E")
        y += 150
    return image


def logo(size: int = 240) -> Image.Image:
    """A made-up logo with structure ORB can hold on to: a ring, a star of bars and a wordmark."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((6, 6, size - 6, size - 6), fill="#1A1A2E")
    draw.ellipse((30, 30, size - 30, size - 30), fill="#FF6B6B")
    c = size // 2
    for i, (dx, dy) in enumerate(
        ((0, -70), (60, -35), (60, 35), (0, 70), (-60, 35), (-60, -35))
    ):
        draw.line(
            (c, c, c + dx, c + dy), fill="#F4D35E" if i % 2 else "#FFFFFF", width=9
        )
    draw.text((c - 62, c + 14), "NWR", font=font(44), fill="#FFFFFF")
    draw.rectangle((c - 20, c - 20, c + 20, c + 20), fill="#1A1A2E")
    return image


def product(size: tuple[int, int] = (260, 360)) -> Image.Image:
    """A coffee bag packshot in a distinctive green, with a label, stripes and text."""
    width, height = size
    image = Image.new("RGB", size, "#FFFFFF")
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 30, width - 10, height - 10), fill="#2E7D32")
    draw.polygon([(10, 30), (width // 2, 4), (width - 10, 30)], fill="#1B5E20")
    draw.rectangle((40, 110, width - 40, 250), fill="#FFF8E1")
    draw.text((58, 130), "AUTUMN", font=font(34), fill="#3E2723")
    draw.text((70, 180), "BLEND", font=font(34), fill="#BF360C")
    for i in range(6):
        draw.line((20, 270 + i * 12, width - 20, 270 + i * 12), fill="#A5D6A7", width=4)
    draw.ellipse((width // 2 - 25, 50, width // 2 + 25, 100), fill="#FFC107")
    return image


def cluttered_background(
    size: tuple[int, int] = (1280, 960), seed: int = 7
) -> Image.Image:
    """A busy café-like scene: many random shapes and lines (features that are not the logo)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, "#8D6E63")
    draw = ImageDraw.Draw(image)
    for _ in range(220):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(10, 120), rng.randrange(10, 120)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
        else:
            draw.ellipse(
                (x, y, x + w, y + h), outline=colour, width=rng.randrange(1, 6)
            )
    return image


def paste(
    scene: Image.Image,
    item: Image.Image,
    *,
    at: tuple[int, int],
    scale: float,
    angle: float,
) -> Image.Image:
    """The item scaled, rotated (expanding its canvas) and pasted into a copy of the scene."""
    out = scene.copy()
    item = item.convert("RGBA")
    item = item.resize(
        (round(item.width * scale), round(item.height * scale)),
        Image.Resampling.LANCZOS,
    )
    item = item.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    out.paste(item, at, item)
    return out
