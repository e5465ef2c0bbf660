from __future__ import annotations

from campaigns.models import Brand
from tests.base import StudioTestCase
from tests.factories import make_brand

PALETTE_POST = {
    "name": "Northwind",
    "description": "Coffee",
    "palette_name": ["Roast", "Foam", ""],
    "palette_hex": ["#4a2c2a", "fff", "#"],
    "fonts": "Inter — headlines\nLora: body copy",
    "typography_hints": "Bold sans headlines",
    "tone_of_voice": "Warm",
    "words_to_use": "fresh, roasted\nsmall-batch",
    "words_to_avoid": "cheap, Cheap",
    "default_formats": ["instagram-square", "web-hero"],
}


class BrandCreateTests(StudioTestCase):
    def test_it_creates_a_brand_with_a_normalised_palette(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post("/brands/new/", PALETTE_POST)
        brand = Brand.objects.get(name="Northwind")
        self.assertRedirects(r, f"/brands/{brand.code}/", fetch_redirect_response=False)
        self.assertEqual(brand.workspace, self.workspace)
        self.assertEqual(
            brand.palette,
            [{"name": "Roast", "hex": "#4A2C2A"}, {"name": "Foam", "hex": "#FFFFFF"}],
        )
        self.assertEqual(
            brand.fonts,
            [
                {"family": "Inter", "usage": "headlines"},
                {"family": "Lora", "usage": "body copy"},
            ],
        )
        self.assertEqual(brand.words_to_use, ["fresh", "roasted", "small-batch"])
        self.assertEqual(brand.words_to_avoid, ["cheap"])
        self.assertEqual(brand.default_formats, ["instagram-square", "web-hero"])
        self.assertEqual(brand.created_by, self.eddie)

    def test_it_rejects_invalid_hex_colours_and_keeps_the_input(self) -> None:
        self.client.force_login(self.eddie)
        post = {**PALETTE_POST, "palette_hex": ["#4a2c2", "#GGGGGG", "#"]}
        r = self.client.post("/brands/new/", post)
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, "“#4a2c2” is not a hex colour")
        self.assertContains(r, "“#GGGGGG” is not a hex colour")
        self.assertContains(r, 'value="Roast"')
        self.assertFalse(Brand.objects.filter(name="Northwind").exists())

    def test_it_requires_a_name_for_each_colour(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            "/brands/new/", {**PALETTE_POST, "palette_name": ["", "Foam", ""]}
        )
        self.assertContains(r, "needs a name")

    def test_it_refuses_a_duplicate_brand_name_in_the_workspace(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post("/brands/new/", {**PALETTE_POST, "name": "Acme Coffee"})
        self.assertContains(r, "already has a brand with that name")

    def test_a_viewer_cannot_create_brands(self) -> None:
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get("/brands/new/").status_code, 403)
        self.assertEqual(
            self.client.post("/brands/new/", PALETTE_POST).status_code, 403
        )
        self.assertFalse(Brand.objects.filter(name="Northwind").exists())

    def test_it_requires_login(self) -> None:
        r = self.client.get("/brands/new/")
        self.assertRedirects(
            r, "/login/?next=/brands/new/", fetch_redirect_response=False
        )


class BrandPagesTests(StudioTestCase):
    def test_the_list_shows_only_this_workspaces_brands(self) -> None:
        make_brand(self.other_workspace, name="Globex Secret Brand")
        self.client.force_login(self.bob)
        r = self.client.get("/brands/")
        self.assertContains(r, "Acme Coffee")
        self.assertNotContains(r, "Globex Secret Brand")

    def test_an_outsider_gets_404_for_every_brand_url(self) -> None:
        self.client.force_login(self.carol)
        code = self.brand.code
        for url in [
            f"/brands/{code}/",
            f"/brands/{code}/edit/",
            f"/brands/{code}/campaigns/new/",
        ]:
            self.assertEqual(self.client.get(url).status_code, 404, url)
        self.assertEqual(
            self.client.post(
                f"/brands/{code}/delete/", {"confirm_name": "Acme Coffee"}
            ).status_code,
            404,
        )
        self.assertTrue(Brand.objects.filter(pk=self.brand.pk).exists())

    def test_an_editor_edits_the_kit(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get(f"/brands/{self.brand.code}/edit/")
        self.assertContains(r, 'value="#1A1A2E"')
        post = {
            **PALETTE_POST,
            "name": "Acme Coffee",
            "palette_name": ["Night"],
            "palette_hex": ["#000000"],
        }
        r = self.client.post(f"/brands/{self.brand.code}/edit/", post)
        self.assertEqual(r.status_code, 302)
        self.brand.refresh_from_db()
        self.assertEqual(self.brand.palette, [{"name": "Night", "hex": "#000000"}])

    def test_a_viewer_cannot_edit(self) -> None:
        self.client.force_login(self.bob)
        self.assertEqual(
            self.client.post(
                f"/brands/{self.brand.code}/edit/", PALETTE_POST
            ).status_code,
            403,
        )

    def test_only_admins_delete_and_must_confirm_the_name(self) -> None:
        self.client.force_login(self.eddie)
        self.assertEqual(
            self.client.post(
                f"/brands/{self.brand.code}/delete/", {"confirm_name": "Acme Coffee"}
            ).status_code,
            403,
        )
        self.client.force_login(self.alice)
        self.client.post(
            f"/brands/{self.brand.code}/delete/", {"confirm_name": "wrong"}
        )
        self.assertTrue(Brand.objects.filter(pk=self.brand.pk).exists())
        self.client.post(
            f"/brands/{self.brand.code}/delete/", {"confirm_name": "Acme Coffee"}
        )
        self.assertFalse(Brand.objects.filter(pk=self.brand.pk).exists())

    def test_the_palette_row_partial_is_a_fragment(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get("/brands/palette-row/", headers={"HX-Request": "true"})
        self.assertContains(r, 'name="palette_hex"')
        self.assertNotContains(r, "<html")

    def test_the_palette_stylesheet_has_this_workspaces_colours_only(self) -> None:
        make_brand(
            self.other_workspace,
            name="G",
            palette=[{"name": "Secret", "hex": "#123456"}],
        )
        self.client.force_login(self.bob)
        r = self.client.get("/palette.css")
        self.assertEqual(r["Content-Type"], "text/css")
        self.assertContains(r, ".sw-1A1A2E{background:#1A1A2E}")
        self.assertNotContains(r, "123456")
