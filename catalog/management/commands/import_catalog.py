"""python manage.py import_catalog --workspace SLUG --brand CODE FILE.csv [--images DIR_OR_ZIP]
[--dry-run]

Imports (or with --dry-run only checks) a product CSV for a brand, runs in this process, prints
created/updated/unchanged/errors and each refused row as "Line N (SKU): what is wrong". Exit
status: 0 when every row was accepted, 1 when any row was refused (the others are imported unless
--dry-run), 2 for what was asked (unknown workspace or brand, unreadable file).
URL images are fetched afterwards by the worker (the ingest queue).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from catalog.importing import catalog_import_file
from catalog.lookup import LookupFailed, find_brand, find_workspace
from catalog.sources import open_source


class Command(BaseCommand):
    help = "Import a product catalog CSV (and a ZIP or folder of images) into a brand."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workspace", required=True, help="workspace slug (or name)"
        )
        parser.add_argument(
            "--brand", required=True, help="brand code, 8-hex short id or exact name"
        )
        parser.add_argument("file", help="the CSV file")
        parser.add_argument("--images", help="a ZIP file or a folder of the images")
        parser.add_argument(
            "--dry-run", action="store_true", help="check every row, write nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            workspace = find_workspace(options["workspace"])
            brand = find_brand(workspace, options["brand"])
        except LookupFailed as exc:
            self.stderr.write(str(exc))
            sys.exit(2)
        path = Path(options["file"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.stderr.write(f"Cannot read {path}: {exc.strerror or exc}")
            sys.exit(2)
        images_path = options.get("images")
        if images_path and not Path(images_path).exists():
            self.stderr.write(f"No such file or folder: {images_path}")
            sys.exit(2)
        try:
            images = open_source(images_path)
        except ValueError as exc:
            self.stderr.write(str(exc))
            sys.exit(2)
        try:
            report = catalog_import_file(
                brand=brand, data=data, images=images, dry_run=options["dry_run"]
            )
        finally:
            if images is not None:
                images.close()
        prefix = "Dry run (nothing written): " if report.dry_run else ""
        self.stdout.write(
            f"{prefix}created: {report.created}, updated: {report.updated}, "
            f"unchanged: {report.unchanged}, errors: {len(report.errors)}"
        )
        if report.to_fetch:
            self.stdout.write(f"{len(report.to_fetch)} image URLs queued for download.")
        if report.errors:
            for error in report.errors:
                self.stderr.write(str(error))
            lines = ", ".join(str(n) for n in report.error_lines)
            self.stderr.write(f"Refused rows on lines: {lines}")
            sys.exit(1)
