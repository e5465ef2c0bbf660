"""Batch services against the real engine: preview, dispatch into the fair queue, budget and size
limits, cancel, retry, progress, "change one thing" and re-runs."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db.models import Count
from django.test import override_settings

from campaigns.models import Campaign
from generation import caps
from generation.backends.base import BackendError, ErrorClass
from generation.batches.change_one import Edits, variant_from_asset
from generation.batches.common import BatchRefused
from generation.batches.preview import batch_preview
from generation.batches.progress import batch_progress
from generation.batches.rerun import batch_rerun_with_axis, batch_retry_failed
from generation.batches.services import (
    batch_cancel,
    batch_create,
    batch_dispatch,
    batch_sync_state,
)
from generation.batches.spec import FIXED, Seeds, Size
from generation.batches.targets import target_options
from generation.engine.dispatch import generation_dispatch
from generation.engine.failure import generation_fail
from generation.models import Batch, Generation, GenerationState
from generation.spend import services as spend
from tests.generation.batch_helpers import (
    BatchTestCase,
    make_reference,
    make_version,
    matrix_spec,
    random_seeds,
)

S = GenerationState
TWO_BACKENDS = ("preview:flux-2-pro", "bfl:flux-2-pro")


class PreviewTests(BatchTestCase):
    def test_it_counts_prices_and_fits_the_budget_without_storing(self) -> None:
        Campaign.objects.filter(pk=self.campaign.pk).update(budget_cap=Decimal("10"))
        self.campaign.refresh_from_db()
        preview = batch_preview(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(targets=TWO_BACKENDS, seeds=random_seeds(2)),
        )
        self.assertTrue(preview.can_dispatch, preview.errors)
        self.assertEqual(preview.plan.count, 24)
        self.assertEqual(preview.plan.by_backend["bfl"]["total"], Decimal("0.36"))
        self.assertEqual(preview.plan.by_backend["preview"]["total"], Decimal("0"))
        self.assertEqual(preview.plan.total, Decimal("0.36"))
        self.assertTrue(preview.fits_budget)
        self.assertEqual(preview.remaining_after, Decimal("9.64"))
        self.assertIn("Brand palette: #1A1A2E (Midnight)", preview.plan.prompts[0][1])
        self.assertFalse(Generation.objects.exists())
        self.assertFalse(Batch.objects.exists())

    def test_a_campaign_without_a_cap_is_not_limited_but_says_so(self) -> None:
        preview = batch_preview(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(targets=TWO_BACKENDS),
        )
        self.assertTrue(preview.no_cap)
        self.assertTrue(preview.can_dispatch)

    def test_only_configured_backends_are_offered_and_preview_always(self) -> None:
        with override_settings(BFL_API_KEY=""):
            keys = {o.key for o in target_options(workspace=self.workspace)}
        self.assertIn("preview:flux-2-pro", keys)
        self.assertNotIn("bfl:flux-2-pro", keys)
        keys = {o.key for o in target_options(workspace=self.workspace)}
        self.assertIn("bfl:flux-2-flex", keys)

    def test_references_must_come_from_the_brand_library_with_the_slot_role(
        self,
    ) -> None:
        version = make_version(
            self.brand,
            body="{headline} {scene} with {ref:product}",
            reference_slots=[{"name": "product", "role": "product", "required": True}],
        )
        style = make_reference(self.brand, role="style")
        preview = batch_preview(
            campaign=self.campaign,
            version=version,
            spec=matrix_spec(references={"product": str(style.code)}),
        )
        self.assertIn("takes a product image", preview.errors["ref_product"][0])
        missing = batch_preview(
            campaign=self.campaign, version=version, spec=matrix_spec()
        )
        self.assertIn("is required but has no image", missing.errors["ref_product"][0])


class DispatchTests(BatchTestCase):
    def create(self, **kwargs: object) -> Batch:
        options: dict[str, object] = {
            "campaign": self.campaign,
            "version": self.version,
            "spec": matrix_spec(targets=TWO_BACKENDS),
            "user": self.eddie,
        }
        options.update(kwargs)
        return batch_create(**options)  # type: ignore[arg-type]

    def test_it_stores_every_variant_in_the_fair_queue_with_the_batch_as_owner(
        self,
    ) -> None:
        product = make_reference(self.brand)
        version = make_version(
            self.brand,
            body="{headline} {scene}, the bag from {ref:product}",
            reference_slots=[{"name": "product", "role": "product", "required": True}],
        )
        with self.captureOnCommitCallbacks(execute=True):
            batch = self.create(
                version=version,
                spec=matrix_spec(
                    targets=TWO_BACKENDS, references={"product": str(product.code)}
                ),
            )
        self.assertEqual(batch.state, Batch.State.QUEUED)
        self.assertEqual(batch.size, 24)
        generations = Generation.objects.filter(batch=batch).order_by("id")
        self.assertEqual(generations.count(), 24)
        first = generations[0]
        self.assertEqual(first.owner_key, f"batch:{batch.code}")
        self.assertEqual((first.requested_backend, first.fallbacks), ("preview", []))
        self.assertEqual(first.route[0]["outcome"], "chosen")
        self.assertEqual(
            first.variables, {"headline": "Autumn blend", "scene": "on a marble table"}
        )
        self.assertEqual(first.seed, 11)
        self.assertEqual(
            first.references,
            [{"code": str(product.code), "role": "product", "name": "product"}],
        )
        self.assertIn("the bag from image 1", first.prompt)
        self.assertTrue(
            all(g.state == S.QUEUED and g.dispatched_at is None for g in generations)
        )
        bfl = generations.filter(backend="bfl")
        # 1 MP out + 1 MP in on [pro]: 3¢ + 1.5¢.
        self.assertEqual({g.estimated_cost for g in bfl}, {Decimal("0.045")})
        self.assertEqual(batch.estimate_total, Decimal("0.54"))
        ranks = list(bfl.values_list("fair_rank", flat=True))
        self.assertEqual(ranks, sorted(ranks))
        self.assertEqual(len(set(ranks)), 12)
        woken = {call.args[0] for call in self.woken.call_args_list}
        self.assertEqual(woken, {"preview:env", "bfl:env"})

    def test_a_double_click_dispatches_one_batch(self) -> None:
        token = uuid.uuid4()
        first = self.create(token=token)
        second = self.create(token=token)
        self.assertEqual(first.pk, second.pk)
        self.assertEqual(Batch.objects.count(), 1)
        self.assertEqual(Generation.objects.count(), 24)

    def test_over_budget_is_refused_with_the_numbers_and_nothing_is_stored(
        self,
    ) -> None:
        Campaign.objects.filter(pk=self.campaign.pk).update(budget_cap=Decimal("0.50"))
        self.campaign.refresh_from_db()
        spec = matrix_spec(targets=("bfl:flux-2-pro", "bfl:flux-2-flex"))
        with self.assertRaises(BatchRefused) as refused:
            self.create(spec=spec)
        self.assertEqual(
            refused.exception.errors["budget"],
            [
                "Over budget: this is estimated at $0.96, but the campaign has $0.50 left of "
                "its $0.50 cap ($0.00 spent or committed). Make it smaller, or ask an admin "
                "to raise the cap."
            ],
        )
        self.assertFalse(Batch.objects.exists())
        self.assertFalse(Generation.objects.exists())
        # An admin raises the cap (campaign edit); the same batch now fits.
        Campaign.objects.filter(pk=self.campaign.pk).update(budget_cap=Decimal("5"))
        self.campaign.refresh_from_db()
        self.assertEqual(self.create(spec=spec).size, 24)

    def test_spend_counts_earlier_work_against_the_budget(self) -> None:
        Campaign.objects.filter(pk=self.campaign.pk).update(budget_cap=Decimal("0.40"))
        self.campaign.refresh_from_db()
        self.create(spec=matrix_spec(targets=("bfl:flux-2-pro",)))  # 12 × $0.03
        budget = spend.campaign_budget(campaign=self.campaign)
        self.assertEqual(budget.spend.estimated, Decimal("0.36"))
        self.assertEqual(budget.remaining, Decimal("0.04"))
        with self.assertRaises(BatchRefused) as refused:
            self.create(spec=matrix_spec(targets=("bfl:flux-2-pro",)))
        self.assertIn(
            "$0.04 left of its $0.40 cap ($0.36 spent",
            refused.exception.errors["budget"][0],
        )
        # A failed generation costs nothing unless the provider reported a cost; reported costs win.
        g1, g2 = Generation.objects.filter(backend="bfl")[:2]
        generation_fail(
            generation_id=g1.pk, error=BackendError(ErrorClass.PROVIDER_ERROR, "boom")
        )
        Generation.objects.filter(pk=g2.pk).update(actual_cost=Decimal("0.045"))
        budget = spend.campaign_budget(campaign=self.campaign)
        self.assertEqual(budget.spend.actual, Decimal("0.045"))
        self.assertEqual(budget.spend.estimated, Decimal("0.30"))

    @override_settings(STUDIO_BATCH_MAX_SIZE=20)
    def test_a_batch_over_the_maximum_size_is_refused(self) -> None:
        with self.assertRaises(BatchRefused) as refused:
            self.create()
        self.assertIn(
            "This batch would make 24 images; one batch makes at most 20.",
            refused.exception.errors["__all__"][0],
        )

    def test_rule_violations_come_back_at_their_fields(self) -> None:
        spec = matrix_spec(
            targets=("bfl:flux-2-pro",),
            sizes=(Size(1000, 1000),),
            seeds=Seeds(FIXED, values=(2**32,)),
        )
        with self.assertRaises(BatchRefused) as refused:
            self.create(spec=spec)
        self.assertIn("seeds", refused.exception.errors)
        spec = matrix_spec(targets=("bfl:flux-2-pro",), sizes=(Size(1000, 1000),))
        with self.assertRaises(BatchRefused) as refused:
            self.create(spec=spec)
        self.assertIn("must be a multiple of 16", refused.exception.errors["sizes"][0])

    def test_a_draft_is_dispatched_once(self) -> None:
        draft = self.create(dispatch=False)
        self.assertEqual(draft.state, Batch.State.DRAFT)
        self.assertFalse(Generation.objects.exists())
        sent = batch_dispatch(batch=draft, user=self.eddie)
        again = batch_dispatch(batch=draft, user=self.eddie)
        self.assertEqual(sent.state, Batch.State.QUEUED)
        self.assertEqual(again.state, Batch.State.QUEUED)
        self.assertEqual(Generation.objects.filter(batch=draft).count(), 24)


class CancelRetryTests(BatchTestCase):
    def test_cancel_drops_queued_work_and_frees_slots_of_dispatched_work(self) -> None:
        batch = batch_create(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(targets=("preview:flux-2-pro",)),
            user=self.eddie,
        )
        # The dispatcher hands the preview cap's 4 slots out; 8 rows keep waiting.
        dispatched = generation_dispatch(cap_key="preview:env").ids
        self.assertEqual(len(dispatched), 4)
        done = self.run_generation(Generation.objects.get(pk=dispatched[0]))
        self.assertEqual(done.state, S.SUCCEEDED)
        canceled = batch_cancel(batch=batch)
        self.assertEqual(canceled, 11)
        states = dict(
            Generation.objects.filter(batch=batch)
            .values_list("state")
            .annotate(n=Count("id"))
        )
        self.assertEqual(states, {S.SUCCEEDED: 1, S.CANCELED: 11})
        batch.refresh_from_db()
        self.assertEqual(batch.state, Batch.State.CANCELED)
        cap = caps.cap_for("preview:env")
        self.assertEqual(cap.count(), 0)
        # Nothing left for a dispatcher to hand out.
        self.assertEqual(generation_dispatch(cap_key="preview:env").ids, [])

    def test_retry_makes_new_generations_for_the_failed_ones_with_their_parent(
        self,
    ) -> None:
        batch = batch_create(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(targets=("bfl:flux-2-pro",), headlines=("A",)),
            user=self.eddie,
        )
        g1, g2 = Generation.objects.filter(batch=batch).order_by("id")[:2]
        generation_fail(
            generation_id=g1.pk,
            error=BackendError(ErrorClass.PROVIDER_ERROR, "Internal server error"),
        )
        generation_fail(
            generation_id=g2.pk,
            error=BackendError(ErrorClass.MODERATED, "Request Moderated"),
        )
        Generation.objects.filter(batch=batch, state=S.QUEUED).update(state=S.SUCCEEDED)
        progress = batch_progress(batch=batch)
        self.assertEqual(progress.failed, 2)
        self.assertEqual(progress.retryable, 1)
        self.assertEqual(
            [(e.error_class, e.count) for e in progress.errors],
            [("moderated", 1), ("provider_error", 1)],
        )
        # The batch page is for every member: the classified message, not the body.
        self.assertEqual(progress.errors[1].messages, (("Provider error.", 1),))
        self.assertEqual(batch_sync_state(batch=batch).state, Batch.State.FINISHED)

        with self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(batch_retry_failed(batch=batch, user=self.eddie), 1)
        self.assertEqual(batch_retry_failed(batch=batch, user=self.eddie), 0)
        retry = Generation.objects.get(parent=g1)
        self.assertEqual(retry.batch_id, batch.pk)
        self.assertEqual(retry.changes, {"retry": True})
        self.assertEqual(
            (retry.prompt, retry.seed, retry.width, retry.model, retry.state),
            (g1.prompt, g1.seed, g1.width, g1.model, S.QUEUED),
        )
        self.assertEqual(retry.owner_key, batch.owner_key)
        self.assertFalse(Generation.objects.filter(parent=g2).exists())  # moderated
        batch.refresh_from_db()
        self.assertEqual(batch.state, Batch.State.RUNNING)
        progress = batch_progress(batch=batch)
        self.assertEqual(progress.retried, 1)
        self.assertEqual([e.error_class for e in progress.errors], ["moderated"])


class ProgressTests(BatchTestCase):
    def test_a_batch_moves_from_queued_to_running_to_finished(self) -> None:
        batch = batch_create(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(headlines=("A",), scenes=("here",)),
            user=self.eddie,
        )
        self.assertEqual(batch_sync_state(batch=batch).state, Batch.State.QUEUED)
        ids = list(Generation.objects.filter(batch=batch).values_list("id", flat=True))
        self.run_generation(Generation.objects.get(pk=ids[0]))
        self.assertEqual(batch_sync_state(batch=batch).state, Batch.State.RUNNING)
        progress = batch_progress(batch=batch)
        self.assertEqual(
            (progress.finished, progress.total, progress.percent), (1, 2, 50)
        )
        self.run_generation(Generation.objects.get(pk=ids[1]))
        batch = batch_sync_state(batch=batch)
        self.assertEqual(batch.state, Batch.State.FINISHED)
        progress = batch_progress(batch=batch)
        self.assertEqual(progress.percent, 100)
        self.assertEqual(progress.eta_text, "done")
        self.assertEqual(progress.spend.total, Decimal("0"))


class ChangeOneThingTests(BatchTestCase):
    def test_a_variant_keeps_everything_but_the_edited_value(self) -> None:
        product = make_reference(self.brand)
        version = make_version(
            self.brand,
            body='"{headline}" on the bag from {ref:product}, {scene}',
            reference_slots=[{"name": "product", "role": "product", "required": True}],
        )
        batch = batch_create(
            campaign=self.campaign,
            version=version,
            spec=matrix_spec(
                headlines=("Autumn blend",),
                scenes=("at dawn",),
                seeds=Seeds(FIXED, values=(4242,)),
                targets=("preview:flux-2-flex",),
                sizes=(Size(768, 512),),
                references={"product": str(product.code)},
            ),
            user=self.eddie,
        )
        source = self.run_generation(Generation.objects.get(batch=batch))
        asset = source.asset
        with self.captureOnCommitCallbacks(execute=True):
            variant = variant_from_asset(
                asset=asset,
                user=self.eddie,
                edits=Edits(values={"headline": "Half price"}),
            )
        self.assertEqual(variant.parent_id, source.pk)
        self.assertEqual(
            variant.changes, {"headline": {"from": "Autumn blend", "to": "Half price"}}
        )
        self.assertEqual(
            variant.variables, {"headline": "Half price", "scene": "at dawn"}
        )
        self.assertEqual(
            (
                variant.seed,
                variant.backend,
                variant.model,
                variant.width,
                variant.height,
            ),
            (4242, "preview", "flux-2-flex", 768, 512),
        )
        self.assertEqual(variant.references, source.references)
        self.assertEqual(
            variant.prompt, source.prompt.replace("Autumn blend", "Half price")
        )
        self.assertIsNone(variant.batch_id)
        # The lineage is walkable from the asset and its child runs to an image too.
        done = self.run_generation(variant)
        self.assertEqual(done.state, S.SUCCEEDED)
        self.assertEqual(list(source.children.all()), [variant])

    def test_a_variant_must_change_something_and_stay_on_brand(self) -> None:
        batch = batch_create(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(
                headlines=("A",), scenes=("here",), seeds=Seeds(FIXED, values=(1,))
            ),
            user=self.eddie,
        )
        source = self.run_generation(Generation.objects.get(batch=batch))
        with self.assertRaises(BatchRefused) as same:
            variant_from_asset(
                asset=source.asset,
                user=self.eddie,
                edits=Edits(values={"headline": "A"}),
            )
        self.assertIn("Change at least one thing", same.exception.messages[0])
        with self.assertRaises(BatchRefused) as avoided:
            variant_from_asset(
                asset=source.asset,
                user=self.eddie,
                edits=Edits(values={"headline": "Cheap"}),
            )
        self.assertIn("value_headline", avoided.exception.errors)
        self.assertEqual(Generation.objects.count(), 1)


class RerunTests(BatchTestCase):
    def test_a_rerun_with_one_axis_changed_is_a_draft_recording_its_parent(
        self,
    ) -> None:
        batch = batch_create(
            campaign=self.campaign,
            version=self.version,
            spec=matrix_spec(),
            user=self.eddie,
        )
        draft = batch_rerun_with_axis(
            batch=batch,
            axis="var:headline",
            text="Half price\nFree mug",
            user=self.eddie,
        )
        self.assertEqual(draft.state, Batch.State.DRAFT)
        self.assertEqual(draft.parent_id, batch.pk)
        self.assertEqual(
            draft.changed,
            "{headline}: “Autumn blend”, “Half price”, “New roast” → “Half price”, “Free mug”",
        )
        self.assertEqual(draft.size, 2 * 2 * 2)
        sent = batch_dispatch(batch=draft, user=self.eddie)
        self.assertEqual(Generation.objects.filter(batch=sent).count(), 8)
        models = batch_rerun_with_axis(
            batch=batch, axis="targets", text="bfl:flux-2-flex", user=self.eddie
        )
        self.assertIn(
            "models: Preview (offline draft) · FLUX.2 [pro] → ", models.changed
        )
        with self.assertRaises(BatchRefused) as refused:
            batch_rerun_with_axis(
                batch=batch, axis="seeds", text="11, 22", user=self.eddie
            )
        self.assertIn("Nothing changed", refused.exception.errors["values"][0])
        with self.assertRaises(BatchRefused) as refused:
            batch_rerun_with_axis(batch=batch, axis="seeds", text="-1", user=self.eddie)
        self.assertIn("out of range", refused.exception.errors["values"][0])
