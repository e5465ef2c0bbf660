""" "Change one thing" (issue 18): besides the values, a reference image, the seed, the size or the
model can change; each is checked on the server, recorded in `changes` and named in the message."""

from __future__ import annotations

from typing import Any

from django.contrib.messages import get_messages
from django.test import override_settings
from django.urls import reverse

from generation.batches.services import batch_create
from generation.batches.spec import FIXED, Seeds, Size
from generation.models import Generation
from tests.generation.batch_helpers import (
    BatchTestCase,
    make_reference,
    make_version,
    matrix_spec,
)


class ChangeOneThingTests(BatchTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.version = make_version(
            self.brand,
            body='Poster: "{headline}" with the bag from {ref:product} {scene}',
            reference_slots=[{"name": "product", "role": "product", "required": True}],
            campaign=self.campaign,
        )
        self.bag = make_reference(self.brand, role="product")
        self.cup = make_reference(self.brand, role="product", color=(20, 90, 200))
        self.style = make_reference(self.brand, role="style", color=(10, 160, 40))
        batch = batch_create(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(
                headlines=("A",),
                scenes=("here",),
                seeds=Seeds(FIXED, values=(4242,)),
                targets=("preview:flux-2-pro",),
                sizes=(Size(1024, 1024),),
                references={"product": str(self.bag.code)},
            ),
            user=self.eddie,
        )
        self.source = self.run_generation(Generation.objects.get(batch=batch))
        self.url = reverse("generation:asset-variant", args=[self.source.asset.code])

    def data(self, **overrides: Any) -> dict[str, Any]:
        data = {
            "value_headline": "A",
            "value_scene": "here",
            "ref_product": str(self.bag.code),
            "seed": "4242",
            "model": "preview:flux-2-pro",
            "width": "1024",
            "height": "1024",
        }
        data.update(overrides)
        return data

    def post(self, **overrides: Any) -> Any:
        self.client.force_login(self.eddie)
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(self.url, self.data(**overrides))

    def message(self, response: Any) -> str:
        return " ".join(str(m) for m in get_messages(response.wsgi_request))

    def test_the_form_offers_the_references_by_thumbnail_seed_size_and_models(
        self,
    ) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get(self.url)
        html = r.content.decode()
        for ref in (self.bag, self.cup):
            self.assertIn(
                reverse("campaigns:reference-thumbnail", args=[ref.code]), html
            )
        self.assertNotIn(str(self.style.code), html)  # not the slot's role
        self.assertRegex(
            html,
            rf'type="radio" name="ref_product" value="{self.bag.code}"[^>]*checked',
        )
        self.assertRegex(html, r'name="seed" value="4242"')
        self.assertRegex(html, r'name="width" value="1024"')
        self.assertIn('<option value="preview:flux-2-pro" selected>', html)
        self.assertIn('<option value="bfl:flux-2-flex">', html)  # BFL is configured

    def test_the_seed_alone(self) -> None:
        r = self.post(seed="7")
        self.assertRedirects(r, self.url, fetch_redirect_response=False)
        variant = Generation.objects.get(parent=self.source)
        self.assertEqual(variant.changes, {"seed": {"from": 4242, "to": 7}})
        self.assertEqual((variant.seed, variant.prompt), (7, self.source.prompt))
        self.assertEqual(variant.references, self.source.references)
        self.assertIn("only the seed changed", self.message(r))

    def test_the_size_within_the_models_rules(self) -> None:
        r = self.post(width="1536", height="1024")
        variant = Generation.objects.get(parent=self.source)
        self.assertEqual(
            variant.changes, {"size": {"from": "1024×1024", "to": "1536×1024"}}
        )
        self.assertEqual((variant.width, variant.height), (1536, 1024))
        self.assertIn("only the size changed", self.message(r))

    def test_a_size_the_model_cannot_make_is_refused_at_the_field(self) -> None:
        # BFL takes multiples of 16 (docs/providers.md §1).
        r = self.post(model="bfl:flux-2-pro", width="1000", height="1000")
        self.assertEqual(r.status_code, 200)
        self.assertRegex(
            r.content.decode(),
            r'(?s)<div class="field has-error"><label for="id_width">.*?multiple of 16',
        )
        self.assertFalse(Generation.objects.filter(parent=self.source).exists())
        r = self.post(width="0")
        self.assertContains(r, "greater than or equal to 1")

    def test_the_model_among_the_configured_ones(self) -> None:
        r = self.post(model="bfl:flux-2-flex")
        variant = Generation.objects.get(parent=self.source)
        self.assertEqual((variant.backend, variant.model), ("bfl", "flux-2-flex"))
        self.assertEqual(
            variant.changes,
            {
                "model": {
                    "from": "Preview (offline draft) · FLUX.2 [pro]",
                    "to": "Black Forest Labs API · FLUX.2 [flex]",
                }
            },
        )
        self.assertIn("only the model changed", self.message(r))

    @override_settings(BFL_API_KEY="")
    def test_a_model_of_an_unconfigured_backend_is_refused(self) -> None:
        r = self.post(model="bfl:flux-2-flex")
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, "Select a valid choice")
        self.assertFalse(Generation.objects.filter(parent=self.source).exists())

    def test_a_reference_from_the_brand_library(self) -> None:
        r = self.post(ref_product=str(self.cup.code))
        variant = Generation.objects.get(parent=self.source)
        self.assertEqual(
            variant.changes,
            {
                "references": {
                    "from": f"product: {self.bag}",
                    "to": f"product: {self.cup}",
                }
            },
        )
        self.assertEqual([r["code"] for r in variant.references], [str(self.cup.code)])
        self.assertEqual(variant.prompt, self.source.prompt)
        self.assertIn("only the reference image changed", self.message(r))

    def test_a_reference_of_another_role_is_refused(self) -> None:
        r = self.post(ref_product=str(self.style.code))
        self.assertContains(r, "Select a valid choice")
        self.assertFalse(Generation.objects.filter(parent=self.source).exists())

    def test_a_value_and_the_seed_are_both_recorded(self) -> None:
        r = self.post(value_headline="B", seed="8")
        variant = Generation.objects.get(parent=self.source)
        self.assertEqual(
            variant.changes,
            {"headline": {"from": "A", "to": "B"}, "seed": {"from": 4242, "to": 8}},
        )
        self.assertIn("only {headline} and the seed changed", self.message(r))

    def test_nothing_changed_is_refused_with_what_can_change(self) -> None:
        r = self.post()
        self.assertContains(r, "Change at least one thing (a value, a reference")
        self.assertFalse(Generation.objects.filter(parent=self.source).exists())
