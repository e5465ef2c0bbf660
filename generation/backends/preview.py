"""The offline preview backend: a clearly labelled draft image drawn from the request.

No key, no network, synchronous: submit() returns the finished PNG. The draft shows what the
request asks for (quoted text as a headline, the prompt, the brand palette, the references with
their roles, model, size and seed) under a "PREVIEW — not FLUX.2" banner, so nobody mistakes it
for a render. Same request and seed give byte-identical PNGs; another seed moves and recolours
the layout. A request without a seed gets a random one, reported back like a real provider does.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import json
import random
import re
import unicodedata
from decimal import Decimal
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from generation.backends.base import (
    Backend,
    BackendError,
    Capabilities,
    ErrorClass,
    GenerationRequest,
    ModelSpec,
    ParamRule,
    PollResult,
    ProviderState,
    Submission,
)

BANNER = "PREVIEW — not FLUX.2"
MEGAPIXEL = 1024 * 1024
MAX_MEGAPIXELS = 4 * MEGAPIXEL / 1_000_000  # 4 MP as BFL counts it: 2048×2048
STUDIO_MODELS = (
    "flux-2-pro",
    "flux-2-pro-preview",
    "flux-2-max",
    "flux-2-flex",
    "flux-2-dev",
    "flux-2-klein-4b",
    "flux-2-klein-9b",
    "flux-2-klein-9b-preview",
)
# Every parameter some model takes, with the providers' ranges, so a draft is refused exactly
# where a real backend would refuse the values (the preview itself ignores them).
PARAM_RULES = {
    "safety_tolerance": ParamRule("int", 0, 5),
    "output_format": ParamRule("choice", choices=("jpeg", "png", "webp")),
    "steps": ParamRule("int", 1, 50),
    "guidance": ParamRule("float", 1.5, 10),
    "prompt_upsampling": ParamRule("bool"),
}
MODELS: dict[str, ModelSpec] = {
    model: ModelSpec(
        model=model,
        provider_model=model,
        max_references=8,
        max_megapixels=MAX_MEGAPIXELS,
        min_side=64,
        max_side=4096,
        dimension_step=16,
        params=frozenset(PARAM_RULES),
        param_rules=PARAM_RULES,
    )
    for model in STUDIO_MODELS
}

_QUOTED = re.compile(r'"([^"\n]{1,160})"|“([^”\n]{1,160})”|«([^»\n]{1,160})»')
_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
_INK = (17, 17, 17)
_PAPER = (250, 250, 247)
_WARN = (255, 214, 0)

RGB = tuple[int, int, int]


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, size))


@lru_cache(maxsize=4096)
def _has_glyph(char: str) -> bool:
    """Whether Pillow's built-in font (a Latin subset) draws `char` rather than a blank box."""
    return char.isascii() or _glyph_mask(char) != _glyph_mask("\uffff")


@lru_cache(maxsize=4096)
def _glyph_mask(char: str) -> bytes:
    image = Image.new("L", (32, 32))
    ImageDraw.Draw(image).text((4, 4), char, font=_font(20), fill=255)
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


def _luminance(colour: RGB) -> float:
    r, g, b = colour
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _ink_on(colour: RGB) -> RGB:
    return _INK if _luminance(colour) > 140 else _PAPER


def _shade(colour: RGB, factor: float) -> RGB:
    if factor >= 1:
        return tuple(int(c + (255 - c) * (factor - 1)) for c in colour)  # type: ignore[return-value]
    return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]


def _text_of(prompt: str) -> tuple[str, str]:
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


def _wrap(text: str, font: Any, width: float, max_lines: int) -> list[str]:
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


def _palette(request: GenerationRequest, rng: random.Random) -> list[RGB]:
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


def render(request: GenerationRequest, seed: int) -> bytes:
    """Draw the draft PNG; a pure function of (request, seed)."""
    w, h = request.width, request.height
    unit = min(w, h)
    rng = random.Random(f"{seed}|{request_digest(request)}")
    palette = _palette(request, rng)
    colours = palette[:]
    rng.shuffle(colours)
    background = colours[0]

    image = Image.new("RGB", (w, h), background)
    draw = ImageDraw.Draw(image)

    # Colour bands from the palette: orientation, widths and order follow the seed.
    vertical = rng.random() < 0.5
    span = w if vertical else h
    position = rng.uniform(0.15, 0.45) * span
    for colour in colours[1:] + [_shade(background, rng.uniform(0.6, 1.3))]:
        size = rng.uniform(0.05, 0.18) * span
        tilt = rng.uniform(-0.25, 0.25) * span
        if vertical:
            draw.polygon(
                [
                    (position, 0),
                    (position + size, 0),
                    (position + size + tilt, h),
                    (position + tilt, h),
                ],
                colour,
            )
        else:
            draw.polygon(
                [
                    (0, position),
                    (w, position + tilt),
                    (w, position + size + tilt),
                    (0, position + size),
                ],
                colour,
            )
        position += size + rng.uniform(0, 0.12) * span

    # Banner and footer: the label nobody can miss.
    banner_h = max(12, unit // 12)
    draw.rectangle([0, 0, w, banner_h], fill=_INK)
    stripe = banner_h // 2
    for x in range(-banner_h, w + banner_h, stripe * 2):
        draw.polygon(
            [
                (x, banner_h),
                (x + stripe, banner_h),
                (x + stripe + 6, banner_h + 6),
                (x + 6, banner_h + 6),
            ],
            _WARN,
        )
    size = int(banner_h * 0.6)
    while size > 6 and _font(size).getlength(BANNER) > w - banner_h:
        size -= 1
    banner_font = _font(size)
    _draw_banner(draw, (banner_h // 3, banner_h // 2), banner_font)

    footer_h = max(10, unit // 22)
    footer_font = _font(int(footer_h * 0.6))
    draw.rectangle([0, h - footer_h, w, h], fill=_INK)
    refs = f" · {len(request.references)} ref(s)" if request.references else ""
    footer = (
        f"{request.model} · {w}x{h} · seed {seed}{refs} · draft, not a FLUX.2 render"
    )
    draw.text(
        (footer_h // 2, h - footer_h // 2),
        footer,
        font=footer_font,
        fill=_PAPER,
        anchor="lm",
    )

    top, bottom = banner_h + 8 + unit // 40, h - footer_h - unit // 40
    margin = max(4, unit // 24)

    # Swatches: one square per brand colour with its hex.
    swatch = max(8, unit // 14)
    if request.palette and bottom - top > swatch * 2:
        label_size = max(6, swatch // 4)
        while label_size > 6 and _font(label_size).getlength("#DDDDDD") > swatch * 0.9:
            label_size -= 1
        label_font = _font(label_size)
        x = w - margin - swatch if rng.random() < 0.5 else margin
        step = -(swatch + margin // 2) if x > w / 2 else swatch + margin // 2
        y = top
        for colour in palette:
            draw.rectangle(
                [x, y, x + swatch, y + swatch],
                fill=colour,
                outline=_ink_on(background),
                width=max(1, swatch // 24),
            )
            hex_label = "#{:02X}{:02X}{:02X}".format(*colour)
            draw.text(
                (x + swatch / 2, y + swatch / 2),
                hex_label,
                font=label_font,
                fill=_ink_on(colour),
                anchor="mm",
            )
            x += step
            if x < margin or x + swatch > w - margin:
                break
        top = y + swatch + margin // 2

    # References: small thumbnails with their roles, along the bottom.
    if request.references:
        thumb = max(
            16,
            min(
                unit // 7,
                (w - 2 * margin) // max(1, len(request.references)) - margin // 2,
            ),
        )
        role_font = _font(max(6, thumb // 6))
        y = bottom - thumb - max(6, thumb // 6) - 4
        if y > top + unit // 6:
            x = margin
            for ref in request.references:
                _paste_reference(image, draw, ref.content, (x, y), thumb)
                draw.rectangle(
                    [x, y, x + thumb, y + thumb],
                    outline=_ink_on(background),
                    width=max(1, thumb // 40),
                )
                role = printable(ref.role or "reference")[:14]
                draw.text(
                    (x, y + thumb + 2),
                    role,
                    font=role_font,
                    fill=_ink_on(background),
                    anchor="la",
                )
                x += thumb + margin // 2
            bottom = y - margin // 2

    headline, body = _text_of(request.prompt)
    text_width = w - 2 * margin
    ink = _ink_on(background)

    # Headline: the quoted text, as large as fits in three lines.
    if headline and bottom - top > unit // 6:
        size = max(8, unit // 7)
        while True:
            font = _font(size)
            lines = _wrap(headline, font, text_width, 3)
            line_h = int(size * 1.15)
            if (
                not lines[-1].endswith("…")
                and line_h * len(lines) <= (bottom - top) * 0.45
            ) or size <= 8:
                break
            size = int(size * 0.85)
        block = line_h * len(lines)
        y = top + rng.uniform(0, 0.3) * max(0, (bottom - top) * 0.5 - block)
        centred = rng.random() < 0.5
        for line in lines:
            x = w / 2 if centred else margin
            anchor = "ma" if centred else "la"
            draw.text(
                (x + 2, y + 2),
                line,
                font=font,
                fill=_shade(background, 0.5),
                anchor=anchor,
            )
            draw.text((x, y), line, font=font, fill=ink, anchor=anchor)
            y += line_h
        top = int(y + margin / 2)

    # The prompt, wrapped, on a panel.
    if bottom - top > unit // 10:
        size = max(7, unit // 42)
        font = _font(size)
        line_h = int(size * 1.3)
        panel_w = text_width if w < 600 else int(text_width * rng.uniform(0.55, 0.8))
        max_lines = max(1, (bottom - top - margin) // line_h)
        lines = _wrap(body or "(empty prompt)", font, panel_w - margin, max_lines)
        panel_h = line_h * len(lines) + margin
        panel_x = margin if rng.random() < 0.5 else w - margin - panel_w
        panel_y = top + int(rng.uniform(0, 1) * max(0, bottom - top - panel_h))
        panel = (
            _shade(background, 0.25)
            if _luminance(background) > 140
            else _shade(background, 1.8)
        )
        draw.rectangle(
            [panel_x, panel_y, panel_x + panel_w, panel_y + panel_h], fill=panel
        )
        y = panel_y + margin // 2
        for line in lines:
            draw.text(
                (panel_x + margin // 2, y),
                line,
                font=font,
                fill=_ink_on(panel),
                anchor="la",
            )
            y += line_h

    info = PngInfo()
    info.add_text(
        "Description", f"{BANNER}: a draft drawn by the studio's preview backend."
    )
    info.add_text("Software", "flux-studio preview backend")
    info.add_text("Seed", str(seed))
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, compress_level=3)
    return out.getvalue()


def _draw_banner(draw: ImageDraw.ImageDraw, at: tuple[int, int], font: Any) -> None:
    """BANNER, with the em dash drawn by hand: the built-in font has no glyph for it."""
    x, y = at
    before, _, after = BANNER.partition(" — ")
    draw.text((x, y), before, font=font, fill=_WARN, anchor="lm")
    x += font.getlength(before + " ")
    dash = font.getlength("M")
    thickness = max(1, int(dash / 9))
    draw.rectangle(
        [x, y - thickness // 2, x + dash, y - thickness // 2 + thickness], fill=_WARN
    )
    draw.text(
        (x + dash + font.getlength(" "), y), after, font=font, fill=_WARN, anchor="lm"
    )


def _paste_reference(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    content: bytes,
    at: tuple[int, int],
    size: int,
) -> None:
    x, y = at
    try:
        with Image.open(io.BytesIO(content)) as ref:
            ref.draft(
                "RGB", (size, size)
            )  # JPEG: decode at a reduced scale, much faster
            ref = ref.convert("RGB")
            ref.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            image.paste(
                ref, (x + (size - ref.width) // 2, y + (size - ref.height) // 2)
            )
    except Exception:  # an undecodable reference still shows as a labelled box
        draw.rectangle([x, y, x + size, y + size], fill=(200, 200, 200))
        draw.line([x, y, x + size, y + size], fill=(120, 120, 120), width=2)
        draw.line([x, y + size, x + size, y], fill=(120, 120, 120), width=2)


def request_digest(request: GenerationRequest) -> str:
    """A stable digest of everything that shapes the drawing (not the seed)."""
    digest = hashlib.sha256()
    parts = [
        request.model,
        request.prompt,
        str(request.width),
        str(request.height),
        "|".join(request.palette),
    ]
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    for ref in request.references:
        digest.update(ref.role.encode() + b"\0" + hashlib.sha256(ref.content).digest())
    return digest.hexdigest()


class PreviewBackend(Backend):
    name = "preview"
    label = "Preview (offline draft)"

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=MODELS, calls_back=False, can_cancel=False, synchronous=True
        )

    def estimate_cost(self, request: GenerationRequest) -> Decimal:
        return Decimal(0)

    def submit(self, request: GenerationRequest) -> Submission:
        self.validate(request)
        seed = (
            request.seed
            if request.seed is not None
            else random.SystemRandom().randrange(2**32)
        )
        data = render(request, seed)
        task_id = (
            "preview-"
            + hashlib.sha256(f"{seed}|{request_digest(request)}".encode()).hexdigest()[
                :24
            ]
        )
        result = PollResult(
            ProviderState.READY,
            progress=1.0,
            result_bytes=data,
            content_type="image/png",
            cost=Decimal(0),
            seed=seed,
            provider_prompt=request.prompt,
        )
        return Submission(task_id=task_id, cost=Decimal(0), result=result)

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        # Nothing is kept between calls: a preview lost before ingesting is simply drawn again.
        error = BackendError(
            ErrorClass.NOT_FOUND,
            "Preview results are not kept; submit again.",
            retryable=False,
        )
        return PollResult(ProviderState.FAILED, error=error)
