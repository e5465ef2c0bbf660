"""Issue 9, items 2, 3, 4 and 11: the exact crafted requests of the probe get a clean refusal.

NUL characters (one shared rule, studio/input_rules.py), JSON depth and size limits, a malformed
workspace code, prompt length limits, and the per-install development secret.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import SimpleTestCase, override_settings
from django.urls import reverse

from campaigns.models import Brand, PromptTemplate, ReferenceImage
from generation.models import Asset, Generation
from studio.input_rules import JSONLimitError, check_json_text
from studio.settings import dev_secret_key
from tests.base import StudioTestCase
from tests.factories import image_bytes, make_asset
from tests.generation.batch_helpers import BatchTestCase
from tests.generation.test_batch_views import BuilderTests

NUL_ERROR = "contains a NUL character"
TEMPLATE_POST = {
    "name": "Hero shot",
    "kind": "text",
    "body": "The {product} on a table",
    "reference_slots": "",
    "parameters": "",
    "change_note": "First version",
    "description": "",
}


class NulRuleTests(StudioTestCase):
    """Item 3: NUL characters are refused with a form error everywhere (no 500, nothing stored)."""

    def test_gallery_var_filter_with_nul_is_a_400_with_the_error(self) -> None:
        make_asset(self.campaign, variables={"headline": "Half price"})
        self.client.force_login(self.bob)  # any member
        url = reverse("generation:campaign-gallery", args=[self.campaign.code])
        r = self.client.get(url + "?var=headline%3DHalf%00price")
        self.assertEqual(r.status_code, 400)
        self.assertContains(r, NUL_ERROR, status_code=400)
        r = self.client.get(
            url + "?var=headline%3DHalf%00price",
            headers={"HX-Request": "true", "HX-Target": "gallery-results"},
        )
        self.assertEqual(r.status_code, 400)

    def test_asset_tags_add_and_remove_with_nul(self) -> None:
        asset = make_asset(self.campaign)
        self.client.force_login(self.eddie)
        url = reverse("generation:asset-tags", args=[asset.code])
        for data in ({"add": "hero\x00"}, {"remove": "hero\x00"}):
            r = self.client.post(url, data, follow=True)
            self.assertEqual(r.status_code, 200)
            self.assertContains(r, NUL_ERROR)
        self.assertFalse(Asset.objects.get(pk=asset.pk).tags.exists())

    def test_reference_tags_on_upload(self) -> None:
        self.client.force_login(self.eddie)
        url = reverse("campaigns:reference-upload", args=[self.brand.code])
        upload = SimpleUploadedFile("bag.png", image_bytes(), "image/png")
        # The uploader script: one file per request, 400 with the reason.
        r = self.client.post(
            url,
            {"file": upload, "role": "product", "tags": "bag\x00, leather"},
            headers={"X-Requested-With": "XMLHttpRequest"},
        )
        self.assertEqual(r.status_code, 400)
        self.assertContains(r, NUL_ERROR, status_code=400)
        # The plain form: back to the library with the message.
        upload = SimpleUploadedFile("bag.png", image_bytes(), "image/png")
        r = self.client.post(
            url,
            {"file": upload, "role": "product", "tags": "bag\x00"},
            follow=True,
        )
        self.assertContains(r, NUL_ERROR)
        self.assertFalse(ReferenceImage.objects.exists())

    def test_palette_name_with_nul(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            "/brands/new/",
            {
                "name": "Northwind",
                "palette_name": ["Roast\x00"],
                "palette_hex": ["#4a2c2a"],
            },
        )
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, NUL_ERROR)
        self.assertFalse(Brand.objects.filter(name="Northwind").exists())

    def test_template_parameters_json_with_an_escaped_nul(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            "/templates/new/",
            {
                **TEMPLATE_POST,
                "brand": self.brand.pk,
                "parameters": '{"model": "a\\u0000b"}',
            },
        )
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, NUL_ERROR)
        self.assertFalse(PromptTemplate.objects.filter(name="Hero shot").exists())

    def test_json_template_body_with_an_escaped_nul(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            "/templates/new/",
            {
                **TEMPLATE_POST,
                "brand": self.brand.pk,
                "kind": "json",
                "body": '{"scene": "a\\u0000"}',
            },
        )
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, "NUL character")
        self.assertFalse(PromptTemplate.objects.filter(name="Hero shot").exists())


class NulBatchCsvTests(BatchTestCase):
    def test_batch_csv_upload_with_nul(self) -> None:
        self.client.force_login(self.eddie)
        upload = SimpleUploadedFile(
            "rows.csv", b"headline,scene\nSale\x00,beach\n", "text/csv"
        )
        r = self.client.post(
            reverse("generation:batch-preview"),
            BuilderTests.form_data(self, mode="rows", rows="", rows_file=upload),  # type: ignore[arg-type]
            headers={"HX-Request": "true"},
        )
        self.assertLess(r.status_code, 500)
        self.assertContains(r, NUL_ERROR, status_code=r.status_code)
        self.assertFalse(Generation.objects.exists())


class JsonLimitTests(StudioTestCase):
    """Item 4: a depth and size limit on every JSON input, refused with the line and reason."""

    def test_json_body_nested_1000_deep(self) -> None:
        self.client.force_login(self.eddie)
        body = '{"scene": ' + "[" * 1000 + "]" * 1000 + "}"
        r = self.client.post(
            "/templates/new/",
            {**TEMPLATE_POST, "brand": self.brand.pk, "kind": "json", "body": body},
        )
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, "line 1, column 42: nested more than 32 levels deep")
        self.assertFalse(PromptTemplate.objects.filter(name="Hero shot").exists())

    def test_parameters_of_100000_open_brackets(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            "/templates/new/",
            {**TEMPLATE_POST, "brand": self.brand.pk, "parameters": "[" * 100_000},
        )
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, "The parameters: refused at line 1, column 10001")
        self.assertContains(r, "100,000 characters long; the limit is 10,000")

    def test_deep_object_in_parameters_on_several_lines(self) -> None:
        self.client.force_login(self.eddie)
        text = '{\n"a":\n' + '{"a": ' * 40 + "1" + "}" * 40 + "}"
        r = self.client.post(
            "/templates/new/",
            {**TEMPLATE_POST, "brand": self.brand.pk, "parameters": text},
        )
        self.assertContains(r, "at line 3, column 187: nested more than 32 levels deep")


class JsonTextCheckTests(SimpleTestCase):
    def test_brackets_inside_strings_are_text(self) -> None:
        check_json_text('{"a": "' + "[" * 500 + '"}', max_chars=10_000)
        with self.assertRaises(JSONLimitError) as caught:
            check_json_text("[" * 33, max_chars=10_000)
        self.assertEqual((caught.exception.lineno, caught.exception.colno), (1, 33))


class WorkspaceSwitchTests(StudioTestCase):
    def test_a_malformed_workspace_code_is_a_400(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(reverse("workspace-switch"), {"workspace": "not-a-uuid"})
        self.assertEqual(r.status_code, 400)


class PromptLimitTests(BatchTestCase):
    """Item 2: brand-kit texts have maxima; an over-long rendered prompt is refused in preview."""

    def test_a_45_mb_typography_hint_is_refused_by_the_form(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            f"/brands/{self.brand.code}/edit/",
            {"name": "Acme Coffee", "typography_hints": "x" * 4_500_000},
        )
        self.assertLess(r.status_code, 500)
        self.assertContains(r, "at most 500 characters", status_code=r.status_code)
        self.assertNotEqual(
            len(Brand.objects.get(pk=self.brand.pk).typography_hints), 4_500_000
        )

    @override_settings(STUDIO_PROMPT_MAX_CHARS=300)
    def test_batch_preview_refuses_a_prompt_over_the_limit_with_the_number(
        self,
    ) -> None:
        self.client.force_login(self.eddie)
        data = BuilderTests.form_data(  # type: ignore[arg-type]
            self,
            matrix_headline="H" * 400,
            matrix_scene="here",
            targets=["bfl:flux-2-pro"],
        )
        r = self.client.post(
            reverse("generation:batch-preview"), data, headers={"HX-Request": "true"}
        )
        self.assertLess(r.status_code, 500)
        self.assertContains(r, "takes at most 300", status_code=r.status_code)
        self.assertFalse(Generation.objects.exists())

    def test_bfl_documented_limit_applies_below_the_studio_limit(self) -> None:
        from generation.prompt_limits import max_prompt_chars, prompt_too_long

        with override_settings(STUDIO_PROMPT_MAX_CHARS=50_000):
            self.assertEqual(max_prompt_chars("bfl"), 32_000)
            self.assertEqual(max_prompt_chars("fal"), 50_000)
            self.assertIn("documented", prompt_too_long(40_000, "bfl", "BFL") or "")


class DevSecretTests(SimpleTestCase):
    """Item 11: without SECRET_KEY (DEBUG=1) each install gets its own random secret in var/."""

    def test_a_random_per_install_secret_kept_in_the_data_folder(self) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
            first = dev_secret_key(Path(one))
            self.assertGreaterEqual(len(first), 64)
            self.assertEqual(
                dev_secret_key(Path(one)), first
            )  # stable across processes
            self.assertNotEqual(dev_secret_key(Path(two)), first)  # another install
            mode = stat.S_IMODE(os.stat(Path(one) / "secret_key").st_mode)
            self.assertEqual(mode, 0o600)

    def test_the_published_constant_is_gone(self) -> None:
        from django.conf import settings

        source = (
            Path(__file__).resolve().parents[2] / "studio" / "settings.py"
        ).read_text()
        self.assertNotIn("dev-only-insecure-key", source)
        self.assertNotIn("dev-only-insecure-key", settings.SECRET_KEY)


def _unused(*_: Any) -> None:  # keep imports honest for type checkers
    return None
