"""Asset pack build against a plain Pillow loop: wall time and peak RSS.

    .venv/bin/python bench/export.py                    # 200 images, RSS also at 50
    .venv/bin/python bench/export.py --sizes 20 80      # smaller, when time is short

Makes N approved 2048×2048 JPEG originals (photo-like noise and shapes, so encoders work as on
real images), then runs, each in a fresh process so peak RSS is its own:
- export: exports.services.export_pack_build for the N assets, 3 presets (square 1080×1080,
  story 1080×1920, 16:9 1920×1080) × jpeg+webp, the ZIP streamed into local storage, with
  EXPORT_BUILD_THREADS (default 2) images rendered at once;
- loop: one process, one thread, the same decodes, focal crops, Lanczos resizes and encodes
  (same qualities), no ZIP, no database, no metadata.
It prints wall time and peak RSS (ru_maxrss) of each, the export/loop time ratio at the largest
size, and the export's peak RSS at each size (flat = memory does not grow with the pack).

BENCH_DATABASE_URL names a database the bench owns (default `export_bench` on 127.0.0.1:5432,
created when missing and migrated); the bench's workspace (slug `export-bench`) is made again
at each run. Media go to a temporary folder that is deleted at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PRESETS = ["square", "story", "16x9"]
FORMATS = ["jpeg", "webp"]
SLUG = "export-bench"


def setup_django(media: str) -> None:
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/export_bench"
    )
    os.environ["MEDIA_ROOT"] = media
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    import django

    django.setup()


def ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def original(seed: int) -> bytes:
    """A 2048×2048 JPEG with texture (noise) and shapes, different for each seed."""
    from PIL import Image, ImageDraw, ImageFilter

    noise = Image.effect_noise((2048, 2048), 40 + seed % 20).convert("RGB")
    base = Image.linear_gradient("L").resize((2048, 2048)).convert("RGB")
    image = Image.blend(base, noise, 0.35).filter(ImageFilter.GaussianBlur(1))
    draw = ImageDraw.Draw(image)
    for k in range(12):
        x, y = (seed * 97 + k * 311) % 1800, (seed * 53 + k * 173) % 1800
        draw.ellipse((x, y, x + 240, y + 240), fill=((k * 40) % 256, 120, 200 - k * 10))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def populate(count: int) -> None:
    from studio.models import Workspace
    from tests.factories import make_asset, make_brand, make_campaign, make_workspace

    Workspace.objects.filter(slug=SLUG).delete()
    workspace = make_workspace("Export bench")
    workspace.slug = SLUG
    workspace.save(update_fields=["slug"])
    campaign = make_campaign(
        make_brand(workspace, name="Bench", default_formats=[]), name="Bench"
    )
    for i in range(count):
        make_asset(campaign, image=original(i), review_status="approved")


def child_export(count: int) -> dict:
    from exports import services
    from generation.models import Asset
    from studio.models import Workspace

    workspace = Workspace.objects.get(slug=SLUG)
    assets = list(Asset.objects.filter(workspace=workspace).order_by("id")[:count])
    start = time.perf_counter()
    pack = services.export_pack_request(
        workspace=workspace,
        assets=assets,
        preset_names=PRESETS,
        formats=FORMATS,
        dispatch=False,
    )
    pack = services.export_pack_build(pack_id=pack.pk)
    wall = time.perf_counter() - start
    assert pack.state == "succeeded", pack.error
    size = pack.byte_size
    pack.file.delete(save=False)
    return {"wall": wall, "files": pack.total, "zip_bytes": size}


def child_loop(count: int) -> dict:
    from django.conf import settings
    from PIL import Image, ImageOps

    from exports.crop import plan
    from exports.presets import resolve_presets
    from generation.models import Asset
    from studio.models import Workspace

    workspace = Workspace.objects.get(slug=SLUG)
    paths = [
        a.file.path
        for a in Asset.objects.filter(workspace=workspace).order_by("id")[:count]
    ]
    presets = resolve_presets(None, PRESETS)
    start = time.perf_counter()
    files = 0
    for path in paths:
        image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        for preset in presets:
            p = plan(
                image.width,
                image.height,
                preset.width,
                preset.height,
                max_upscale=settings.EXPORT_MAX_UPSCALE,
            )
            out = image.crop(p.box).resize(
                (p.width, p.height), Image.Resampling.LANCZOS
            )
            for fmt in FORMATS:
                buffer = io.BytesIO()
                if fmt == "jpeg":
                    out.save(buffer, "JPEG", quality=90)
                else:
                    out.save(buffer, "WEBP", quality=90, method=4)
                files += 1
    return {"wall": time.perf_counter() - start, "files": files}


def run_child(kind: str, count: int, media: str) -> dict:
    answer = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--count",
            str(count),
            "--media",
            media,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(answer.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--child", choices=["export", "loop"])
    parser.add_argument("--count", type=int)
    parser.add_argument("--media")
    args = parser.parse_args()
    if args.child:
        setup_django(args.media)
        result = (child_export if args.child == "export" else child_loop)(args.count)
        result["peak_rss_mb"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        print(json.dumps(result))
        return
    sizes = sorted(args.sizes)
    with tempfile.TemporaryDirectory(prefix="export-bench-") as media:
        ensure_database(
            os.environ.get(
                "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/export_bench"
            )
        )
        setup_django(media)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        t = time.perf_counter()
        populate(sizes[-1])
        print(
            f"{sizes[-1]} originals of 2048x2048 made in {time.perf_counter() - t:.0f} s"
        )
        print(
            f"presets {', '.join(PRESETS)} x formats {', '.join(FORMATS)}; cores: {os.cpu_count()}"
        )
        results = {}
        for n in sizes:
            for kind in ("loop", "export"):
                r = results[kind, n] = run_child(kind, n, media)
                print(
                    f"{kind:6} N={n:4}: {r['files']:5} files  {r['wall']:7.1f} s"
                    f"  {r['wall'] / n * 1000:6.0f} ms/image  peak RSS {r['peak_rss_mb']:6.0f} MB"
                )
        n = sizes[-1]
        ratio = results["export", n]["wall"] / results["loop", n]["wall"]
        rss = "  ".join(
            f"N={m}: {results['export', m]['peak_rss_mb']:.0f} MB" for m in sizes
        )
        print(f"export/loop time at N={n}: {ratio:.2f}x (goal <= 1.0x)")
        print(f"export peak RSS: {rss}")


if __name__ == "__main__":
    main()
