"""Brand checks in the studio: after ingest (signal → task on commit), stored per asset, under the
brand's thresholds, on the gallery cards and filters and on the asset page; and the command."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from io import StringIO
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.urls import reverse

from campaigns.references import reference_create
from checks import tasks
from checks.models import AssetCheck, BrandCheckPolicy
from generation import signals
from generation.models import Asset
from tests.base import StudioTestCase
from tests.checks import drawing as d
from tests.factories import make_asset
from tests.generation.test_engine_state import EngineTestCase, ScriptedBackend

# On CI (CI=1, .ci/run) a missing tesseract fails the OCR tests instead of skipping them.
HAS_TESSERACT = shutil.which("tesseract") is not None or bool(os.environ.get("CI"))
BRAND_COLOURS = [c["hex"] for c in d.BRAND]


class IngestHookTests(EngineTestCase):
    def test_ingest_sends_asset_stored_and_checks_queue_their_task_after_commit(
        self,
    ) -> None:
        ScriptedBackend.fetches = [
            (d.png(d.painted_scene(BRAND_COLOURS, (512, 512))), "image/png")
        ]
        seen: list[int] = []

        def record(sender: object, *, asset_id: int, **kwargs: object) -> None:
            seen.append(asset_id)

        signals.asset_stored.connect(record, dispatch_uid="test-record")
        self.addCleanup(signals.asset_stored.disconnect, dispatch_uid="test-record")
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            row = self.run_to_end(self.create())
        asset = Asset.objects.get(generation=row)
        self.assertEqual(seen, [asset.pk])
        ours = [c for c in callbacks if "on_asset_stored" in c.__qualname__]
        self.assertEqual(len(ours), 1)
        # The image was in the gallery before any check ran.
        self.assertFalse(AssetCheck.objects.filter(asset=asset).exists())

    @override_settings(CHECKS_ENABLED=False)
    def test_checks_can_be_turned_off(self) -> None:
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            self.run_to_end(self.create())
        self.assertFalse([c for c in callbacks if "on_asset_stored" in c.__qualname__])


class AssetCheckTests(StudioTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.brand.palette = d.BRAND
        cls.brand.default_formats = ["instagram-square", "display-mrec"]
        cls.brand.save()

    def setUp(self) -> None:
        self.logo = reference_create(
            brand=self.brand,
            uploaded_file=ContentFile(d.png(d.logo()), name="logo.png"),
            user=self.alice,
            role="logo",
            tags=[],
        )

    def make(self, image: bytes, prompt: str = "A poster", logo: bool = True) -> Asset:
        refs = [{"code": str(self.logo.code), "role": "logo"}] if logo else []
        return make_asset(self.campaign, image=image, prompt=prompt, references=refs)

    def on_brand(self) -> Asset:
        scene = d.paste(
            d.painted_scene(BRAND_COLOURS, (1080, 1080)),
            d.logo(),
            at=(600, 500),
            scale=0.9,
            angle=12,
        )
        return self.make(d.png(scene))

    def off_brand(self) -> Asset:
        return self.make(
            d.jpeg(d.painted_scene(["#2E7D32", "#6A1B9A", "#00ACC1"], (800, 800)))
        )

    def test_the_task_stores_scores_and_flags_per_asset(self) -> None:
        good, bad = self.on_brand(), self.off_brand()
        tasks.asset_check(good.pk)
        tasks.asset_check(bad.pk)
        good_check, bad_check = good.brand_check, AssetCheck.objects.get(asset=bad)
        self.assertEqual(good_check.state, "done")
        self.assertGreater(good_check.palette_score, 0.9)
        self.assertEqual(good_check.logo_score, 1.0)
        self.assertIsNone(good_check.text_score)
        self.assertFalse(good_check.needs_review)
        self.assertEqual(good_check.channel_score, 1.0)
        self.assertLess(bad_check.palette_score, 0.3)
        self.assertEqual(bad_check.logo_score, 0.0)
        self.assertTrue(
            bad_check.off_palette and bad_check.logo_missing and bad_check.needs_review
        )
        self.assertTrue(bad_check.too_small)  # 800 px for a 1080 px square
        self.assertEqual(
            bad_check.scores()["flags"], ["off-palette", "logo-missing", "too-small"]
        )

    def test_running_twice_keeps_one_row_and_does_not_measure_again(self) -> None:
        asset = self.off_brand()
        tasks.asset_check(asset.pk)
        first = AssetCheck.objects.get(asset=asset)
        tasks.asset_check(asset.pk)
        self.assertEqual(AssetCheck.objects.filter(asset=asset).count(), 1)
        self.assertEqual(
            AssetCheck.objects.get(asset=asset).checked_at, first.checked_at
        )

    def test_the_brands_thresholds_decide_what_is_flagged(self) -> None:
        BrandCheckPolicy.objects.create(
            brand=self.brand,
            palette_min=0.0,
            text_min=0.9,
            logo_min=0.0,
            product_min=0.5,
            delta_e=10,
        )
        asset = self.off_brand()
        tasks.asset_check(asset.pk)
        check = AssetCheck.objects.get(asset=asset)
        self.assertFalse(check.off_palette or check.logo_missing or check.needs_review)

    def test_an_unreadable_file_is_recorded_as_failed(self) -> None:
        asset = make_asset(self.campaign)  # names a file that does not exist
        tasks.asset_check(asset.pk)
        check = AssetCheck.objects.get(asset=asset)
        self.assertEqual(check.state, "failed")
        self.assertTrue(check.error)

    def test_text_asked_in_the_prompt_is_read_back(self) -> None:
        if not HAS_TESSERACT:
            self.skipTest(
                "tesseract is not installed (apt-get install -y tesseract-ocr)"
            )
        prompt = 'A poster that says "Warm Up, Harbour" and "50 % OFF"'
        right = self.make(
            d.png(d.text_poster(["Warm Up, Harbour", "50 % OFF"])), prompt, logo=False
        )
        wrong = self.make(
            d.png(d.text_poster(["Wram Up, Harbor", "60 % OFF"])), prompt, logo=False
        )
        tasks.asset_check(right.pk)
        tasks.asset_check(wrong.pk)
        self.assertEqual(AssetCheck.objects.get(asset=right).text_score, 1.0)
        self.assertFalse(AssetCheck.objects.get(asset=right).text_mismatch)
        self.assertTrue(AssetCheck.objects.get(asset=wrong).text_mismatch)

        self.client.force_login(self.bob)
        html = self.client.get(
            reverse("generation:asset-detail", args=[wrong.code])
        ).content.decode()
        self.assertIn('id="check-text"', html)
        self.assertIn("Warm Up, Harbour", html)
        self.assertIn("misspelled", html)

    def test_gallery_badges_and_flag_filters(self) -> None:
        good, bad = self.on_brand(), self.off_brand()
        unchecked = self.make(d.png(d.painted_scene(BRAND_COLOURS, (256, 256))))
        tasks.asset_check(good.pk)
        tasks.asset_check(bad.pk)
        self.client.force_login(self.bob)
        url = reverse("generation:campaign-gallery", args=[self.campaign.code])
        html = self.client.get(url).content.decode()
        self.assertIn(f'id="asset-{unchecked.code}"', html)
        self.assertIn('<span class="check-badge flag">Off-palette</span>', html)
        self.assertIn('<span class="check-badge flag">Logo missing</span>', html)
        self.assertIn("On brand", html)
        self.assertIn('name="flag"', html)
        for flag in ("off-palette", "logo-missing", "needs-review"):
            html = self.client.get(url + f"?flag={flag}").content.decode()
            self.assertIn(f'id="asset-{bad.code}"', html, flag)
            self.assertNotIn(f'id="asset-{good.code}"', html, flag)
            self.assertNotIn(f'id="asset-{unchecked.code}"', html, flag)
        html = self.client.get(url + "?flag=text-mismatch").content.decode()
        self.assertNotIn(f'id="asset-{bad.code}"', html)
        # An unknown flag is ignored, never an error.
        self.assertEqual(self.client.get(url + "?flag=nope").status_code, 200)

    def test_the_asset_page_shows_swatches_scores_and_the_matched_logo(self) -> None:
        good = self.on_brand()
        self.client.force_login(self.bob)
        page = reverse("generation:asset-detail", args=[good.code])
        self.assertContains(self.client.get(page), "Not checked yet")
        tasks.asset_check(good.pk)
        html = self.client.get(page).content.decode()
        self.assertIn('id="brand-check"', html)
        self.assertIn('id="check-expected"', html)
        for hex_ in BRAND_COLOURS:
            self.assertIn(f'fill="{hex_}"', html)
        self.assertIn('<polygon class="logo"', html)
        self.assertIn("found (", html)
        self.assertIn('id="check-channels"', html)

    def test_another_workspace_never_sees_the_check(self) -> None:
        asset = self.off_brand()
        tasks.asset_check(asset.pk)
        self.client.force_login(self.carol)
        page = reverse("generation:asset-detail", args=[asset.code])
        self.assertEqual(self.client.get(page).status_code, 404)


class BrandCheckCommandTests(StudioTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.brand.palette = d.BRAND
        cls.brand.save()

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)

    def write(self, name: str, data: bytes) -> str:
        path = self.tmp / name
        path.write_bytes(data)
        return str(path)

    def run_json(self, *args: str) -> dict:
        out = StringIO()
        call_command(
            "brand_check",
            "--workspace",
            self.workspace.slug,
            "--brand",
            str(self.brand.code),
            *args,
            "--json",
            stdout=out,
        )
        return json.loads(out.getvalue())

    def test_it_prints_the_scores_of_any_image_as_one_json_object(self) -> None:
        scene = d.paste(
            d.painted_scene(BRAND_COLOURS),
            d.logo(),
            at=(500, 300),
            scale=0.8,
            angle=-20,
        )
        image = self.write("photo.jpg", d.jpeg(scene))
        logo = self.write("logo.png", d.png(d.logo()))
        product = self.write("bag.png", d.png(d.product()))
        result = self.run_json(
            image, "--reference", logo, "--reference", f"product={product}"
        )
        self.assertGreater(result["palette"]["score"], 0.8)
        self.assertEqual(result["logo"]["score"], 1.0)
        self.assertEqual(result["product"]["score"], 0.0)
        self.assertIsNone(result["text"])
        self.assertTrue(result["flags"]["product_missing"])
        self.assertIn("dominant", result["palette"])

        off = self.write(
            "off.png", d.png(d.painted_scene(["#2E7D32", "#6A1B9A", "#00ACC1"]))
        )
        self.assertLess(self.run_json(off)["palette"]["score"], 0.3)

    def test_text_option(self) -> None:
        if not HAS_TESSERACT:
            self.skipTest(
                "tesseract is not installed (apt-get install -y tesseract-ocr)"
            )
        image = self.write("poster.png", d.png(d.text_poster(["Warm Up, Harbour"])))
        self.assertEqual(
            self.run_json(image, "--text", "Warm Up, Harbour")["text"]["score"], 1.0
        )
        self.assertLess(
            self.run_json(image, "--text", "Warm Up, Hamburg")["text"]["score"], 0.9
        )

    def test_errors_are_command_errors(self) -> None:
        image = self.write("x.png", d.png(d.painted_scene(BRAND_COLOURS, (64, 64))))
        with self.assertRaisesMessage(CommandError, "No workspace"):
            call_command(
                "brand_check",
                "--workspace",
                "nope",
                "--brand",
                str(self.brand.code),
                image,
            )
        with self.assertRaisesMessage(CommandError, "No brand"):
            call_command(
                "brand_check", "--workspace", self.workspace.slug, "--brand", "x", image
            )
        with self.assertRaisesMessage(CommandError, "Cannot read"):
            self.run_json(str(self.tmp / "missing.png"))
        # The other workspace's brand is not found from this one.
        with self.assertRaisesMessage(CommandError, "No brand"):
            call_command(
                "brand_check",
                "--workspace",
                self.other_workspace.slug,
                "--brand",
                str(self.brand.code),
                image,
            )
