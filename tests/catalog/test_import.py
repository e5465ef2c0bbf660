"""Catalog import: exact errors by line, re-import by SKU and checksum, the command's output."""

from __future__ import annotations

import io
from pathlib import Path
from tempfile import TemporaryDirectory

from django.core.management import call_command

from campaigns.models import ReferenceImage
from catalog.csvfile import read_catalog
from catalog.importing import catalog_import
from catalog.models import Product, ProductImage
from catalog.sources import ZipSource
from tests.base import StudioTestCase
from tests.catalog.helpers import make_catalog, to_csv, to_zip


class CatalogImportTests(StudioTestCase):
    def _broken(self) -> tuple[list[list[str]], dict[str, bytes]]:
        """200 good products plus four rows broken on purpose, in the middle of the file."""
        rows, files = make_catalog(200)
        header = rows[0]
        files["img/not-an-image.png"] = b"this is text, not a PNG"
        broken = [
            ["SKU-9001", "Missing image", "red", "wool", "img/nowhere.png", "", ""],
            ["SKU-0005", "Duplicate", "red", "wool", "", "", ""],
            ["SKU-9002", "Bad URL", "red", "wool", "ftp://example.com/a.png", "", ""],
            ["SKU-9003", "Not an image", "red", "wool", "img/not-an-image.png", "", ""],
        ]
        # After 50 products (lines 2..51): the broken rows are lines 52..55.
        return [header, *rows[1:51], *broken, *rows[51:]], files

    def _run(self, rows: list[list[str]], files: dict[str, bytes], **kwargs: object):
        source = ZipSource(io.BytesIO(to_zip(files)))
        try:
            return catalog_import(
                brand=self.brand,
                data=to_csv(rows, **kwargs),
                images=source,
                dry_run=False,
            )
        finally:
            source.close()

    def test_200_products_with_600_images_report_each_broken_row_by_line(self) -> None:
        rows, files = self._broken()
        report = self._run(rows, files)
        self.assertEqual([e.line for e in report.errors], [52, 53, 54, 55])
        messages = [e.message for e in report.errors]
        self.assertIn("“img/nowhere.png” is not in the ZIP", messages[0])
        self.assertIn("SKU “SKU-0005” is already on line 7", messages[1])
        self.assertIn("is not an https URL", messages[2])
        self.assertIn("image_front", messages[3])
        self.assertEqual(
            (report.created, report.updated, report.unchanged), (200, 0, 0)
        )
        self.assertEqual(Product.objects.filter(brand=self.brand).count(), 200)
        self.assertEqual(
            ProductImage.objects.filter(product__brand=self.brand).count(), 600
        )
        self.assertEqual(ReferenceImage.objects.filter(brand=self.brand).count(), 600)
        product = Product.objects.get(brand=self.brand, sku="SKU-0007")
        self.assertEqual(product.attributes, {"colour": "red", "material": "wool"})
        self.assertEqual(
            [i.role for i in product.images.all()], ["front", "side", "label"]
        )

        # Re-import with 10 changed rows (name and images): 10 updated, 190 unchanged.
        changed = set(range(0, 200, 20))
        rows2, files2 = make_catalog(200, changed=changed)
        report2 = self._run(rows2, files2, delimiter=";", bom=True)
        self.assertEqual(report2.errors, [])
        self.assertEqual(
            (report2.created, report2.updated, report2.unchanged), (0, 10, 190)
        )
        self.assertEqual(ReferenceImage.objects.filter(brand=self.brand).count(), 630)
        self.assertEqual(
            Product.objects.get(brand=self.brand, sku="SKU-0020").name, "Scarf 20 v2"
        )

    def test_a_dry_run_reports_the_same_and_writes_nothing(self) -> None:
        rows, files = self._broken()
        source = ZipSource(io.BytesIO(to_zip(files)))
        report = catalog_import(
            brand=self.brand, data=to_csv(rows), images=source, dry_run=True
        )
        self.assertEqual(report.error_lines, [52, 53, 54, 55])
        self.assertEqual(report.created, 200)
        self.assertFalse(Product.objects.exists())
        self.assertFalse(ReferenceImage.objects.exists())

    def test_urls_are_queued_for_the_worker_and_private_ones_refused(self) -> None:
        rows = [
            ["sku", "name", "image_front"],
            ["A-1", "Shirt", "https://cdn.example.com/a-1.jpg"],
            ["A-2", "Shirt", "https://127.0.0.1/a-2.jpg"],
            ["A-3", "Shirt", "https://user:pw@cdn.example.com/a.jpg"],
        ]
        with self.captureOnCommitCallbacks(execute=False):
            report = catalog_import(
                brand=self.brand, data=to_csv(rows), images=None, dry_run=False
            )
        self.assertEqual(report.error_lines, [3, 4])
        self.assertIn("private address", report.errors[0].message)
        image = ProductImage.objects.get(product__sku="A-1")
        self.assertEqual(image.state, ProductImage.State.PENDING)
        self.assertEqual(report.to_fetch, [image.pk])

    def test_quoted_fields_tabs_and_header_spellings_are_read(self) -> None:
        text = (
            "\ufeffSKU\tProduct Name\tImage Front\tCare\n"
            'X-1\t"Scarf, ""long""\nwith fringe"\tA.PNG\twash cold\n'
        ).encode()
        parsed = read_catalog(text)
        self.assertEqual(parsed.errors, [])
        (row,) = parsed.rows
        self.assertEqual(row.name, 'Scarf, "long"\nwith fringe')
        self.assertEqual(row.images[0].role, "front")
        self.assertEqual(row.attributes, {"care": "wash cold"})

    def test_the_command_prints_counts_and_exits_1_with_the_lines(self) -> None:
        rows, files = self._broken()
        with TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / "catalog.csv"
            csv_path.write_bytes(to_csv(rows))
            folder = Path(tmp) / "images"
            for name, data in files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
            out, err = io.StringIO(), io.StringIO()
            with self.assertRaises(SystemExit) as exit_:
                call_command(
                    "import_catalog",
                    str(csv_path),
                    workspace=self.workspace.slug,
                    brand=str(self.brand.code)[:8],
                    images=str(folder),
                    dry_run=True,
                    stdout=out,
                    stderr=err,
                )
        self.assertEqual(exit_.exception.code, 1)
        self.assertIn(
            "created: 200, updated: 0, unchanged: 0, errors: 4", out.getvalue()
        )
        self.assertIn("Refused rows on lines: 52, 53, 54, 55", err.getvalue())
        self.assertIn("Line 53 (SKU-0005)", err.getvalue())
        self.assertFalse(Product.objects.exists())
