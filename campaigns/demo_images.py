"""The demo brand's reference images, drawn with Pillow so the repository holds no image files.

`manage.py load_demo` stores each one through the reference library, like a browser upload.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from campaigns.demo_data import COLOURS, PALETTE


def _rgb(name: str) -> tuple[int, int, int]:
    value = COLOURS[name].lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _centered_text(
    draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int, fill: Any
) -> None:
    draw.text(xy, text, fill=fill, font=_font(size), anchor="mm")


def draw_packshot() -> bytes:
    """The Autumn Blend bag on a plain studio backdrop (role: product)."""
    w, h = 1024, 1024
    image = Image.new("RGB", (w, h), (236, 230, 220))
    draw = ImageDraw.Draw(image)
    # Floor and soft shadow.
    draw.rectangle([0, 760, w, h], fill=(222, 214, 202))
    draw.ellipse([300, 820, 724, 880], fill=(196, 186, 172))
    # The bag: body, folded top, side gussets.
    draw.polygon(
        [(330, 250), (694, 250), (720, 850), (304, 850)], fill=_rgb("Espresso")
    )
    draw.polygon([(330, 250), (694, 250), (680, 190), (344, 190)], fill=(84, 56, 38))
    draw.rectangle([344, 176, 680, 196], fill=(60, 38, 26))
    draw.line([(330, 250), (304, 850)], fill=(40, 24, 15), width=6)
    draw.line([(694, 250), (720, 850)], fill=(40, 24, 15), width=6)
    # Label.
    draw.rounded_rectangle([368, 380, 656, 720], radius=18, fill=_rgb("Crema"))
    draw.ellipse([472, 410, 552, 490], outline=_rgb("Harbor Blue"), width=6)
    draw.polygon([(512, 418), (526, 450), (512, 482), (498, 450)], fill=_rgb("Maple"))
    _centered_text(draw, (512, 530), "NORTHWIND", 40, _rgb("Espresso"))
    _centered_text(draw, (512, 580), "AUTUMN BLEND", 30, _rgb("Roast"))
    draw.line([(410, 615), (614, 615)], fill=_rgb("Maple"), width=4)
    _centered_text(draw, (512, 650), "maple - hazelnut - cocoa", 20, _rgb("Espresso"))
    _centered_text(draw, (512, 690), "250 g  whole bean", 18, _rgb("Roast"))
    # A few beans on the floor.
    for x, y in [(220, 880), (800, 860), (850, 900), (180, 930)]:
        draw.ellipse([x, y, x + 46, y + 32], fill=_rgb("Roast"))
        draw.line([(x + 8, y + 16), (x + 38, y + 16)], fill=_rgb("Espresso"), width=4)
    return _png(image)


def draw_mascot() -> bytes:
    """Bean, the Northwind mascot: a coffee bean with a sailor's cap (role: character)."""
    w, h = 1024, 1024
    image = Image.new("RGB", (w, h), _rgb("Crema"))
    draw = ImageDraw.Draw(image)
    # Body: a big bean with its crease.
    draw.ellipse(
        [292, 260, 732, 900], fill=_rgb("Roast"), outline=_rgb("Espresso"), width=10
    )
    draw.arc([430, 260, 600, 900], start=100, end=260, fill=_rgb("Espresso"), width=12)
    # Face.
    for x in (420, 600):
        draw.ellipse(
            [x - 42, 470, x + 42, 554], fill="white", outline=_rgb("Espresso"), width=6
        )
        draw.ellipse([x - 16, 496, x + 16, 528], fill=_rgb("Espresso"))
    draw.arc([430, 560, 594, 680], start=20, end=160, fill=_rgb("Espresso"), width=10)
    draw.ellipse([350, 590, 400, 630], fill=(214, 120, 96))
    draw.ellipse([624, 590, 674, 630], fill=(214, 120, 96))
    # Sailor's cap.
    draw.rounded_rectangle(
        [352, 200, 672, 300],
        radius=40,
        fill="white",
        outline=_rgb("Harbor Blue"),
        width=8,
    )
    draw.rectangle([352, 270, 672, 310], fill=_rgb("Harbor Blue"))
    draw.polygon([(512, 214), (526, 244), (512, 274), (498, 244)], fill=_rgb("Maple"))
    # Arms and a cup.
    draw.line([(300, 640), (200, 560)], fill=_rgb("Espresso"), width=16)
    draw.line([(724, 640), (820, 700)], fill=_rgb("Espresso"), width=16)
    draw.rounded_rectangle(
        [790, 650, 880, 760], radius=12, fill="white", outline=_rgb("Espresso"), width=6
    )
    draw.arc([860, 675, 910, 735], start=270, end=90, fill=_rgb("Espresso"), width=6)
    # Feet.
    draw.ellipse([380, 880, 480, 930], fill=_rgb("Espresso"))
    draw.ellipse([544, 880, 644, 930], fill=_rgb("Espresso"))
    _centered_text(draw, (512, 980), "Bean", 34, _rgb("Espresso"))
    return _png(image)


def draw_swatches() -> bytes:
    """The brand's palette and type as a style board (role: style)."""
    w, h = 1200, 800
    image = Image.new("RGB", (w, h), (250, 247, 241))
    draw = ImageDraw.Draw(image)
    draw.text(
        (60, 50),
        "Northwind Roasters - style board",
        fill=_rgb("Espresso"),
        font=_font(40),
    )
    swatch_w = (w - 120 - 4 * 24) // 5
    for i, entry in enumerate(PALETTE):
        x = 60 + i * (swatch_w + 24)
        draw.rounded_rectangle(
            [x, 140, x + swatch_w, 440], radius=16, fill=entry["hex"]
        )
        draw.text((x, 460), entry["name"], fill=_rgb("Espresso"), font=_font(26))
        draw.text((x, 496), entry["hex"], fill=(110, 100, 90), font=_font(22))
    draw.text(
        (60, 580), "Aa  Fraunces - headlines", fill=_rgb("Espresso"), font=_font(44)
    )
    draw.text(
        (60, 650),
        "Aa  Inter - body copy and labels",
        fill=_rgb("Harbor Blue"),
        font=_font(30),
    )
    draw.text(
        (60, 705),
        "Aa  IBM Plex Mono - prices and small print",
        fill=_rgb("Roast"),
        font=_font(24),
    )
    return _png(image)


def draw_cafe() -> bytes:
    """The café by the harbour, empty, as a backdrop (role: background)."""
    w, h = 1536, 1024
    image = Image.new("RGB", (w, h), (228, 214, 190))
    draw = ImageDraw.Draw(image)
    # Window onto the harbour.
    draw.rectangle(
        [120, 120, 760, 560], fill=(176, 206, 219), outline=_rgb("Espresso"), width=14
    )
    draw.rectangle([127, 420, 753, 553], fill=_rgb("Harbor Blue"))
    draw.polygon([(300, 420), (420, 420), (400, 450), (320, 450)], fill="white")
    draw.line([(360, 420), (360, 320)], fill="white", width=6)
    draw.polygon([(362, 330), (362, 410), (420, 410)], fill=(245, 245, 240))
    draw.line([(440, 120), (440, 560)], fill=_rgb("Espresso"), width=10)
    # Shelves with bags and jars.
    for y in (330, 500):
        draw.rectangle([900, y, 1420, y + 16], fill=_rgb("Roast"))
        for i in range(6):
            x = 920 + i * 84
            colour = _rgb("Espresso") if i % 2 == 0 else _rgb("Maple")
            draw.rectangle([x, y - 110, x + 60, y], fill=colour)
            draw.rectangle([x + 10, y - 70, x + 50, y - 40], fill=_rgb("Crema"))
    # Counter.
    draw.rectangle([0, 700, w, h], fill=_rgb("Roast"))
    draw.rectangle([0, 680, w, 712], fill=_rgb("Espresso"))
    for x in range(60, w, 180):
        draw.line([(x, 712), (x, h)], fill=(120, 62, 36), width=4)
    # Pendant lamps.
    for x in (880, 1180, 1440):
        draw.line([(x, 0), (x, 70)], fill=_rgb("Espresso"), width=4)
        draw.pieslice([x - 50, 40, x + 50, 140], start=180, end=360, fill=_rgb("Maple"))
        draw.ellipse([x - 15, 78, x + 15, 104], fill=(255, 236, 180))
    return _png(image)


def draw_logo() -> bytes:
    """The Northwind compass-bean logo on a transparent background (role: logo)."""
    w, h = 800, 800
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([100, 60, 700, 660], fill=_rgb("Harbor Blue"))
    draw.ellipse([130, 90, 670, 630], outline=_rgb("Crema"), width=10)
    # Compass needle north (Maple) and south (Crema).
    draw.polygon([(400, 130), (450, 360), (400, 330), (350, 360)], fill=_rgb("Maple"))
    draw.polygon([(400, 590), (450, 360), (400, 390), (350, 360)], fill=_rgb("Crema"))
    draw.ellipse([376, 336, 424, 384], fill=_rgb("Espresso"))
    _centered_text(draw, (400, 720), "NORTHWIND", 64, _rgb("Espresso"))
    return _png(image)


# (file name, role, tags, how to draw it)
REFERENCE_IMAGES = [
    ("autumn-blend-bag.png", "product", ["autumn-blend", "packshot"], draw_packshot),
    ("bean-mascot.png", "character", ["mascot"], draw_mascot),
    ("style-board.png", "style", ["palette", "typography"], draw_swatches),
    ("harbour-cafe.png", "background", ["cafe", "interior"], draw_cafe),
    ("northwind-logo.png", "logo", ["logo"], draw_logo),
]
