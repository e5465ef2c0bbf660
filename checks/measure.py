"""All checks on one decoded image: what the Celery task stores and `manage.py brand_check` prints.

Pure function of the pixels and what was asked (no database): the task and the command each
gather the inputs their own way and call `measure`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from checks import channel_fit, matching, palette, text
from checks.pixels import MATCH_SIDE, OCR_SIDE, PALETTE_SIDE, Picture


@dataclass
class Reference:
    role: str  # "logo" or "product"
    picture: Picture
    label: str = ""
    code: str = ""


@dataclass
class Inputs:
    palette: list[dict[str, Any]] = field(default_factory=list)
    prompt: str = ""
    texts: list[str] | None = None  # None: the prompt's quoted strings
    references: list[Reference] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    tolerance: float = 10.0


def measure(picture: Picture, inputs: Inputs) -> dict[str, Any]:
    timings: dict[str, float] = {}

    def timed(name: str, started: float) -> None:
        timings[name] = round((time.perf_counter() - started) * 1000, 1)

    out: dict[str, Any] = {"width": picture.width, "height": picture.height}
    started = time.perf_counter()
    # The full-size pixels are averaged down once; every check reads one of these copies.
    picture.prepare(MATCH_SIDE, OCR_SIDE, PALETTE_SIDE)
    timed("downscale", started)
    started = time.perf_counter()
    expected = palette.expected_colours(inputs.palette, inputs.prompt)
    out["palette"] = palette.check_palette(
        picture, expected, tolerance=inputs.tolerance
    )
    timed("palette", started)

    started = time.perf_counter()
    strings = (
        inputs.texts if inputs.texts is not None else text.quoted_strings(inputs.prompt)
    )
    out["text"] = text.check_text(picture, strings)
    timed("text", started)

    started = time.perf_counter()
    features = matching.scene_features(picture) if inputs.references else None
    for role in ("logo", "product"):
        refs = [ref for ref in inputs.references if ref.role == role]
        if not refs:
            out[role] = None
            continue
        found = []
        for ref in refs:
            row = matching.find(picture, ref.picture, features=features)
            row.update(label=ref.label, code=ref.code)
            if role == "product" and row["region"]:
                row["colour"] = matching.product_colour(
                    picture, ref.picture, row["region"]
                )
            found.append(row)
        out[role] = {"score": max(row["score"] for row in found), "references": found}
    timed("matching", started)

    out["channels"] = channel_fit.check_channels(
        picture.width, picture.height, inputs.formats
    )
    out["timings_ms"] = timings
    return out
