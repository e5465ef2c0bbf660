"""The catalog pages: products, import preview → confirm → progress, coverage filters, the batch
for the gaps, export by product and the results CSV; roles on the server."""

from __future__ import annotations

import csv
import io

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from catalog import services
from catalog.importing import catalog_import
from catalog.models import CatalogImport, Product, ProductGeneration, Shot
from catalog.sources import ZipSource
from exports.models import ExportPack
from generation.models import Asset, Batch
from generation.review import assets_review
from tests.catalog.helpers import make_catalog, to_csv, to_zip
from tests.factories import make_campaign
from tests.generation.batch_helpers import BatchTestCase, make_version


class CatalogViewTests(BatchTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.catalog_url = reverse("catalog:catalog", args=[self.brand.code])
        self.coverage_url = reverse("catalog:coverage", args=[self.brand.code])

    def _import(self, count: int = 3) -> list[Product]:
        rows, files = make_catalog(count, roles=("front", "side"))
        rows[1][2] = "blue"  # SKU-0000 is blue, the others red
        catalog_import(
            brand=self.brand,
            data=to_csv(rows),
            images=ZipSource(io.BytesIO(to_zip(files))),
            dry_run=False,
        )
        return list(Product.objects.filter(brand=self.brand).order_by("sku"))

    def _hero(self) -> Shot:
        version = make_version(self.brand, body="{product.name} on white, {scene}")
        return Shot.objects.create(
            workspace=self.workspace, brand=self.brand, key="hero", name="Hero on white",
            template=version.template, width=512, height=512,
        )  # fmt: skip

    # -- products and import ---------------------------------------------------------------

    def test_a_viewer_reads_products_with_thumbnails_and_gets_no_import_form(
        self,
    ) -> None:
        products = self._import(2)
        self.client.force_login(self.bob)
        r = self.client.get(self.catalog_url)
        self.assertContains(r, "SKU-0001")
        self.assertContains(r, "colour: red")
        image = products[0].images.get(role="front")
        self.assertContains(
            r, reverse("campaigns:reference-thumbnail", args=[image.reference.code])
        )
        self.assertNotContains(r, 'id="catalog-import"')
        r = self.client.post(
            reverse("catalog:import-create", args=[self.brand.code]),
            {"csv_file": SimpleUploadedFile("c.csv", b"sku,name\nA,B\n")},
        )
        self.assertEqual(r.status_code, 403)
        self.assertFalse(CatalogImport.objects.exists())

    def test_the_brand_page_links_to_the_catalog(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(reverse("campaigns:brand-detail", args=[self.brand.code]))
        self.assertContains(r, self.catalog_url)

    def test_upload_previews_errors_by_line_then_confirm_imports(self) -> None:
        rows, files = make_catalog(4, roles=("front",))
        rows[3][4] = "img/missing.png"  # line 4
        self.client.force_login(self.eddie)
        r = self.client.get(self.catalog_url)
        self.assertContains(r, 'id="catalog-import"')
        with self.captureOnCommitCallbacks() as queued:
            r = self.client.post(
                reverse("catalog:import-create", args=[self.brand.code]),
                {
                    "csv_file": SimpleUploadedFile("shop.csv", to_csv(rows)),
                    "images": SimpleUploadedFile("images.zip", to_zip(files)),
                },
            )
        self.assertEqual(len(queued), 1)  # the worker's task, sent after commit
        preview = CatalogImport.objects.get()
        self.assertTrue(preview.dry_run)
        detail = reverse("catalog:import-detail", args=[preview.code])
        self.assertRedirects(r, detail)
        # Queued: the status card polls itself.
        r = self.client.get(detail, headers={"HX-Request": "true"})
        self.assertContains(r, 'id="import-status"')
        self.assertContains(r, f'hx-get="{detail}"')
        self.assertNotContains(r, "<html")

        services.catalog_import_job_run(import_id=preview.pk)  # what the worker does
        self.assertFalse(Product.objects.exists())  # a preview writes nothing
        r = self.client.get(detail, headers={"HX-Request": "true"})
        self.assertNotContains(r, "hx-trigger")  # finished: polling stops
        self.assertContains(r, "<td>4</td>")
        self.assertContains(r, "SKU-0002")
        self.assertContains(r, "missing.png")
        self.assertContains(r, 'id="import-confirm"')

        r = self.client.post(reverse("catalog:import-confirm", args=[preview.code]))
        real = CatalogImport.objects.exclude(pk=preview.pk).get()
        self.assertFalse(real.dry_run)
        self.assertRedirects(r, reverse("catalog:import-detail", args=[real.code]))
        services.catalog_import_job_run(import_id=real.pk)
        self.assertEqual(
            sorted(Product.objects.values_list("sku", flat=True)),
            ["SKU-0000", "SKU-0001", "SKU-0003"],
        )
        r = self.client.get(reverse("catalog:import-detail", args=[real.code]))
        self.assertContains(r, "Created <strong>3</strong>")
        self.assertNotContains(r, 'id="import-confirm"')  # a real import is not re-run
        r = self.client.post(reverse("catalog:import-confirm", args=[real.code]))
        self.assertEqual(CatalogImport.objects.count(), 2)

    def test_a_viewer_cannot_confirm_a_preview(self) -> None:
        job = CatalogImport(
            workspace=self.workspace, brand=self.brand, state="succeeded"
        )
        job.csv_file.save("p.csv", io.BytesIO(b"sku\nA\n"), save=False)  # type: ignore[arg-type]
        job.total = 1
        job.save()
        self.client.force_login(self.bob)
        r = self.client.get(reverse("catalog:import-detail", args=[job.code]))
        self.assertNotContains(r, 'id="import-confirm"')
        r = self.client.post(reverse("catalog:import-confirm", args=[job.code]))
        self.assertEqual(r.status_code, 403)
        self.assertEqual(CatalogImport.objects.count(), 1)

    def test_a_bad_upload_is_refused_with_the_form(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            reverse("catalog:import-create", args=[self.brand.code]),
            {
                "csv_file": SimpleUploadedFile("shop.csv", b"sku\nA\n"),
                "images": SimpleUploadedFile("images.rar", b"x"),
            },
        )
        self.assertContains(r, "one .zip file", status_code=400)
        self.assertFalse(CatalogImport.objects.exists())

    # -- coverage, gaps, export ------------------------------------------------------------

    def test_coverage_filters_gaps_by_shot_attribute_and_skus(self) -> None:
        products = self._import(3)
        hero = self._hero()
        spec_batch = self._gap_batch(hero, skus="SKU-0000")
        self._approve(spec_batch)
        self.client.force_login(self.bob)
        r = self.client.get(self.coverage_url)
        self.assertContains(r, 'id="coverage-sku-0000"')
        self.assertContains(r, "✓ 1")
        r = self.client.get(self.coverage_url, {"missing": "hero"})
        self.assertNotContains(r, 'id="coverage-sku-0000"')
        self.assertContains(r, 'id="coverage-sku-0001"')
        self.assertNotContains(r, 'id="gap-batch-button"')  # a viewer gets no button
        r = self.client.get(self.coverage_url, {"attribute": "colour=red"})
        self.assertNotContains(r, 'id="coverage-sku-0000"')
        self.assertContains(r, 'id="coverage-sku-0002"')
        r = self.client.get(self.coverage_url, {"skus": "SKU-0002\nNOPE-1"})
        self.assertContains(r, 'id="coverage-sku-0002"')
        self.assertNotContains(r, 'id="coverage-sku-0001"')
        self.assertContains(r, "Not in this catalog: NOPE-1")
        self.assertEqual(len(products), 3)

    def _gap_batch(self, shot: Shot, **extra: str) -> Batch:
        self.client.force_login(self.eddie)
        r = self.client.post(
            reverse("catalog:gap-batch", args=[self.brand.code]),
            {
                "shot": shot.key,
                "campaign": str(self.campaign.code),
                "target": "preview:flux-2-pro",
                "per_product": "1",
                "value_scene": "on a marble table",
                **extra,
            },
        )
        batch = Batch.objects.order_by("-id").first()
        assert batch is not None, [str(m) for m in r.wsgi_request._messages]
        self.assertRedirects(
            r,
            reverse("generation:batch-detail", args=[batch.code]),
            fetch_redirect_response=False,
        )
        return batch

    def _approve(self, batch: Batch) -> list[Asset]:
        for link in ProductGeneration.objects.filter(generation__batch=batch):
            self.run_generation(link.generation)
        assets = list(Asset.objects.filter(batch=batch))
        assets_review(
            workspace_id=self.workspace.pk,
            asset_ids=[a.pk for a in assets],
            actor=self.alice,
            to_status="approved",
        )
        return assets

    def test_the_gap_button_batches_exactly_the_products_missing_the_shot(
        self,
    ) -> None:
        products = self._import(3)
        hero = self._hero()
        self._approve(self._gap_batch(hero, skus="SKU-0001"))
        self.client.force_login(self.eddie)
        r = self.client.get(self.coverage_url, {"missing": "hero"})
        self.assertContains(r, "2 products missing “Hero on white”")
        self.assertContains(r, 'id="gap-batch-button"')
        self.assertContains(
            r, 'name="value_scene"'
        )  # the template's non-product variable
        batch = self._gap_batch(hero)
        linked = ProductGeneration.objects.filter(generation__batch=batch)
        self.assertEqual(
            sorted(link.product.sku for link in linked), ["SKU-0000", "SKU-0002"]
        )
        self.assertEqual({link.shot_id for link in linked}, {hero.pk})
        self.assertEqual(batch.generations.count(), 2)
        # By attribute: only the blue product's gap.
        before = Batch.objects.count()
        self._gap_batch(hero, attribute="colour=blue")
        self.assertEqual(Batch.objects.count(), before + 1)
        self.assertEqual(
            [
                link.product.sku
                for link in ProductGeneration.objects.filter(
                    generation__batch=Batch.objects.order_by("-id").first()
                )
            ],
            [products[0].sku],
        )

    def test_the_gap_button_refuses_viewers_and_other_workspaces_campaigns(
        self,
    ) -> None:
        self._import(2)
        hero = self._hero()
        url = reverse("catalog:gap-batch", args=[self.brand.code])
        data = {
            "shot": "hero",
            "campaign": str(self.campaign.code),
            "target": "preview:flux-2-pro",
            "per_product": "1",
        }
        self.client.force_login(self.bob)
        self.assertEqual(self.client.post(url, data).status_code, 403)
        from tests.factories import make_brand

        foreign = make_campaign(make_brand(self.other_workspace, name="Globex"))
        self.client.force_login(self.eddie)
        r = self.client.post(url, {**data, "campaign": str(foreign.code)})
        self.assertRedirects(r, self.coverage_url)
        self.assertFalse(Batch.objects.exists())
        # A shot without a template says so and stores nothing.
        Shot.objects.filter(pk=hero.pk).update(template=None)
        r = self.client.post(url, data, follow=True)
        self.assertContains(r, "has no template")
        self.assertFalse(Batch.objects.exists())

    def test_export_by_product_and_the_results_csv(self) -> None:
        self._import(2)
        hero = self._hero()
        export_url = reverse("catalog:export-by-product", args=[self.brand.code])
        self.client.force_login(self.eddie)
        r = self.client.post(export_url, follow=True)
        self.assertContains(r, "no approved product images yet")
        self._approve(self._gap_batch(hero, skus="SKU-0000"))
        with self.captureOnCommitCallbacks():
            r = self.client.post(export_url)
        pack = ExportPack.objects.get()
        self.assertRedirects(
            r,
            reverse("exports:pack-detail", args=[pack.code]),
            fetch_redirect_response=False,
        )
        self.assertEqual(list(pack.names.values()), ["SKU-0000/hero_1"])
        self.client.force_login(self.bob)
        self.assertEqual(self.client.post(export_url).status_code, 403)
        r = self.client.get(reverse("catalog:results-csv", args=[self.brand.code]))
        self.assertEqual(r["Content-Type"], "text/csv; charset=utf-8")
        table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        self.assertEqual(table[0][-1], "hero_files")
        self.assertEqual(table[1][0], "SKU-0000")
        self.assertEqual(table[1][-1], "SKU-0000/hero_1.jpg")
        self.assertEqual(table[2][-1], "")
