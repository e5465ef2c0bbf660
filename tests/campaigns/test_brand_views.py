from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.test.html import Element, parse_html

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


def _elements(node: Any, name: str) -> Iterator[Element]:
    """The node itself (parse_html returns a lone element, not a root) and its descendants."""
    if not isinstance(node, Element):
        return
    if node.name == name:
        yield node
    for child in node.children:
        yield from _elements(child, name)


def _text(node: Any) -> str:
    if isinstance(node, str):
        return node
    return "".join(_text(child) for child in node.children)


def palette_rows(html: str) -> list[dict[str, Any]]:
    """Each palette row of the brand form: its classes, inputs' attributes and error messages."""
    rows = []
    for div in _elements(parse_html(html), "div"):
        classes = (dict(div.attributes).get("class") or "").split()
        if "palette-row" not in classes:
            continue
        inputs = [dict(i.attributes) for i in _elements(div, "input")]
        rows.append(
            {
                "classes": classes,
                "name": next(i for i in inputs if i.get("name") == "palette_name"),
                "hex": next(i for i in inputs if i.get("name") == "palette_hex"),
                "pickers": [i for i in inputs if i.get("type") == "color"],
                "errors": {
                    dict(ul.attributes).get("id"): _text(ul).strip()
                    for ul in _elements(div, "ul")
                },
            }
        )
    return rows


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

    def test_a_bad_hex_marks_its_own_field_with_the_message_beside_it(self) -> None:
        self.client.force_login(self.eddie)
        post = {**PALETTE_POST, "palette_hex": ["#4a2c2", "fff", "#"]}
        r = self.client.post("/brands/new/", post)
        self.assertEqual(r.status_code, 200)
        bad, good, unused = palette_rows(r.content.decode())
        self.assertEqual(bad["hex"]["aria-invalid"], "true")
        self.assertEqual(bad["hex"]["aria-describedby"], "palette-1-error")
        self.assertEqual(
            bad["errors"],
            {"palette-1-error": "“#4a2c2” is not a hex colour like #1A1A2E."},
        )
        self.assertIn("has-error", bad["classes"])
        self.assertNotIn("aria-invalid", bad["name"])
        for row in (good, unused):
            self.assertNotIn("aria-invalid", row["hex"])
            self.assertNotIn("aria-invalid", row["name"])
            self.assertEqual(row["errors"], {})
        # The summary at the top still lists it, with the colour's number.
        self.assertContains(r, "Colour 1: “#4a2c2” is not a hex colour")

    def test_a_colour_without_a_name_marks_the_name_field(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            "/brands/new/", {**PALETTE_POST, "palette_name": ["Roast", "", ""]}
        )
        rows = palette_rows(r.content.decode())
        self.assertEqual(rows[1]["name"]["aria-invalid"], "true")
        self.assertEqual(rows[1]["name"]["aria-describedby"], "palette-2-error")
        self.assertNotIn("aria-invalid", rows[1]["hex"])
        self.assertEqual(
            rows[1]["errors"], {"palette-2-error": "Name this colour, e.g. “Midnight”."}
        )

    def test_a_repeated_colour_marks_the_second_hex(self) -> None:
        self.client.force_login(self.eddie)
        post = {
            **PALETTE_POST,
            "palette_name": ["Roast", "Roast again"],
            "palette_hex": ["#4a2c2a", "4A2C2A"],
        }
        rows = palette_rows(self.client.post("/brands/new/", post).content.decode())
        self.assertNotIn("aria-invalid", rows[0]["hex"])
        self.assertEqual(rows[1]["hex"]["aria-invalid"], "true")
        self.assertEqual(
            rows[1]["errors"], {"palette-2-error": "#4A2C2A is already in the palette."}
        )

    def test_each_hex_field_has_a_colour_picker_beside_it(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get(f"/brands/{self.brand.code}/edit/")
        self.assertContains(r, "js/palette-picker.js")
        rows = palette_rows(r.content.decode())
        self.assertEqual(len(rows), len(self.brand.palette) + 1)
        for row, colour in zip(rows, self.brand.palette, strict=False):
            (picker,) = row["pickers"]
            # The picker holds the saved colour (lower case, as the colour input keeps it), is
            # switched on by the script, and is not posted: the hex field is what is saved.
            self.assertEqual(picker["value"], colour["hex"].lower())
            self.assertIn("disabled", picker)
            self.assertNotIn("name", picker)
            self.assertNotIn("unset", picker["class"].split())
        (empty_picker,) = rows[-1]["pickers"]
        self.assertIn("unset", empty_picker["class"].split())

    def test_a_picker_beside_a_bad_or_short_hex(self) -> None:
        self.client.force_login(self.eddie)
        post = {**PALETTE_POST, "palette_hex": ["#4a2c2", "fff", "#"]}
        bad, short, _ = palette_rows(
            self.client.post("/brands/new/", post).content.decode()
        )
        self.assertIn("unset", bad["pickers"][0]["class"].split())
        self.assertEqual(short["pickers"][0]["value"], "#ffffff")

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
        (row,) = palette_rows(r.content.decode())
        self.assertEqual(len(row["pickers"]), 1)

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
