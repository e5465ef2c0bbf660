"""The home page shows what needs the team (issue 18): images waiting per campaign with a link to
the filtered gallery, batches running, recent approvals, budgets near their cap; the steps strip
covers batch, review and export."""

from __future__ import annotations

from decimal import Decimal

from django.urls import reverse

from generation.dashboard import dashboard_for
from generation.models import Batch, BatchState, Generation, ReviewEvent
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


class BudgetPanelTests(StudioTestCase):
    def test_budgets_near_their_cap_come_from_one_query_however_many_campaigns(self):
        # Spent 0.95, 0.90, ... 0.60 of a 1.00 cap, one generation each, plus a campaign
        # without a cap and another workspace's campaign over its cap.
        spent = ["0.95", "0.90", "0.88", "0.87", "0.86", "0.85", "0.81", "0.80", "0.79"]
        for i, amount in enumerate(spent):
            campaign = make_campaign(
                self.brand, name=f"Capped {i}", budget_cap=Decimal("1.00")
            )
            make_asset(campaign, estimated_cost=amount, review_status="approved")
            # A failed request with no reported cost counts nothing (spend/services.py).
            make_asset(campaign, estimated_cost="5.0000", state="failed")
        make_asset(make_campaign(self.brand, name="Uncapped"), estimated_cost="9.0000")
        other = make_campaign(
            make_brand(self.other_workspace), name="Globex", budget_cap=Decimal("1.00")
        )
        make_asset(other, estimated_cost="2.0000")

        # running, waiting, approvals, budgets: one query each, not one per campaign.
        with self.assertNumQueries(4):
            dash = dashboard_for(self.workspace)
        self.assertEqual(
            [(row["campaign__name"], row["percent"]) for row in dash.budgets],
            [("Capped 0", 95), ("Capped 1", 90), ("Capped 2", 88), ("Capped 3", 87),
             ("Capped 4", 86), ("Capped 5", 85)],
        )  # fmt: skip
        first = dash.budgets[0]
        self.assertEqual(first["total"], Decimal("0.95"))
        self.assertEqual(first["share"], Decimal("0.95"))
        self.assertEqual(first["count"], 2)

        # Fewer near the cap than SHOWN: exactly those at 80 % or more, 79 % left out.
        make_campaign(self.brand, name="Empty", budget_cap=Decimal("1.00"))
        Generation.objects.filter(
            campaign__name__in=[f"Capped {i}" for i in range(5)]
        ).delete()
        with self.assertNumQueries(4):
            dash = dashboard_for(self.workspace)
        self.assertEqual(
            [row["campaign__name"] for row in dash.budgets],
            ["Capped 5", "Capped 6", "Capped 7"],
        )
