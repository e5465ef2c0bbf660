"""Text and colour for the preview drawing: fonts and the glyphs they have, the prompt's quoted
headline and body, wrapping, brand colours and the ink that reads on them."""

from __future__ import annotations

import colorsys
import json
import random
import re
import unicodedata
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from generation.backends.base import GenerationRequest

_QUOTED = re.compile(r'"([^"\n]{1,160})"|“([^”\n]{1,160})”|«([^»\n]{1,160})»')
_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
INK = (17, 17, 17)
PAPER = (250, 250, 247)
WARN = (255, 214, 0)

RGB = tuple[int, int, int]


@lru_cache(maxsize=64)
def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, size))


@lru_cache(maxsize=4096)
def _has_glyph(char: str) -> bool:
    """Whether Pillow's built-in font (a Latin subset) draws `char` rather than a blank box."""
    return char.isascii() or _glyph_mask(char) != _glyph_mask("\uffff")


@lru_cache(maxsize=4096)
def _glyph_mask(char: str) -> bytes:
    image = Image.new("L", (32, 32))
    ImageDraw.Draw(image).text((4, 4), char, font=load_font(20), fill=255)
    return image.tobytes()


_SUBSTITUTES = {
    "—": "-",
    "–": "-",
    "×": "x",
    "€": "EUR",
    "→": "->",
    "≤": "<=",
    "≥": ">=",
}


def printable(text: str) -> str:
    """`text` with characters the built-in font lacks replaced by close ASCII (é → e, — → -)."""
    out = []
    for char in text:
        if _has_glyph(char):
            out.append(char)
        elif char in _SUBSTITUTES:
            out.append(_SUBSTITUTES[char])
        else:
            base = (
                unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
            )
            out.append(base or char)
    return "".join(out)


def parse_colour(value: str) -> RGB | None:
    match = _HEX.match(value.strip())
    if not match:
        return None
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def luminance(colour: RGB) -> float:
    r, g, b = colour
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ink_on(colour: RGB) -> RGB:
    return INK if luminance(colour) > 140 else PAPER


def shade(colour: RGB, factor: float) -> RGB:
    if factor >= 1:
        return tuple(int(c + (255 - c) * (factor - 1)) for c in colour)  # type: ignore[return-value]
    return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]


def text_of(prompt: str) -> tuple[str, str]:
    """(headline, body): quoted text becomes the headline; a JSON prompt is flattened to prose."""
    body = prompt.strip()
    if body.startswith("{"):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            body = " · ".join(_flatten(data))
    quoted = dict.fromkeys(
        next(g for g in m.groups() if g).strip() for m in _QUOTED.finditer(body)
    )
    headline = " / ".join(q for q in list(quoted)[:3] if q)
    return printable(headline), printable(body)


def _flatten(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        out: list[str] = []
        for key, item in value.items():
            out += _flatten(
                item,
                f"{prefix}{key}."
                if not isinstance(item, str | int | float)
                else f"{prefix}{key}",
            )
        return out
    if isinstance(value, list):
        return [part for item in value for part in _flatten(item, prefix)]
    return [f"{prefix.rstrip('.')}: {value}" if prefix else str(value)]


def wrap_lines(text: str, font: Any, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap to `width` px; a truncated text ends with an ellipsis."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        pieces = []
        while (
            len(word) > 1 and font.getlength(word) > width
        ):  # split words longer than a line
            cut = len(word) - 1
            while cut > 1 and font.getlength(word[:cut]) > width:
                cut -= 1
            pieces.append(word[:cut])
            word = word[cut:]
        pieces.append(word)
        for piece in pieces:
            candidate = f"{current} {piece}" if current else piece
            if current and font.getlength(candidate) > width:
                lines.append(current)
                current = piece
            else:
                current = candidate
        if len(lines) > max_lines:
            break
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and font.getlength(last + " …") > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + " …"
    return lines


def palette_for(request: GenerationRequest, rng: random.Random) -> list[RGB]:
    colours = [c for c in (parse_colour(v) for v in request.palette) if c is not None]
    if colours:
        return colours[:8]
    hue = rng.random()
    return [
        tuple(
            int(255 * x)
            for x in colorsys.hsv_to_rgb(
                (hue + i * 0.13) % 1, 0.45 + 0.1 * i, 0.85 - 0.12 * i
            )
        )  # type: ignore[misc]
        for i in range(4)
    ]
