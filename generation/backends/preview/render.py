"""Drawing the preview PNG: a deterministic layout from the request and seed, under the banner."""

from __future__ import annotations

import hashlib
import io
import random
from typing import Any

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from generation.backends.base import GenerationRequest
from generation.backends.preview.spec import BANNER
from generation.backends.preview.text import (
    INK,
    PAPER,
    WARN,
    ink_on,
    load_font,
    luminance,
    palette_for,
    printable,
    shade,
    text_of,
    wrap_lines,
)


def render(request: GenerationRequest, seed: int) -> bytes:
    """Draw the draft PNG; a pure function of (request, seed)."""
    w, h = request.width, request.height
    unit = min(w, h)
    rng = random.Random(f"{seed}|{request_digest(request)}")
    palette = palette_for(request, rng)
    colours = palette[:]
    rng.shuffle(colours)
    background = colours[0]

    image = Image.new("RGB", (w, h), background)
    draw = ImageDraw.Draw(image)

    # Colour bands from the palette: orientation, widths and order follow the seed.
    vertical = rng.random() < 0.5
    span = w if vertical else h
    position = rng.uniform(0.15, 0.45) * span
    for colour in colours[1:] + [shade(background, rng.uniform(0.6, 1.3))]:
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
    draw.rectangle([0, 0, w, banner_h], fill=INK)
    stripe = banner_h // 2
    for x in range(-banner_h, w + banner_h, stripe * 2):
        draw.polygon(
            [
                (x, banner_h),
                (x + stripe, banner_h),
                (x + stripe + 6, banner_h + 6),
                (x + 6, banner_h + 6),
            ],
            WARN,
        )
    size = int(banner_h * 0.6)
    while size > 6 and load_font(size).getlength(BANNER) > w - banner_h:
        size -= 1
    banner_font = load_font(size)
    _draw_banner(draw, (banner_h // 3, banner_h // 2), banner_font)

    footer_h = max(10, unit // 22)
    footer_font = load_font(int(footer_h * 0.6))
    draw.rectangle([0, h - footer_h, w, h], fill=INK)
    refs = f" · {len(request.references)} ref(s)" if request.references else ""
    footer = (
        f"{request.model} · {w}x{h} · seed {seed}{refs} · draft, not a FLUX.2 render"
    )
    draw.text(
        (footer_h // 2, h - footer_h // 2),
        footer,
        font=footer_font,
        fill=PAPER,
        anchor="lm",
    )

    top, bottom = banner_h + 8 + unit // 40, h - footer_h - unit // 40
    margin = max(4, unit // 24)

    # Swatches: one square per brand colour with its hex.
    swatch = max(8, unit // 14)
    if request.palette and bottom - top > swatch * 2:
        label_size = max(6, swatch // 4)
        while (
            label_size > 6 and load_font(label_size).getlength("#DDDDDD") > swatch * 0.9
        ):
            label_size -= 1
        label_font = load_font(label_size)
        x = w - margin - swatch if rng.random() < 0.5 else margin
        step = -(swatch + margin // 2) if x > w / 2 else swatch + margin // 2
        y = top
        for colour in palette:
            draw.rectangle(
                [x, y, x + swatch, y + swatch],
                fill=colour,
                outline=ink_on(background),
                width=max(1, swatch // 24),
            )
            hex_label = "#{:02X}{:02X}{:02X}".format(*colour)
            draw.text(
                (x + swatch / 2, y + swatch / 2),
                hex_label,
                font=label_font,
                fill=ink_on(colour),
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
        role_font = load_font(max(6, thumb // 6))
        y = bottom - thumb - max(6, thumb // 6) - 4
        if y > top + unit // 6:
            x = margin
            for ref in request.references:
                _paste_reference(image, draw, ref.content, (x, y), thumb)
                draw.rectangle(
                    [x, y, x + thumb, y + thumb],
                    outline=ink_on(background),
                    width=max(1, thumb // 40),
                )
                role = printable(ref.role or "reference")[:14]
                draw.text(
                    (x, y + thumb + 2),
                    role,
                    font=role_font,
                    fill=ink_on(background),
                    anchor="la",
                )
                x += thumb + margin // 2
            bottom = y - margin // 2

    headline, body = text_of(request.prompt)
    text_width = w - 2 * margin
    ink = ink_on(background)

    # Headline: the quoted text, as large as fits in three lines.
    if headline and bottom - top > unit // 6:
        size = max(8, unit // 7)
        while True:
            font = load_font(size)
            lines = wrap_lines(headline, font, text_width, 3)
            line_h = int(size * 1.15)
            if (
                not lines[-1].endswith("…")
                and line_h * len(lines) <= (bottom - top) * 0.45
            ) or size <= 8:
                break
            size = int(size * 0.85)
        block = line_h * len(lines)
        # Float positions (Pillow takes them as they are).
        line_y = top + rng.uniform(0, 0.3) * max(0, (bottom - top) * 0.5 - block)
        centred = rng.random() < 0.5
        for line in lines:
            line_x = w / 2 if centred else margin
            anchor = "ma" if centred else "la"
            draw.text(
                (line_x + 2, line_y + 2),
                line,
                font=font,
                fill=shade(background, 0.5),
                anchor=anchor,
            )
            draw.text((line_x, line_y), line, font=font, fill=ink, anchor=anchor)
            line_y += line_h
        top = int(line_y + margin / 2)

    # The prompt, wrapped, on a panel.
    if bottom - top > unit // 10:
        size = max(7, unit // 42)
        font = load_font(size)
        line_h = int(size * 1.3)
        panel_w = text_width if w < 600 else int(text_width * rng.uniform(0.55, 0.8))
        max_lines = max(1, (bottom - top - margin) // line_h)
        lines = wrap_lines(body or "(empty prompt)", font, panel_w - margin, max_lines)
        panel_h = line_h * len(lines) + margin
        panel_x = margin if rng.random() < 0.5 else w - margin - panel_w
        panel_y = top + int(rng.uniform(0, 1) * max(0, bottom - top - panel_h))
        panel = (
            shade(background, 0.25)
            if luminance(background) > 140
            else shade(background, 1.8)
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
                fill=ink_on(panel),
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
    draw.text((x, y), before, font=font, fill=WARN, anchor="lm")
    x += font.getlength(before + " ")
    dash = font.getlength("M")
    thickness = max(1, int(dash / 9))
    draw.rectangle(
        [x, y - thickness // 2, x + dash, y - thickness // 2 + thickness], fill=WARN
    )
    draw.text(
        (x + dash + font.getlength(" "), y), after, font=font, fill=WARN, anchor="lm"
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
            rgb = ref.convert("RGB")
            rgb.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            image.paste(
                rgb, (x + (size - rgb.width) // 2, y + (size - rgb.height) // 2)
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
