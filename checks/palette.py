"""Palette adherence: the image's dominant colours in CIELAB, each one's CIEDE2000 distance to the
nearest expected colour (the brand palette plus hex colours named in the prompt), and a score.

Dominant colours are k-means clusters of the image's Lab pixels at PALETTE_SIDE (a statistic: a
colour covering 1% of the image keeps its share when downscaled). CIEDE2000 comes from coloraide;
Lab from OpenCV (float input: sRGB transfer curve, D65 white, the same space as coloraide's
"lab-d65", tests/checks/test_palette.py checks they agree).

The score (0..1, 1 best) is 0.8 × adherence + 0.2 × presence:
- adherence: of the image's coloured area, the share whose colour is within the tolerance of an
  expected colour (a cluster between 1× and 2× the tolerance counts in proportion). Neutral
  clusters (white, greys, black: Lab chroma under NEUTRAL_CHROMA) that match no expected colour
  are not held against the palette; their coverage is reported. An image with next to no coloured
  area adheres fully.
- presence: how many expected colours cover at least PRESENT_MIN of the image (clusters within
  the tolerance only), out of
  min(3, expected): an image need not use every colour of a six-colour palette.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np
from coloraide import Color

from checks.pixels import PALETTE_SIDE, Picture

CLUSTERS = 8
NEUTRAL_CHROMA = 8.0
PRESENT_MIN = 0.01
REPORT_MIN = 0.01
# Most pixels one k-means run clusters (the 160 px copy has about 19,000; product regions more).
SAMPLE = 20000
HEX_RE = re.compile(r"#([0-9A-Fa-f]{6})\b")


@dataclass(frozen=True)
class Expected:
    hex: str
    name: str = ""
    source: str = "brand"  # "brand" or "prompt"


def expected_colours(palette: list[dict[str, Any]], prompt: str) -> list[Expected]:
    """The brand's palette, then any other hex colour named in the prompt, without repeats."""
    out: list[Expected] = []
    seen: set[str] = set()
    for colour in palette or []:
        match = HEX_RE.fullmatch(str(colour.get("hex", "")).strip())
        if match and match.group(0).upper() not in seen:
            seen.add(match.group(0).upper())
            out.append(Expected(match.group(0).upper(), str(colour.get("name", ""))))
    for match in HEX_RE.finditer(prompt or ""):
        hex_ = match.group(0).upper()
        if hex_ not in seen:
            seen.add(hex_)
            out.append(Expected(hex_, source="prompt"))
    return out


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (…×3) to CIELAB D65 (L 0..100), float32."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def hex_of_lab(lab: np.ndarray) -> str:
    pixel = np.asarray(lab, dtype=np.float32).reshape(1, 1, 3)
    rgb = cv2.cvtColor(pixel, cv2.COLOR_Lab2RGB).reshape(3)
    r, g, b = (int(round(min(1.0, max(0.0, float(v))) * 255)) for v in rgb)
    return f"#{r:02X}{g:02X}{b:02X}"


def delta_e(lab1: np.ndarray | list[float], lab2: np.ndarray | list[float]) -> float:
    """CIEDE2000 between two D65 Lab colours (coloraide)."""
    one = Color("lab-d65", [float(v) for v in lab1])
    two = Color("lab-d65", [float(v) for v in lab2])
    return float(one.delta_e(two, method="2000"))


def lab_of_hex(hex_: str) -> list[float]:
    return [float(v) for v in Color(hex_).convert("lab-d65").coords()]


def dominant_colours(
    lab_pixels: np.ndarray, *, k: int = CLUSTERS
) -> list[tuple[np.ndarray, float]]:
    """k-means clusters of N×3 Lab pixels: (centre, share of the pixels), largest first."""
    pixels = np.ascontiguousarray(lab_pixels.reshape(-1, 3), dtype=np.float32)
    if len(pixels) == 0:
        return []
    if len(pixels) > SAMPLE:
        # A statistic: an even sample keeps every share that matters and bounds the time.
        pixels = pixels[:: -(-len(pixels) // SAMPLE)]
    k = max(1, min(k, _distinct(pixels, k)))
    cv2.setRNGSeed(15)  # the same image always gives the same clusters
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(pixels, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    # kmeans labels are int32 cluster indices (its stubs type them as any number array).
    counts = np.bincount(
        cast("np.ndarray[Any, np.dtype[np.int32]]", labels).reshape(-1), minlength=k
    )
    order = np.argsort(-counts)
    return [(centres[i], float(counts[i]) / len(pixels)) for i in order if counts[i]]


def _distinct(pixels: np.ndarray, enough: int) -> int:
    """How many distinct colours (to 0.1) there are, counting no further than `enough`: k-means
    needs at least k. One packed integer per pixel sorts far faster than np.unique(axis=0)."""
    q = np.round(pixels * 10).astype(np.int64) + 2048  # L 0..1000, a/b within ±2048
    keys = (q[:, 0] << 24) | (q[:, 1] << 12) | q[:, 2]
    return min(enough, len(np.unique(keys)))


def check_palette(
    picture: Picture, expected: list[Expected], *, tolerance: float
) -> dict[str, Any]:
    lab = to_lab(picture.fitted(PALETTE_SIDE)).reshape(-1, 3)
    opaque = picture.opaque(PALETTE_SIDE)
    if opaque is not None:
        lab = lab[opaque.reshape(-1)]
    clusters = dominant_colours(lab)
    targets = [(colour, lab_of_hex(colour.hex)) for colour in expected]
    coverage = {colour.hex: 0.0 for colour in expected}
    on = off = neutral = 0.0
    rows = []
    for centre, share in clusters:
        chroma = float(np.hypot(centre[1], centre[2]))
        nearest, distance = None, None
        for colour, target in targets:
            d = delta_e(centre, target)
            if distance is None or d < distance:
                nearest, distance = colour, d
        if distance is not None and distance <= tolerance:
            status, weight = "brand", 1.0
        elif chroma < NEUTRAL_CHROMA:
            status, weight = "neutral", None
        elif distance is not None and distance < 2 * tolerance:
            status, weight = "near", 2.0 - distance / tolerance
        else:
            status, weight = "off", 0.0
        if weight is None:
            neutral += share
        else:
            on += share * weight
            off += share * (1 - weight)
            if nearest is not None and status == "brand":
                coverage[nearest.hex] += share
        if share >= REPORT_MIN:
            rows.append(
                {
                    "hex": hex_of_lab(centre),
                    "lab": [round(float(v), 1) for v in centre],
                    "coverage": round(share, 4),
                    "nearest": nearest.hex if nearest else None,
                    "nearest_name": nearest.name if nearest else "",
                    "delta_e": None if distance is None else round(distance, 2),
                    "status": status,
                }
            )
    coloured = on + off
    adherence = 1.0 if coloured < 0.02 else on / coloured
    present = [hex_ for hex_, share in coverage.items() if share >= PRESENT_MIN]
    presence = len(present) / min(3, len(expected)) if expected else 1.0
    score = 0.8 * adherence + 0.2 * min(1.0, presence) if expected else None
    return {
        "score": None if score is None else round(score, 3),
        "adherence": round(adherence, 3),
        "tolerance": tolerance,
        "expected": [
            {
                "hex": colour.hex,
                "name": colour.name,
                "source": colour.source,
                "coverage": round(coverage[colour.hex], 4),
                "present": colour.hex in present,
            }
            for colour in expected
        ],
        "dominant": rows,
        "off_palette_coverage": round(off, 4),
        "neutral_coverage": round(neutral, 4),
    }
