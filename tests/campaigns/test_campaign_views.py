from __future__ import annotations

from decimal import Decimal

from campaigns.models import Campaign
from tests.base import StudioTestCase
from tests.factories import make_brand, make_campaign

POST = {
    "name": "Spring",
    "objective": "launch",
    "brief": "Launch the spring blend",
    "channels": ["instagram-story", "web-hero"],
    "starts_on": "2027-03-01",
    "ends_on": "2027-04-01",
    "budget_cap": "120.50",
    "status": "draft",
}


class CampaignTests(StudioTestCase):
    def test_an_editor_creates_a_campaign_but_cannot_set_the_budget(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(f"/brands/{self.brand.code}/campaigns/new/", POST)
        campaign = Campaign.objects.get(name="Spring")
        self.assertRedirects(
            r, f"/campaigns/{campaign.code}/", fetch_redirect_response=False
        )
        self.assertEqual(campaign.brand, self.brand)
        self.assertEqual(campaign.channels, ["instagram-story", "web-hero"])
        self.assertIsNone(campaign.budget_cap)

    def test_an_admin_sets_the_budget_cap(self) -> None:
        self.client.force_login(self.alice)
        self.client.post(f"/brands/{self.brand.code}/campaigns/new/", POST)
        self.assertEqual(
            Campaign.objects.get(name="Spring").budget_cap, Decimal("120.50")
        )

    def test_an_editor_cannot_raise_the_cap_on_edit(self) -> None:
        self.campaign.budget_cap = Decimal("10")
        self.campaign.save()
        self.client.force_login(self.eddie)
        self.client.post(
            f"/campaigns/{self.campaign.code}/edit/", {**POST, "budget_cap": "9999"}
        )
        self.campaign.refresh_from_db()
        self.assertEqual(self.campaign.budget_cap, Decimal("10.00"))
        self.assertEqual(self.campaign.name, "Spring")

    def test_it_refuses_an_end_before_the_start(self) -> None:
        self.client.force_login(self.alice)
        r = self.client.post(
            f"/brands/{self.brand.code}/campaigns/new/",
            {**POST, "ends_on": "2027-02-01"},
        )
        self.assertContains(r, "cannot end before it starts")
        self.assertFalse(Campaign.objects.filter(name="Spring").exists())

    def test_it_refuses_a_negative_budget(self) -> None:
        self.client.force_login(self.alice)
        r = self.client.post(
            f"/brands/{self.brand.code}/campaigns/new/", {**POST, "budget_cap": "-5"}
        )
        self.assertEqual(r.status_code, 200)
        self.assertFalse(Campaign.objects.filter(name="Spring").exists())

    def test_a_viewer_reads_but_cannot_write(self) -> None:
        self.client.force_login(self.bob)
        self.assertContains(
            self.client.get(f"/campaigns/{self.campaign.code}/"), "Autumn launch"
        )
        self.assertEqual(
            self.client.post(
                f"/brands/{self.brand.code}/campaigns/new/", POST
            ).status_code,
            403,
        )
        self.assertEqual(
            self.client.post(
                f"/campaigns/{self.campaign.code}/edit/", POST
            ).status_code,
            403,
        )
        self.assertEqual(
            self.client.post(
                f"/campaigns/{self.campaign.code}/status/", {"status": "active"}
            ).status_code,
            403,
        )

    def test_an_outsider_gets_404(self) -> None:
        self.client.force_login(self.carol)
        code = self.campaign.code
        for url in [f"/campaigns/{code}/", f"/campaigns/{code}/edit/"]:
            self.assertEqual(self.client.get(url).status_code, 404, url)
        self.assertEqual(
            self.client.post(
                f"/campaigns/{code}/status/", {"status": "active"}
            ).status_code,
            404,
        )

    def test_status_change_returns_the_partial_for_htmx(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            f"/campaigns/{self.campaign.code}/status/",
            {"status": "active"},
            headers={"HX-Request": "true"},
        )
        self.assertContains(r, 'id="campaign-status"')
        self.assertNotContains(r, "<html")
        self.campaign.refresh_from_db()
        self.assertEqual(self.campaign.status, "active")

    def test_the_list_filters_by_status_and_brand_and_hides_other_workspaces(
        self,
    ) -> None:
        other_brand = make_brand(self.workspace, name="Other")
        make_campaign(other_brand, name="Other brand campaign", status="active")
        make_campaign(make_brand(self.other_workspace), name="Globex campaign")
        self.client.force_login(self.bob)
        r = self.client.get("/campaigns/")
        self.assertContains(r, "Autumn launch")
        self.assertNotContains(r, "Globex campaign")
        r = self.client.get("/campaigns/?status=active", headers={"HX-Request": "true"})
        self.assertContains(r, "Other brand campaign")
        self.assertNotContains(r, "Autumn launch")
        self.assertNotContains(r, "<html")
        r = self.client.get(f"/campaigns/?brand={self.brand.code}")
        self.assertNotContains(r, "Other brand campaign")
