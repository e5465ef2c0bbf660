"""Batches over products: every generation sends its own product's references, on the preview
backend and on the fake BFL (which records the bodies it received)."""

from __future__ import annotations

import base64
import hashlib
import io

from django.test import override_settings

from catalog.batching import catalog_batch_create, catalog_batch_preview, products_spec
from catalog.importing import catalog_import
from catalog.models import Product, ProductGeneration
from catalog.sources import ZipSource
from generation.batches.common import BatchRefused
from generation.batches.spec import FIXED, Seeds, Size, Target
from generation.engine import policy as engine
from generation.models import Generation, GenerationState
from tests.catalog.helpers import make_catalog, to_csv, to_zip
from tests.fakes.bfl_server import FakeBFL
from tests.generation.batch_helpers import BatchTestCase, make_version

BODY = "Studio photo of {product.name} in {product.colour} {product.material}, {scene}"


class CatalogBatchTests(BatchTestCase):
    def setUp(self) -> None:
        super().setUp()
        rows, files = make_catalog(50, roles=("front", "label"))
        source = ZipSource(io.BytesIO(to_zip(files)))
        report = catalog_import(
            brand=self.brand, data=to_csv(rows), images=source, dry_run=False
        )
        self.assertEqual(report.created, 50)
        self.products = list(Product.objects.filter(brand=self.brand).order_by("sku"))
        self.version = make_version(self.brand, body=BODY, campaign=self.campaign)

    def _own_hashes(self, product: Product) -> list[str]:
        hashes = []
        for image in product.images.select_related("reference").order_by("position"):
            with image.reference.file.open("rb") as handle:  # type: ignore[union-attr]
                hashes.append(hashlib.sha256(handle.read()).hexdigest())
        return hashes

    def _batch(self, target: str):
        spec = products_spec(
            products=self.products,
            version=self.version,
            targets=[Target.parse(target)],
            sizes=[Size(1024, 1024)],
            seeds=Seeds(FIXED, values=(7,)),
            values={"scene": "on white"},
        )
        preview = catalog_batch_preview(
            campaign=self.campaign, version=self.version, spec=spec
        )
        self.assertEqual(preview.errors, {})
        self.assertEqual(preview.plan.count, 50)
        self.assertIn(
            "Studio photo of Scarf 3 in red wool, on white", preview.plan.prompts[3][1]
        )
        return catalog_batch_create(
            campaign=self.campaign,
            version=self.version,
            products=self.products,
            spec=spec,
            user=self.alice,
        )

    def test_on_preview_each_generation_sends_its_own_products_two_references(
        self,
    ) -> None:
        batch = self._batch("preview:flux-2-pro")
        links = ProductGeneration.objects.filter(
            generation__batch=batch
        ).select_related("product", "generation")
        self.assertEqual(links.count(), 50)
        for link in links:
            g = self.run_generation(link.generation)
            self.assertEqual(
                g.state,
                GenerationState.SUCCEEDED,
                g.error if hasattr(g, "error") else "",
            )
            self.assertIn(link.product.name + " in red", g.prompt)
            sent = engine.load_references(
                workspace_id=g.workspace_id, specs=list(g.references)
            )
            self.assertEqual(len(sent), 2)
            self.assertEqual(
                [hashlib.sha256(r.content).hexdigest() for r in sent],
                self._own_hashes(link.product),
            )

    def test_on_the_fake_bfl_each_request_carried_its_own_products_references(
        self,
    ) -> None:
        with (
            FakeBFL(latency=0.0) as fake,
            override_settings(
                BFL_API_KEY=fake.api_key,
                BFL_API_URL=fake.base_url,
                BFL_ALLOWED_HOSTS=fake.allowed_hosts,
            ),
        ):
            batch = self._batch("bfl:flux-2-pro")
            for g in Generation.objects.filter(batch=batch).order_by("id"):
                self.assertEqual(
                    self.run_generation(g).state, GenerationState.SUCCEEDED
                )
            bodies = fake.bodies
        self.assertEqual(len(bodies), 50)
        by_name = {p.name: p for p in self.products}
        for body in bodies:
            name = body["prompt"].split("Studio photo of ", 1)[1].split(" in red", 1)[0]
            sent = [
                hashlib.sha256(base64.b64decode(body[key])).hexdigest()
                for key in ("input_image", "input_image_2")
            ]
            self.assertNotIn("input_image_3", body)
            self.assertEqual(sent, self._own_hashes(by_name[name]))

    def test_a_model_taking_fewer_references_is_said_in_the_preview(self) -> None:
        product = self.products[0]
        spec = products_spec(
            products=[product],
            version=self.version,
            targets=[Target.parse("preview:flux-2-pro")],
            sizes=[Size(1024, 1024)],
            seeds=Seeds(FIXED, values=(1,)),
            values={"scene": "x"},
        )
        from dataclasses import replace

        row = spec.rows[0]
        many = replace(row, references=row.references * 5)  # 10 > the preview's 8
        preview = catalog_batch_preview(
            campaign=self.campaign,
            version=self.version,
            spec=replace(spec, rows=(many,)),
        )
        self.assertTrue(
            any(
                "takes 8 of its 10 reference images" in w for w in preview.plan.warnings
            ),
            preview.plan.warnings,
        )
        self.assertEqual(len(preview.plan.variants[0].row_references), 8)

    def test_the_1000_cap_holds_for_products(self) -> None:
        spec = products_spec(
            products=self.products,
            version=self.version,
            targets=[Target.parse("preview:flux-2-pro")],
            sizes=[Size(1024, 1024)],
            seeds=Seeds(FIXED, values=tuple(range(21))),  # 50 × 21 = 1,050
            values={"scene": "x"},
        )
        with self.assertRaises(BatchRefused) as refused:
            catalog_batch_create(
                campaign=self.campaign,
                version=self.version,
                products=self.products,
                spec=spec,
                user=self.alice,
            )
        self.assertIn("1,050 images", " ".join(refused.exception.messages))
        self.assertFalse(ProductGeneration.objects.exists())
