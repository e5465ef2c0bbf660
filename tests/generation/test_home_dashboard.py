"""The home page shows what needs the team (issue 18): images waiting per campaign with a link to
the filtered gallery, batches running, recent approvals, budgets near their cap; the steps strip
covers batch, review and export."""

from __future__ import annotations

from decimal import Decimal

from django.urls import reverse

from generation.models import Batch, BatchState, ReviewEvent
from tests.base import StudioTestCase
from tests.factories import make_asset, make_brand, make_campaign


class HomeDashboardTests(StudioTestCase):
    def test_the_home_page_shows_what_needs_the_team(self):
        make_asset(self.campaign, review_status="pending")
        make_asset(self.campaign, review_status="pending")
        approved = make_asset(self.campaign, review_status="approved")
        ReviewEvent.objects.create(
            workspace=self.workspace,
            asset=approved,
            actor=self.alex,
            from_status="pending",
            to_status="approved",
        )
        Batch.objects.create(
            workspace=self.workspace,
            campaign=self.campaign,
            brand=self.brand,
            name="Autumn hero shots",
            state=BatchState.RUNNING,
        )
        tight = make_campaign(
            self.brand, name="Tight budget", budget_cap=Decimal("1.00")
        )
        make_asset(tight, estimated_cost="0.9000", review_status="approved")
        make_campaign(self.brand, name="Roomy", budget_cap=Decimal("100.00"))
        # Another workspace's work never shows.
        other = make_campaign(make_brand(self.other_workspace), name="Globex secret")
        make_asset(other, review_status="pending")

        self.client.force_login(self.bob)
        page = self.client.get(reverse("home")).content.decode()
        gallery = reverse("generation:campaign-gallery", args=[self.campaign.code])
        self.assertIn(f'href="{gallery}?status=pending">Autumn launch</a>', page)
        self.assertIn("2 images to review", page)
        self.assertIn("Autumn hero shots", page)
        self.assertIn("by alex", page)
        self.assertIn("Tight budget", page)
        self.assertIn("(90 %)", page)
        budgets = page.split('id="dash-budgets"')[1].split("</section>")[0]
        self.assertIn("Tight budget", budgets)
        self.assertNotIn("Roomy", budgets)
        self.assertNotIn("Globex secret", page)
        for step in (
            "<strong>Batch</strong>",
            "<strong>Review</strong>",
            "<strong>Export</strong>",
        ):
            self.assertIn(step, page)
        # A viewer is not invited to start a batch.
        self.assertNotIn("Start one", page)
