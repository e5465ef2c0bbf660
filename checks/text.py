"""Rendered text: the strings a prompt quotes, read back from the image with Tesseract OCR.

Each quoted string is compared with the best-matching stretch of the OCR text (approximate
substring matching: the least edit distance between the string and any substring of what was
read, Sellers' algorithm), divided by the string's length: 0 is an exact rendering, 1 nothing
alike. Both sides are normalised first (Unicode NFKC, case folded, runs of whitespace made one
space), so "50 % OFF" rendered as "50% off" on two lines still counts as read. The string's
score is 1 minus that distance; the text score is the lowest string score (one misspelled
headline is a misspelled ad).

Tesseract runs in the process through tesserocr (its C++ API; the wheel carries libtesseract,
the language data is Debian's tesseract-ocr-eng, CHECKS_TESSDATA) on the grey copy at OCR_SIDE
that feature matching reads too, with page segmentation mode 11 (sparse text: posters and ads,
not paragraphs); when that misses a string, once more on the inverted copy, so that light text
on a dark ground reads as well as dark on light. The engine is made once per process and kept:
starting the tesseract program per image (pytesseract) cost about 200 ms of CPU before reading a
pixel, loading the model, more than the reading itself at 4 MP.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from PIL import Image

from checks.pixels import OCR_SIDE, Picture

# Quoted text in a prompt: "…", “…”, «…». Single quotes are left out: they are apostrophes too.
QUOTED_RE = re.compile(r"\"([^\"\n]{1,200})\"|“([^”\n]{1,200})”|«([^»\n]{1,200})»")
# Keys of a structured (JSON) prompt whose string value is text to render.
TEXT_KEYS = {
    "text",
    "headline",
    "title",
    "subtitle",
    "caption",
    "tagline",
    "cta",
    "label",
}
MIN_LENGTH = 2


def quoted_strings(prompt: str) -> list[str]:
    """The text a prompt asks to be rendered, in order, without repeats."""
    found: list[str] = []
    stripped = (prompt or "").lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if data is not None:
            _walk_json(data, found)
            return _unique(found)
    for match in QUOTED_RE.finditer(prompt or ""):
        found.append(next(group for group in match.groups() if group is not None))
    return _unique(found)


def _walk_json(node: Any, found: list[str], key: str = "") -> None:
    if isinstance(node, dict):
        for k, value in node.items():
            _walk_json(value, found, str(k).lower())
    elif isinstance(node, list):
        for value in node:
            _walk_json(value, found, key)
    elif isinstance(node, str):
        if key in TEXT_KEYS:
            found.append(node)
        else:
            found.extend(
                next(g for g in m.groups() if g is not None)
                for m in QUOTED_RE.finditer(node)
            )


def _unique(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        item = item.strip()
        if len(normalise(item)) >= MIN_LENGTH and item not in out:
            out.append(item)
    return out


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def best_substring(needle: str, haystack: str) -> tuple[int, str]:
    """The least edit distance from `needle` to any substring of `haystack`, and that substring."""
    if not needle:
        return 0, ""
    n = len(needle)
    # prev[i]: distance of needle[:i] against a substring ending at the previous column;
    # start[i]: where that substring starts. Row 0 is free anywhere (Sellers).
    prev = list(range(n + 1))
    start = [0] * (n + 1)
    best, best_end, best_start = prev[n], 0, 0
    for j, ch in enumerate(haystack, 1):
        cur = [0] * (n + 1)
        cur_start = [j] * (n + 1)
        for i in range(1, n + 1):
            cost = 0 if needle[i - 1] == ch else 1
            options = (
                (prev[i - 1] + cost, start[i - 1] if i > 1 else j - 1),
                (prev[i] + 1, start[i]),
                (cur[i - 1] + 1, cur_start[i - 1] if i > 1 else j),
            )
            cur[i], cur_start[i] = min(options)
        if cur[n] < best or (cur[n] == best and cur_start[n] == best_start):
            # On a tie from the same start, the longer stretch shows more of what was rendered.
            best, best_end, best_start = cur[n], j, cur_start[n]
        prev, start = cur, cur_start
    return best, haystack[best_start:best_end]


def compare(expected: str, read: str) -> dict[str, Any]:
    want, got = normalise(expected), normalise(read)
    # Also against the text with all spaces removed: OCR splits and joins words freely.
    distance, rendered = best_substring(want, got)
    squeezed, squeezed_rendered = best_substring(
        want.replace(" ", ""), got.replace(" ", "")
    )
    if squeezed < distance:
        distance, rendered = squeezed, squeezed_rendered
        length = len(want.replace(" ", ""))
    else:
        length = len(want)
    ratio = min(1.0, distance / max(1, length))
    return {
        "expected": expected,
        "rendered": rendered,
        "distance": round(ratio, 3),
        "score": round(1 - ratio, 3),
        "exact": distance == 0,
    }


class OcrUnavailable(RuntimeError):
    """Tesseract's language data (or tesserocr) is missing: the text check cannot run."""


# Where Debian's tesseract-ocr-eng (and other distributions) put the language data.
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
)
_engine: Any = None
_engine_lock = threading.Lock()


def tessdata_dir() -> str:
    configured = str(settings.CHECKS_TESSDATA or "")
    for folder in [configured] if configured else TESSDATA_DIRS:
        if (Path(folder) / "eng.traineddata").is_file():
            return folder
    raise OcrUnavailable(
        "Tesseract's English data is not installed (apt-get install tesseract-ocr"
        + (
            f"; CHECKS_TESSDATA={configured} holds no eng.traineddata"
            if configured
            else ""
        )
        + ")."
    )


def _api() -> Any:
    """The process's one Tesseract engine (made on first use, about 0.2 s, then kept)."""
    global _engine
    if _engine is None:
        try:
            import tesserocr
        except (
            ImportError
        ) as exc:  # the wheel is a dependency; an install without it says so
            raise OcrUnavailable(f"tesserocr is not installed ({exc}).") from exc
        _engine = tesserocr.PyTessBaseAPI(
            path=tessdata_dir(), lang="eng", psm=tesserocr.PSM.SPARSE_TEXT
        )
    return _engine


def read_text(picture: Picture, *, inverted: bool = False) -> str:
    grey = picture.grey(OCR_SIDE)
    image = Image.fromarray(np.invert(grey) if inverted else grey)
    # One engine per process; a thread pool worker must not interleave SetImage/GetUTF8Text.
    with _engine_lock:
        api = _api()
        api.SetImage(image)
        return api.GetUTF8Text().strip()


def check_text(picture: Picture, strings: list[str]) -> dict[str, Any] | None:
    """None when the prompt asked for no text (then nothing is read)."""
    if not strings:
        return None
    try:
        read = read_text(picture)
    except OcrUnavailable as exc:
        # The other checks still count; the card says why this one is missing.
        return {"score": None, "strings": [], "ocr": "", "error": str(exc)}
    rows = [compare(expected, read) for expected in strings]
    if not all(row["exact"] for row in rows):
        # The inverted pass costs a second OCR run: only when the first one missed something.
        read = f"{read}\n{read_text(picture, inverted=True)}".strip()
        rows = [compare(expected, read) for expected in strings]
    return {
        "score": min(row["score"] for row in rows),
        "strings": rows,
        "ocr": read[:2000],
    }
