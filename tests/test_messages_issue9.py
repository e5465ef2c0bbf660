"""Issue 9, item 10: each request the probe sent gets a message that says what happened."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.urls import reverse

from campaigns.models import Campaign
from generation.models import Comment
from tests.campaigns.test_template_views import TemplatePagesBase
from tests.factories import make_asset
from tests.generation.batch_helpers import BatchTestCase

HTMX = {"HX-Request": "true"}


class CommentAndStatusMessageTests(TemplatePagesBase):
    def test_a_comment_over_5000_characters_says_it_is_too_long(self) -> None:
        asset = make_asset(self.campaign)
        self.client.force_login(self.eddie)
        url = reverse("generation:asset-comment", args=[asset.code])
        r = self.client.post(url, {"body": "x" * 5001}, headers=HTMX)
        self.assertNotContains(r, "Write something first.")
        self.assertContains(r, "at most 5000 characters (it has 5001)")
        r = self.client.post(url, {"body": "x" * 5001}, follow=True)
        self.assertContains(r, "at most 5000 characters (it has 5001)")
        self.assertFalse(Comment.objects.exists())
        # An empty comment still gets the old, right message.
        r = self.client.post(url, {"body": ""}, headers=HTMX)
        self.assertContains(r, "Write something first.")

    def test_an_invalid_campaign_status_is_refused_by_name(self) -> None:
        self.client.force_login(self.eddie)
        url = f"/campaigns/{self.campaign.code}/status/"
        r = self.client.post(url, {"status": "exploded"}, follow=True)
        self.assertNotContains(r, "Status: Draft.")
        self.assertContains(
            r,
            "Status not changed: “exploded” is not a campaign status. It is still Draft.",
        )
        r = self.client.post(url, {"status": "exploded"}, headers=HTMX)
        self.assertContains(r, "Status not changed")
        self.campaign.refresh_from_db()
        self.assertEqual(self.campaign.status, Campaign.Status.DRAFT)
        # A valid one still answers as before.
        r = self.client.post(url, {"status": "active"}, follow=True)
        self.assertContains(r, "Status: Active.")

    def test_based_on_minus_one_says_what_is_wrong(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            self.url("versions/new/"),
            {
                "kind": "text",
                "body": "The {product} from {ref:product} on a {surface}, blue hour",
                "reference_slots": "product: product",
                "parameters": '{"model": "flux-2-pro", "width": 1024, "height": 768}',
                "change_note": "Cooler light",
                "based_on": "-1",
            },
        )
        self.assertEqual(r.status_code, 200)
        self.assertContains(
            r, "The version this edit started from (a hidden field) is not valid"
        )
        self.assertContains(r, "Reload the page to get a fresh form.")
        self.assertEqual(self.template.versions.count(), 2)

    def test_an_editors_budget_change_is_reported_not_dropped_silently(self) -> None:
        self.campaign.budget_cap = Decimal("50.00")
        self.campaign.save()
        self.client.force_login(self.eddie)
        r = self.client.post(
            f"/campaigns/{self.campaign.code}/edit/",
            {
                "name": "Autumn launch",
                "objective": "launch",
                "brief": "",
                "channels": ["instagram-story"],
                "starts_on": "",
                "ends_on": "",
                "budget_cap": "9999",
                "status": "draft",
            },
            follow=True,
        )
        self.assertContains(r, "Campaign saved.")
        self.assertContains(
            r, "The budget was not changed: only admins set it. It stays at $50.00."
        )
        self.campaign.refresh_from_db()
        self.assertEqual(self.campaign.budget_cap, Decimal("50.00"))

    def test_an_editor_who_leaves_the_budget_alone_gets_no_warning(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            f"/brands/{self.brand.code}/campaigns/new/",
            {
                "name": "Spring",
                "objective": "launch",
                "channels": ["web-hero"],
                "status": "draft",
            },
            follow=True,
        )
        self.assertContains(r, "created")
        self.assertNotContains(r, "The budget was not changed")
        r = self.client.post(
            f"/brands/{self.brand.code}/campaigns/new/",
            {
                "name": "Summer",
                "objective": "launch",
                "channels": ["web-hero"],
                "status": "draft",
                "budget_cap": "10",
            },
            follow=True,
        )
        self.assertContains(r, "It stays at no budget cap.")


class HiddenFieldMessageTests(BatchTestCase):
    def form_data(self, **overrides: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "template": str(self.version.template.code),
            "version": "1",
            "campaign": str(self.campaign.code),
            "mode": "matrix",
            "matrix_headline": "Autumn blend",
            "matrix_scene": "on a marble table",
            "seed_mode": "random",
            "seed_count": "1",
            "rng_seed": "1234",
            "targets": ["preview:flux-2-pro"],
            "sizes": [],
            "custom_sizes": "1024x1024",
            "merge_brand": "on",
            "token": "7c5b6f0e-2a43-4a57-9a5e-0d6f1f1c2b3a",
        }
        data.update(overrides)
        return data

    def test_rng_seed_minus_one_is_named_at_the_top(self) -> None:
        self.client.force_login(self.eddie)
        for url in (
            reverse("generation:batch-preview"),
            reverse("generation:batch-create"),
        ):
            r = self.client.post(url, self.form_data(rng_seed="-1"), headers=HTMX)
            self.assertContains(r, 'id="builder-errors"')
            self.assertContains(
                r, "The batch&#x27;s random seed (a hidden field) was refused"
            )
            self.assertContains(r, "greater than or equal to 0")

    def test_a_bad_token_is_named_at_the_top(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            reverse("generation:batch-create"), self.form_data(token="not-a-uuid")
        )
        self.assertContains(
            r, "The form&#x27;s one-time token (a hidden field) is missing or invalid"
        )
        self.assertFalse(self.campaign.batches.exists())
