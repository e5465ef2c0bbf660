"""The batch pages: builder with its htmx preview, dispatch, the live batch page, cancel, retry,
re-run, "change one thing" and spend, with the role and tenancy rules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from unittest import mock

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from campaigns.models import Campaign
from generation.backends.base import BackendError, ErrorClass
from generation.batches import preview as batch_previews
from generation.batches.plan import plan_batch
from generation.batches.services import batch_create
from generation.batches.spec import FIXED, Seeds
from generation.engine.failure import generation_fail
from generation.models import Batch, Generation, GenerationState
from tests.generation.batch_helpers import (
    BatchTestCase,
    make_version,
    matrix_spec,
)

S = GenerationState
HTMX = {"HX-Request": "true"}


class BuilderTests(BatchTestCase):
    def builder_url(self, **params: Any) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return reverse("generation:batch-create") + (f"?{query}" if query else "")

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
            "targets": ["preview:flux-2-pro", "bfl:flux-2-pro"],
            "sizes": [],
            "custom_sizes": "1024x1024",
            "merge_brand": "on",
            "token": "7c5b6f0e-2a43-4a57-9a5e-0d6f1f1c2b3a",
        }
        data.update(overrides)
        return data

    def test_the_builder_shows_a_field_per_variable_and_the_configured_backends(
        self,
    ) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get(self.builder_url(template=self.version.template.code))
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, 'name="matrix_headline"')
        self.assertContains(r, 'name="matrix_scene"')
        self.assertContains(r, 'value="preview:flux-2-pro"')
        self.assertContains(r, 'value="bfl:flux-2-flex"')
        self.assertContains(r, "Instagram feed, square")

    def test_without_a_template_it_offers_the_templates(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get(self.builder_url(campaign=self.campaign.code))
        self.assertContains(r, f"?template={self.version.template.code}")

    def test_the_htmx_preview_shows_count_prompts_and_estimate(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            reverse("generation:batch-preview"), self.form_data(), headers=HTMX
        )
        self.assertEqual(r.status_code, 200)
        self.assertNotContains(r, "<html")
        self.assertContains(r, '<strong id="variant-count">24</strong>')
        self.assertContains(r, '<th id="estimate-total">$0.36</th>')
        self.assertContains(r, "No budget cap")
        self.assertContains(r, "Poster: &quot;Autumn blend&quot; above a coffee bag")
        self.assertContains(r, "Dispatch 24 generations")
        self.assertFalse(Generation.objects.exists())

    def test_problems_are_shown_at_their_fields(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            reverse("generation:batch-preview"),
            self.form_data(
                matrix_scene="",
                matrix_headline="Cheap deal",
                seed_mode="fixed",
                seed_list="1, 99999999999",
                custom_sizes="1000x1000",
                targets=["bfl:flux-2-pro"],
            ),
            headers=HTMX,
        )
        content = r.content.decode()
        scene = content[content.index('id="values-scene"') :][:1200]
        self.assertIn("Give at least one value for {scene}", scene)
        self.assertIn("Seed 99999999999 is out of range", content)
        self.assertNotIn("Dispatch 24", content)

        r = self.client.post(
            reverse("generation:batch-preview"),
            self.form_data(
                matrix_headline="Cheap deal",
                custom_sizes="1000x1000",
                targets=["bfl:flux-2-pro"],
            ),
            headers=HTMX,
        )
        content = r.content.decode()
        headline = content[content.index('id="values-headline"') :][:1500]
        self.assertIn("is on the brand&#x27;s words to avoid", headline)
        r = self.client.post(
            reverse("generation:batch-preview"),
            self.form_data(custom_sizes="1000x1000", targets=["bfl:flux-2-pro"]),
            headers=HTMX,
        )
        self.assertContains(r, "must be a multiple of 16")
        self.assertContains(r, "disabled>Dispatch</button>", html=False)

    def test_csv_rows_can_be_uploaded_and_bad_lines_are_named(self) -> None:
        self.client.force_login(self.eddie)
        upload = SimpleUploadedFile(
            "rows.csv", b"headline,scene\nSale,beach\nonly-one\nNew,park\n", "text/csv"
        )
        r = self.client.post(
            reverse("generation:batch-preview"),
            self.form_data(mode="rows", rows="", rows_file=upload),
            headers=HTMX,
        )
        self.assertContains(r, "Line 3: 1 values for 2 columns.")
        self.assertContains(r, "Sale,beach")  # the file's text is kept in the box
        r = self.client.post(
            reverse("generation:batch-preview"),
            self.form_data(mode="rows", rows="headline,scene\nSale,beach\nNew,park\n"),
            headers=HTMX,
        )
        self.assertContains(r, '<strong id="variant-count">8</strong>')

    def test_dispatch_redirects_to_the_batch_and_a_second_click_does_not_duplicate(
        self,
    ) -> None:
        self.client.force_login(self.eddie)
        url = reverse("generation:batch-create")
        r = self.client.post(url, self.form_data(), headers=HTMX)
        batch = Batch.objects.get()
        self.assertEqual(
            r.headers["HX-Redirect"],
            reverse("generation:batch-detail", args=[batch.code]),
        )
        r = self.client.post(url, self.form_data())
        self.assertRedirects(
            r,
            reverse("generation:batch-detail", args=[batch.code]),
            fetch_redirect_response=False,
        )
        self.assertEqual(Batch.objects.count(), 1)
        self.assertEqual(Generation.objects.filter(batch=batch).count(), 24)
        self.assertEqual(batch.created_by, self.eddie)

    def test_a_batch_dispatch_plans_the_batch_once(self) -> None:
        # The builder's POST expands, renders, validates and prices the batch once: the preview it
        # made is the one batch_create stores (it used to plan the whole batch a second time).
        self.client.force_login(self.eddie)
        with mock.patch.object(
            batch_previews, "plan_batch", wraps=plan_batch
        ) as planned:
            r = self.client.post(
                reverse("generation:batch-create"), self.form_data(), headers=HTMX
            )
        batch = Batch.objects.get()
        self.assertEqual(
            r.headers["HX-Redirect"],
            reverse("generation:batch-detail", args=[batch.code]),
        )
        self.assertEqual(Generation.objects.filter(batch=batch).count(), 24)
        self.assertEqual(planned.call_count, 1)

    def test_over_budget_the_builder_refuses_with_the_numbers(self) -> None:
        Campaign.objects.filter(pk=self.campaign.pk).update(budget_cap=Decimal("0.20"))
        self.client.force_login(self.eddie)
        r = self.client.post(
            reverse("generation:batch-create"), self.form_data(), headers=HTMX
        )
        self.assertContains(r, "Over budget: this is estimated at $0.36")
        self.assertContains(r, "$0.20 left of its $0.20 cap")
        self.assertFalse(Batch.objects.exists())

    def test_a_viewer_cannot_build_and_an_outsider_gets_404(self) -> None:
        self.client.force_login(self.bob)
        self.assertEqual(
            self.client.get(
                self.builder_url(template=self.version.template.code)
            ).status_code,
            403,
        )
        self.assertEqual(
            self.client.post(
                reverse("generation:batch-create"), self.form_data()
            ).status_code,
            403,
        )
        self.client.force_login(self.carol)
        self.assertEqual(
            self.client.get(
                self.builder_url(template=self.version.template.code)
            ).status_code,
            404,
        )
        self.assertEqual(
            self.client.post(
                reverse("generation:batch-preview"), self.form_data()
            ).status_code,
            404,
        )

    def test_the_builder_starts_from_an_earlier_batch_as_a_rerun(self) -> None:
        batch = batch_create(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(),
            user=self.eddie,
        )
        self.client.force_login(self.eddie)
        r = self.client.get(self.builder_url(**{"from": batch.code}))
        self.assertContains(r, "Autumn blend\nHalf price\nNew roast")
        self.assertContains(r, f'value="{batch.code}"')  # the parent
        self.assertContains(r, '<strong id="variant-count">12</strong>')
        data = self.form_data(
            parent=str(batch.code),
            token="0b0b0b0b-2a43-4a57-9a5e-0d6f1f1c2b3a",
            matrix_headline="Half price",
            targets=["preview:flux-2-pro"],
            seed_mode="fixed",
            seed_list="11, 22",
        )
        self.client.post(reverse("generation:batch-create"), data)
        rerun = Batch.objects.get(parent=batch)
        self.assertIn(
            "{headline}: “Autumn blend”, “Half price”, “New roast” → “Half price”",
            rerun.changed,
        )

    def test_the_builder_starts_from_one_generation_as_a_remix(self) -> None:
        batch = batch_create(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(targets=("bfl:flux-2-flex",)),
            user=self.eddie,
        )
        generation = Generation.objects.filter(batch=batch).order_by("id").first()
        self.client.force_login(self.eddie)
        r = self.client.get(self.builder_url(**{"from": generation.code}))
        self.assertContains(r, "Autumn blend</textarea>")
        self.assertContains(r, 'value="11"')  # its seed, as a fixed list
        self.assertContains(r, '<strong id="variant-count">1</strong>')
        self.assertContains(r, '<th id="estimate-total">$0.05</th>')
        self.client.force_login(self.carol)
        r = self.client.get(self.builder_url(**{"from": generation.code}))
        self.assertEqual(r.status_code, 404)

    def test_campaign_and_template_pages_link_to_the_builder_for_editors(self) -> None:
        self.client.force_login(self.eddie)
        builder = reverse("generation:batch-create")
        r = self.client.get(
            reverse("campaigns:campaign-detail", args=[self.campaign.code])
        )
        self.assertContains(r, f"{builder}?campaign={self.campaign.code}")
        r = self.client.get(
            reverse("campaigns:template-detail", args=[self.version.template.code])
        )
        self.assertContains(r, f"{builder}?template={self.version.template.code}")
        self.assertContains(r, 'href="/batches/"')  # the main navigation
        self.client.force_login(self.bob)
        r = self.client.get(
            reverse("campaigns:template-detail", args=[self.version.template.code])
        )
        self.assertNotContains(r, f"{builder}?template=")


class BatchPageTests(BatchTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.batch = batch_create(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(
                headlines=("A",), scenes=("here",), seeds=Seeds(FIXED, values=(1, 2))
            ),
            user=self.eddie,
        )

    def test_viewers_see_progress_that_polls_while_active(self) -> None:
        self.client.force_login(self.bob)
        url = reverse("generation:batch-progress", args=[self.batch.code])
        r = self.client.get(url, headers=HTMX)
        self.assertNotContains(r, "<html")
        self.assertContains(r, 'hx-trigger="every 2s"')
        self.assertContains(r, 'id="batch-percent">0%')
        self.assertNotContains(r, "Cancel the batch")  # viewers do not act
        for g in Generation.objects.filter(batch=self.batch):
            self.run_generation(g)
        r = self.client.get(url, headers=HTMX)
        self.assertNotContains(r, 'hx-trigger="every 2s"')  # polling stops itself
        self.assertContains(r, 'id="batch-percent">100%')
        asset = Generation.objects.filter(batch=self.batch).first().asset
        self.assertContains(r, reverse("generation:asset-thumbnail", args=[asset.code]))
        r = self.client.get(reverse("generation:batch-detail", args=[self.batch.code]))
        self.assertContains(r, "Finished")

    def test_editors_cancel_and_retry_viewers_may_not(self) -> None:
        self.client.force_login(self.bob)
        cancel = reverse("generation:batch-cancel", args=[self.batch.code])
        self.assertEqual(self.client.post(cancel).status_code, 403)
        first = Generation.objects.filter(batch=self.batch).first()
        generation_fail(
            generation_id=first.pk,
            error=BackendError(ErrorClass.NETWORK, "connection reset by peer"),
        )
        self.client.force_login(self.eddie)
        r = self.client.get(reverse("generation:batch-detail", args=[self.batch.code]))
        self.assertContains(r, "Network error")
        # Members see the classified message; the raw text is for admins (operator page).
        self.assertNotContains(r, "connection reset by peer")
        self.assertContains(r, "Retry 1 failed")
        r = self.client.post(reverse("generation:batch-retry", args=[self.batch.code]))
        self.assertEqual(r.status_code, 302)
        self.assertTrue(Generation.objects.filter(parent=first).exists())
        self.client.post(cancel)
        self.assertFalse(
            Generation.objects.filter(batch=self.batch, state=S.QUEUED).exists()
        )
        self.batch.refresh_from_db()
        self.assertEqual(self.batch.state, Batch.State.CANCELED)

    def test_a_rerun_makes_a_draft_whose_page_previews_it(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            reverse("generation:batch-rerun", args=[self.batch.code]),
            {"axis": "seeds", "values": "5, 6, 7"},
        )
        draft = Batch.objects.get(parent=self.batch)
        self.assertRedirects(r, reverse("generation:batch-detail", args=[draft.code]))
        r = self.client.get(reverse("generation:batch-detail", args=[draft.code]))
        self.assertContains(r, "Draft: check it, then dispatch")
        self.assertContains(r, "Dispatch 3 generations")
        self.client.post(reverse("generation:batch-dispatch", args=[draft.code]))
        self.assertEqual(Generation.objects.filter(batch=draft).count(), 3)
        r = self.client.post(
            reverse("generation:batch-rerun", args=[self.batch.code]),
            {"axis": "seeds", "values": "-3"},
        )
        self.assertContains(r, "out of range")

    def test_change_one_thing_from_an_asset(self) -> None:
        source = self.run_generation(
            Generation.objects.filter(batch=self.batch).first()
        )
        url = reverse("generation:asset-variant", args=[source.asset.code])
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get(url).status_code, 403)
        self.client.force_login(self.eddie)
        r = self.client.get(url)
        self.assertContains(r, 'name="value_headline"')
        r = self.client.post(url, {"value_headline": "B", "value_scene": "here"})
        self.assertRedirects(r, url, fetch_redirect_response=False)
        variant = Generation.objects.get(parent=source)
        self.assertEqual(variant.changes, {"headline": {"from": "A", "to": "B"}})
        r = self.client.get(url, headers=HTMX)
        self.assertContains(r, 'hx-trigger="every 2s"')
        r = self.client.post(url, {"value_headline": "cheap", "value_scene": "here"})
        self.assertContains(r, "words to avoid")
        self.client.force_login(self.carol)
        self.assertEqual(self.client.get(url).status_code, 404)


class SpendPageTests(BatchTestCase):
    def test_campaign_and_workspace_spend(self) -> None:
        Campaign.objects.filter(pk=self.campaign.pk).update(budget_cap=Decimal("10"))
        batch_create(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(targets=("bfl:flux-2-pro", "bfl:flux-2-flex")),
            user=self.eddie,
        )
        other = make_version(self.brand, body="{headline}")
        self.assertIsNotNone(other)
        self.client.force_login(self.bob)
        r = self.client.get(
            reverse("generation:campaign-spend", args=[self.campaign.code])
        )
        self.assertContains(r, '<p class="big" id="spend-total">$0.96</p>')
        self.assertContains(r, "flux-2-flex")
        self.assertContains(r, "$9.04")
        r = self.client.get(reverse("generation:spend"))
        self.assertContains(r, self.campaign.name)
        self.assertContains(r, "$0.96")
        self.client.force_login(self.carol)
        r = self.client.get(
            reverse("generation:campaign-spend", args=[self.campaign.code])
        )
        self.assertEqual(r.status_code, 404)
        r = self.client.get(reverse("generation:spend"))
        self.assertNotContains(r, self.campaign.name)
