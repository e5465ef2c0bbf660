"""The builder guides (issue 18): an over-limit batch says what is wrong with its numbers written
one way, "the marked fields" only when one is marked, references picked by thumbnail, and a batch
of free preview drafts priced on each real backend."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.test import override_settings
from django.urls import reverse

from generation.backends import registry
from generation.backends.base import BackendConfig, GenerationRequest
from generation.models import Batch
from tests.generation.batch_helpers import BatchTestCase, make_reference, make_version

HTMX = {"HX-Request": "true"}
SIX_SIZES = "1024x1024, 768x768, 512x512, 1024x768, 768x1024, 1536x1024"


class BuilderGuidanceTests(BatchTestCase):
    def form_data(self, **overrides: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "template": str(self.version.template.code),
            "version": "1",
            "campaign": str(self.campaign.code),
            "mode": "matrix",
            "matrix_headline": "Autumn blend\nHalf price\nNew roast",
            "matrix_scene": "on a marble table\nin a cosy cafe",
            "seed_mode": "random",
            "seed_count": "2",
            "rng_seed": "1234",
            "targets": ["preview:flux-2-pro"],
            "sizes": [],
            "custom_sizes": "1024x1024",
            "merge_brand": "on",
            "token": "7c5b6f0e-2a43-4a57-9a5e-0d6f1f1c2b3a",
        }
        data.update(overrides)
        return data

    def panel(self, html: str) -> str:
        match = re.search(
            r'<div class="error dispatch-problems" id="dispatch-problems">(.*?)</div>',
            html,
            re.S,
        )
        self.assertIsNotNone(match, "the preview panel says why it cannot dispatch")
        assert match is not None
        return match.group(1)

    @override_settings(STUDIO_BATCH_MAX_SIZE=500)
    def test_an_over_limit_batch_says_what_is_wrong_with_the_numbers_grouped(
        self,
    ) -> None:
        self.client.force_login(self.eddie)
        # 6 combinations × 50 seeds × 2 models × 6 sizes = 3,600.
        r = self.client.post(
            reverse("generation:batch-preview"),
            self.form_data(
                seed_count="50",
                targets=["preview:flux-2-pro", "bfl:flux-2-pro"],
                custom_sizes=SIX_SIZES,
            ),
            headers=HTMX,
        )
        html = r.content.decode()
        self.assertIn('<strong id="variant-count">3,600</strong>', html)
        self.assertNotIn("3600", html)
        panel = self.panel(html)
        self.assertIn("This batch would make 3,600 images", panel)
        self.assertIn("at most 500", panel)
        # Nothing is marked, so the panel does not send anyone looking for a marked field.
        self.assertNotIn("marked", html)
        self.assertNotIn('class="field has-error"', html)
        self.assertRegex(html, r'<button[^>]*id="dispatch-button"[^>]*disabled')
        self.assertFalse(Batch.objects.exists())

    @override_settings(STUDIO_BATCH_MAX_SIZE=500)
    def test_a_refused_dispatch_brings_the_banner_into_view(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            reverse("generation:batch-create"),
            self.form_data(seed_count="50", custom_sizes=SIX_SIZES),
            headers=HTMX | {"HX-Trigger": "dispatch-button"},
        )
        self.assertContains(r, 'id="builder-errors"')
        self.assertEqual(r.headers["HX-Reswap"], "outerHTML show:#builder-errors:top")
        self.assertFalse(Batch.objects.exists())
        # The live preview (a change in the form) does not move the page.
        r = self.client.post(
            reverse("generation:batch-preview"),
            self.form_data(seed_count="50", custom_sizes=SIX_SIZES),
            headers=HTMX | {"HX-Trigger": "batch-form"},
        )
        self.assertNotIn("HX-Reswap", r.headers)

    def test_marked_fields_are_named_and_linked_from_the_panel(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            reverse("generation:batch-preview"),
            self.form_data(
                seed_mode="fixed", seed_list="1, 99999999999", custom_sizes="1000x"
            ),
            headers=HTMX,
        )
        panel = self.panel(r.content.decode())
        self.assertIn("Fix the marked fields to dispatch", panel)
        self.assertIn('<a href="#id_seed_list">Seeds</a>', panel)
        self.assertIn('<a href="#id_custom_sizes">Custom sizes</a>', panel)
        self.assertContains(r, "out of range", count=1)

    def test_references_are_picked_by_thumbnail(self) -> None:
        version = make_version(
            self.brand,
            body="The bag from image 1 {ref:product} {headline}",
            reference_slots=[{"name": "product", "role": "product", "required": True}],
            campaign=self.campaign,
        )
        bag = make_reference(self.brand, role="product")
        cup = make_reference(self.brand, role="product", color=(20, 90, 200))
        make_reference(self.brand, role="style", color=(10, 160, 40))  # another role
        self.client.force_login(self.eddie)
        r = self.client.get(
            reverse("generation:batch-create") + f"?template={version.template.code}"
        )
        html = r.content.decode()
        options = re.findall(
            r'<label class="reference-option" for="(id_ref_product_\d)">'
            r'<img src="([^"]+)"[^>]*><span class="reference-name">'
            r'<input type="radio" name="ref_product" value="([0-9a-f-]+)"[^>]*id="\1"[^>]*>'
            r" ([^<]+)</span></label>",
            html,
        )
        self.assertEqual(
            {(value, src) for _id, src, value, _name in options},
            {
                (
                    str(ref.code),
                    reverse("campaigns:reference-thumbnail", args=[ref.code]),
                )
                for ref in (bag, cup)
            },
        )
        self.assertEqual({name for *_rest, name in options}, {str(bag), str(cup)})
        # Picking one by its radio previews with that image in the request.
        data = self.form_data(
            template=str(version.template.code),
            matrix_headline="Hello",
            ref_product=str(cup.code),
        )
        data.pop("matrix_scene")
        # None picked: the slot is marked, and the panel links to it.
        r = self.client.post(
            reverse("generation:batch-preview"),
            {k: v for k, v in data.items() if k != "ref_product"},
            headers=HTMX,
        )
        panel = self.panel(r.content.decode())
        self.assertIn(
            'Fix the marked field to dispatch: <a href="#slot-product">reference “product”</a>.',
            panel,
        )
        self.assertContains(
            r, '<fieldset class="field reference-slot has-error" id="slot-product">'
        )
        r = self.client.post(reverse("generation:batch-preview"), data, headers=HTMX)
        self.assertContains(r, '<strong id="variant-count">2</strong>')
        self.assertRegex(
            r.content.decode(),
            rf'value="{cup.code}"[^>]*checked|checked[^>]*value="{cup.code}"',
        )

    def expected(self, backend: str, count: int) -> Decimal:
        """What `count` 1024×1024 FLUX.2 [pro] images cost on `backend` by its price table."""
        priced = registry.get_backend(backend, BackendConfig())
        one = priced.estimate_cost(
            GenerationRequest(model="flux-2-pro", prompt="x", width=1024, height=1024)
        )
        return one * count

    @override_settings(BFL_API_KEY="")
    def test_free_drafts_with_no_provider_say_so_and_are_priced_on_real_backends(
        self,
    ) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            reverse("generation:batch-preview"), self.form_data(), headers=HTMX
        )
        html = r.content.decode()
        self.assertIn('<th id="estimate-total">$0.00</th>', html)
        self.assertIn("Preview drafts are free", html)
        self.assertIn("No provider is configured for this workspace yet", html)
        # 6 combinations × 2 seeds, 1024×1024 on FLUX.2 [pro]: $0.03 each on BFL (§1).
        bfl = re.search(r'<tr id="real-cost-bfl"><td>[^<]+</td><td>([^<]+)', html)
        assert bfl is not None
        self.assertEqual(bfl.group(1), "$0.36")
        self.assertEqual(self.expected("bfl", 12), Decimal("0.36"))
        fal = re.search(r'<tr id="real-cost-fal"><td>[^<]+</td><td>([^<]+)', html)
        assert fal is not None
        self.assertEqual(Decimal(fal.group(1).lstrip("$")), self.expected("fal", 12))
        # Cloudflare does not serve FLUX.2 [pro]; self-hosted backends have no price per image.
        self.assertRegex(
            html, r'<tr id="real-cost-cloudflare">.*?cannot make FLUX.2 \[pro\]'
        )
        self.assertRegex(html, r'<tr id="real-cost-comfyui">.*?cannot make')
        self.assertNotIn('id="real-cost-preview"', html)

    def test_a_batch_on_a_real_backend_shows_no_draft_prices(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            reverse("generation:batch-preview"),
            self.form_data(targets=["bfl:flux-2-pro"]),
            headers=HTMX,
        )
        self.assertContains(r, '<th id="estimate-total">$0.36</th>')
        self.assertNotContains(r, "Preview drafts are free")
        # With BFL configured, a drafts-only batch does not claim that nothing is configured.
        r = self.client.post(
            reverse("generation:batch-preview"), self.form_data(), headers=HTMX
        )
        self.assertContains(r, "Preview drafts are free")
        self.assertNotContains(r, "No provider is configured")
