"""Coverage by shot, gaps, export by product (<sku>/<shot>_<n>.<ext>) and the results CSV."""

from __future__ import annotations

import csv
import io
import zipfile

from PIL import Image

from catalog.batching import catalog_batch_create, products_spec
from catalog.coverage import coverage, products_missing
from catalog.exporting import catalog_export_request, results_csv
from catalog.importing import catalog_import
from catalog.marketplace import check_main_image
from catalog.models import Product, ProductGeneration, Shot
from catalog.sources import ZipSource
from exports.services import export_pack_build
from generation.batches.spec import FIXED, Seeds, Size, Target
from generation.models import Asset
from generation.review import assets_review
from tests.catalog.helpers import make_catalog, to_csv, to_zip
from tests.generation.batch_helpers import BatchTestCase, make_version


class CoverageExportTests(BatchTestCase):
    def test_gaps_close_when_approved_and_the_pack_is_named_by_product(self) -> None:
        rows, files = make_catalog(3, roles=("front",))
        catalog_import(
            brand=self.brand,
            data=to_csv(rows),
            images=ZipSource(io.BytesIO(to_zip(files))),
            dry_run=False,
        )
        version = make_version(self.brand, body="{product.name} on white")
        hero = Shot.objects.create(
            workspace=self.workspace, brand=self.brand, key="hero", name="Hero on white",
            template=version.template, width=512, height=512, marketplace_main=True,
        )  # fmt: skip
        products = list(Product.objects.filter(brand=self.brand).order_by("sku"))
        self.assertEqual(list(products_missing(self.brand, hero)), products)
        spec = products_spec(
            products=products[:2],
            version=version,
            targets=[Target.parse("preview:flux-2-pro")],
            sizes=[Size(512, 512)],
            seeds=Seeds(FIXED, values=(1, 2)),
        )
        batch = catalog_batch_create(
            campaign=self.campaign, version=version, products=products[:2], spec=spec,
            user=self.alice, shot=hero,
        )  # fmt: skip
        for link in ProductGeneration.objects.filter(generation__batch=batch):
            self.run_generation(link.generation)
        assets = list(Asset.objects.filter(batch=batch).order_by("id"))
        self.assertEqual(len(assets), 4)
        assets_review(
            workspace_id=self.workspace.pk,
            asset_ids=[a.pk for a in assets],
            actor=self.alice,
            to_status="approved",
        )
        self.assertEqual(list(products_missing(self.brand, hero)), [products[2]])
        rows_ = coverage(self.brand)
        self.assertEqual([r.approved.get(hero.pk, 0) for r in rows_], [2, 2, 0])

        pack = catalog_export_request(
            brand=self.brand, products=products, user=self.alice, dispatch=False
        )
        pack = export_pack_build(pack_id=pack.pk)
        with pack.file.open("rb") as handle, zipfile.ZipFile(handle) as zf:
            names = sorted(n for n in zf.namelist() if "/" in n)
        self.assertEqual(
            names,
            ["SKU-0000/hero_1.jpg", "SKU-0000/hero_2.jpg", "SKU-0001/hero_1.jpg", "SKU-0001/hero_2.jpg"],
        )  # fmt: skip
        table = list(
            csv.reader(io.StringIO(results_csv(brand=self.brand).decode("utf-8-sig")))
        )
        self.assertEqual(table[0], ["sku", "name", "colour", "material", "hero_files"])
        self.assertEqual(table[1][-1], "SKU-0000/hero_1.jpg|SKU-0000/hero_2.jpg")
        self.assertEqual(table[3][-1], "")

    def test_the_marketplace_check_wants_white_and_size(self) -> None:
        self.assertEqual(check_main_image(Image.new("RGB", (1200, 1200), "white")), [])
        grey = check_main_image(Image.new("RGB", (800, 800), (200, 200, 200)))
        self.assertEqual(len(grey), 2)
        self.assertIn("at least 1000 px", grey[0])
        self.assertIn("not pure white", grey[1])
