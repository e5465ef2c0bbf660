"""Catalog import at scale: 2,000 products with 3 images each, from a CSV and a ZIP.

    DATABASE_URL=postgres://... .venv/bin/python bench/catalog.py             # 2,000 × 3
    .venv/bin/python bench/catalog.py --products 500 --side 256

Draws the images (PNG, --side px, distinct bytes each), writes the CSV and the ZIP to a temporary
folder, imports them into a throwaway workspace and brand through the same service the command
and the worker use (catalog.importing.catalog_import: every image checked and cleaned like a
reference upload, stored through the storage), then imports the same files again (all rows
unchanged: checksums only). Prints the wall time of each and the process's peak RSS, then
deletes the workspace (rows and stored files). Needs migrated PostgreSQL (DATABASE_URL).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--side", type=int, default=256, help="image side in px")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from django.core.files.storage import default_storage
    from PIL import Image

    from campaigns.models import Brand, ReferenceImage
    from catalog.importing import catalog_import
    from catalog.sources import ZipSource
    from studio.models import Workspace

    roles = ("front", "side", "label")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        csv_path, zip_path = Path(tmp) / "catalog.csv", Path(tmp) / "images.zip"
        with (
            csv_path.open("w", newline="") as handle,
            zipfile.ZipFile(zip_path, "w") as zf,
        ):
            writer = csv.writer(handle)
            writer.writerow(
                ["sku", "name", "colour", "category", *(f"image_{r}" for r in roles)]
            )
            for i in range(args.products):
                names = []
                for r, role in enumerate(roles):
                    buffer = io.BytesIO()
                    colour = (i % 256, (i // 256) % 256, r * 60)
                    Image.new("RGB", (args.side, args.side), colour).save(buffer, "PNG")
                    name = f"{i:05d}_{role}.png"
                    zf.writestr(name, buffer.getvalue())
                    names.append(name)
                writer.writerow([f"B-{i:05d}", f"Product {i}", "blue", "bench", *names])
        print(
            f"drew {args.products} products × {len(roles)} images ({args.side} px) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        workspace = Workspace.objects.create(
            name="Catalog bench", slug=f"catalog-bench-{os.getpid()}"
        )
        brand = Brand.objects.create(workspace=workspace, name="Bench brand")
        data = csv_path.read_bytes()
        try:
            for label in ("first import", "re-import (unchanged)"):
                source = ZipSource(zip_path)
                t0 = time.perf_counter()
                report = catalog_import(
                    brand=brand, data=data, images=source, dry_run=False
                )
                wall = time.perf_counter() - t0
                source.close()
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(
                    f"{label}: {wall:.1f} s wall ({1000 * wall / args.products:.1f} ms/product), "
                    f"created {report.created}, updated {report.updated}, "
                    f"unchanged {report.unchanged}, errors {len(report.errors)}; "
                    f"peak RSS so far {rss:.0f} MiB"
                )
        finally:
            files = [
                name
                for ref in ReferenceImage.objects.filter(brand=brand)
                for name in (ref.file.name, ref.thumbnail.name)
            ]
            workspace.delete()
            for name in files:
                default_storage.delete(name)


if __name__ == "__main__":
    main()
