"""Products through the API: each with its references and its approved images per shot."""

from __future__ import annotations

from catalog.models import Product, ProductGeneration, ProductImage, Shot
from tests.api.test_api import ApiTestCase
from tests.factories import make_asset
from tests.generation.batch_helpers import make_reference, make_version


class ProductApiTests(ApiTestCase):
    def test_products_list_with_their_references_and_approved_images(self) -> None:
        mug = Product.objects.create(
            workspace=self.workspace, brand=self.brand, sku="MUG-1", name="Red mug",
            attributes={"colour": "red"},
        )  # fmt: skip
        bag = Product.objects.create(
            workspace=self.workspace, brand=self.brand, sku="BAG-1", name="Bag"
        )
        front = make_reference(self.brand)
        ProductImage.objects.create(
            product=mug, role="front", source="mug.png", reference=front
        )
        hero = Shot.objects.create(
            workspace=self.workspace, brand=self.brand, key="hero", name="Hero",
            template=make_version(self.brand).template,
        )  # fmt: skip
        approved = make_asset(self.campaign, review_status="approved")
        pending = make_asset(self.campaign, review_status="pending")
        for asset in (approved, pending):
            ProductGeneration.objects.create(
                workspace=self.workspace, product=mug, shot=hero,
                generation=asset.generation,
            )  # fmt: skip

        listed = self.viewer.get("/products", brand=self.brand.code)
        self.assertEqual(listed.status_code, 200, listed.content)
        items = {p["sku"]: p for p in listed.json()["items"]}
        self.assertEqual(set(items), {"MUG-1", "BAG-1"})
        self.assertEqual(items["MUG-1"]["attributes"], {"colour": "red"})
        self.assertEqual(
            items["MUG-1"]["images"],
            [{"role": "front", "reference": str(front.code), "state": "ready"}],
        )
        self.assertEqual(
            [(a["shot"], a["asset"]["id"]) for a in items["MUG-1"]["approved"]],
            [("hero", str(approved.code))],
        )
        self.assertTrue(items["MUG-1"]["approved"][0]["asset"]["download_url"])
        self.assertEqual(items["BAG-1"]["approved"], [])

        one = self.viewer.get(f"/products/{mug.code}").json()
        self.assertEqual(one["id"], str(mug.code))
        self.assertEqual(len(one["approved"]), 1)
        by_sku = self.viewer.get("/products", sku="BAG-1").json()["items"]
        self.assertEqual([p["id"] for p in by_sku], [str(bag.code)])
        self.assertProblem(
            self.viewer.get("/products/00000000-0000-0000-0000-000000000000"),
            404,
            "not_found",
        )
