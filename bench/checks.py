"""Brand checks against decoding the image alone, at 1 MP and 4 MP.

    .venv/bin/python bench/checks.py              # 1 MP and 4 MP, PNG and JPEG, 5 timed runs each
    .venv/bin/python bench/checks.py --runs 9 --json out.json

Each image is drawn here: a scene painted in the brand palette with two lines of headline text
(DejaVu Sans Bold), the test logo and the test product pasted in, rotated and scaled (the same
drawings as tests/checks). The bench times, per size and format, the median of --runs of
- decode: Pillow decoding the file to RGB pixels (checks.pixels.decode), what any use of the
  image pays;
- checks: every check on the decoded image (checks.measure.measure: palette, OCR of the two
  quoted strings, logo and product matching, channel fit), with the time of each part;
and prints checks ÷ decode. Goal: under 5× at 4 MP. No database, no Django request: the checks
are pure functions of the pixels (settings are loaded only for the channel presets).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXTS = ["Warm Up, Harbour", "50 % OFF"]
SIZES = {"1MP": (1024, 1024), "4MP": (2048, 2048)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from PIL import ImageDraw

    from checks.measure import Inputs, Reference, measure
    from checks.pixels import decode
    from tests.checks import drawing as d

    logo, product = decode(d.png(d.logo())), decode(d.png(d.product()))
    inputs = Inputs(
        palette=d.BRAND,
        prompt='A poster: "Warm Up, Harbour" and "50 % OFF"',
        references=[Reference("logo", logo), Reference("product", product)],
        formats=["instagram-square", "web-hero", "ecommerce-square"],
    )
    figures = []
    for label, size in SIZES.items():
        scale = size[0] / 1024
        scene = d.painted_scene([c["hex"] for c in d.BRAND], size)
        draw = ImageDraw.Draw(scene)
        for i, line in enumerate(TEXTS):
            draw.rectangle(
                (
                    40 * scale,
                    (40 + i * 120) * scale,
                    900 * scale,
                    (140 + i * 120) * scale,
                ),
                fill="#F4D35E",
            )
            draw.text(
                (60 * scale, (50 + i * 120) * scale),
                line,
                font=d.font(round(72 * scale)),
                fill="#1A1A2E",
            )
        scene = d.paste(
            scene,
            d.logo(),
            at=(round(650 * scale), round(600 * scale)),
            scale=scale,
            angle=15,
        )
        scene = d.paste(
            scene,
            d.product(),
            at=(round(150 * scale), round(450 * scale)),
            scale=1.2 * scale,
            angle=-12,
        )
        for fmt, data in (("png", d.png(scene)), ("jpeg", d.jpeg(scene, 92))):
            decode(data)  # warm-up (imports, allocators)
            measure(decode(data), inputs)
            decode_times, check_times, parts = [], [], []
            for _ in range(args.runs):
                started = time.perf_counter()
                picture = decode(data)
                decode_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                result = measure(picture, inputs)
                check_times.append(time.perf_counter() - started)
                parts.append(result["timings_ms"])
            dec, chk = statistics.median(decode_times), statistics.median(check_times)
            row = {
                "size": label,
                "pixels": size[0] * size[1],
                "format": fmt,
                "bytes": len(data),
                "decode_ms": round(dec * 1000, 1),
                "checks_ms": round(chk * 1000, 1),
                "ratio": round(chk / dec, 2),
                "parts_ms": {
                    k: statistics.median(p[k] for p in parts) for k in parts[0]
                },
                "scores": {
                    k: (result[k] or {}).get("score")
                    for k in ("palette", "text", "logo", "product", "channels")
                },
            }
            figures.append(row)
            print(
                f"{label} {fmt:<4} {len(data) / 1e6:5.1f} MB  decode {row['decode_ms']:7.1f} ms  "
                f"checks {row['checks_ms']:7.1f} ms  = {row['ratio']:5.2f}× decode  "
                f"(palette {row['parts_ms']['palette']}, text {row['parts_ms']['text']}, "
                f"matching {row['parts_ms']['matching']} ms)  scores {row['scores']}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
