from __future__ import annotations

from decimal import Decimal

from campaigns.models import Campaign
from studio.models import Role
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

    def test_an_unknown_status_marks_the_status_select(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            f"/campaigns/{self.campaign.code}/status/",
            {"status": "exploded"},
            headers={"HX-Request": "true"},
        )
        self.assertRegex(
            r.content.decode(),
            r'<select id="status-select" name="status" aria-invalid="true" '
            r'aria-describedby="status-error">',
        )
        self.assertContains(r, 'id="status-error"')
        # A good one leaves it unmarked.
        r = self.client.post(
            f"/campaigns/{self.campaign.code}/status/",
            {"status": "active"},
            headers={"HX-Request": "true"},
        )
        self.assertContains(r, '<select id="status-select" name="status">')

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


class NewCampaignFromTheListTests(StudioTestCase):
    """ "New campaign" on the campaigns list: the brand is picked in the form, within the workspace."""

    def test_the_button_is_offered_exactly_to_the_roles_the_form_admits(self) -> None:
        for user, may in [
            (self.alice, True),
            (self.eddie, True),
            (self.alex, True),  # approvers rank above editors
            (self.bob, False),
        ]:
            self.client.force_login(user)
            page = self.client.get("/campaigns/").content.decode()
            shown = 'href="/campaigns/new/"' in page
            status = self.client.get("/campaigns/new/").status_code
            self.assertEqual((shown, status), (may, 200 if may else 403), user)

    def test_a_viewer_cannot_post_one(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.post("/campaigns/new/", {**POST, "brand": self.brand.pk})
        self.assertEqual(r.status_code, 403)
        self.assertFalse(Campaign.objects.filter(name="Spring").exists())

    def test_an_editor_picks_the_brand_and_creates_it(self) -> None:
        second = make_brand(self.workspace, name="Harbour Tea")
        self.client.force_login(self.eddie)
        r = self.client.post("/campaigns/new/", {**POST, "brand": second.pk})
        campaign = Campaign.objects.get(name="Spring")
        self.assertRedirects(
            r, f"/campaigns/{campaign.code}/", fetch_redirect_response=False
        )
        self.assertEqual(campaign.brand, second)
        self.assertEqual(campaign.workspace, self.workspace)
        self.assertEqual(campaign.created_by, self.eddie)
        self.assertIsNone(campaign.budget_cap)  # editors do not set the budget

    def test_the_choices_are_this_workspaces_brands_only(self) -> None:
        make_brand(self.workspace, name="Harbour Tea")
        make_brand(self.other_workspace, name="Globex Secret Brand")
        self.client.force_login(self.eddie)
        r = self.client.get("/campaigns/new/")
        self.assertContains(r, "Acme Coffee")
        self.assertContains(r, "Harbour Tea")
        self.assertNotContains(r, "Globex Secret Brand")
        # Two brands: nothing is chosen for the user.
        self.assertContains(r, '<option value="" selected>Choose a brand</option>')

    def test_another_workspaces_brand_is_refused_and_marked(self) -> None:
        foreign = make_brand(self.other_workspace, name="Globex Secret Brand")
        self.client.force_login(self.alice)  # admin here, not a member of Globex
        r = self.client.post("/campaigns/new/", {**POST, "brand": foreign.pk})
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, "Select a valid choice")
        self.assertContains(r, 'aria-invalid="true"')
        self.assertNotContains(r, "Globex Secret Brand")
        self.assertFalse(Campaign.objects.filter(name="Spring").exists())

    def test_a_missing_brand_marks_the_brand_field(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post("/campaigns/new/", POST)
        self.assertEqual(r.status_code, 200)
        self.assertInHTML(
            '<ul class="errorlist" id="id_brand_error"><li>This field is required.</li></ul>',
            r.content.decode(),
        )
        self.assertRegex(
            r.content.decode(), r'<select name="brand"[^>]*aria-invalid="true"'
        )
        self.assertFalse(Campaign.objects.filter(name="Spring").exists())

    def test_a_single_brand_is_preselected_with_its_formats(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get("/campaigns/new/")
        self.assertContains(
            r, f'<option value="{self.brand.pk}" selected>Acme Coffee</option>'
        )
        for channel in self.brand.default_formats:
            self.assertRegex(
                r.content.decode(), rf'<input[^>]*value="{channel}"[^>]*checked'
            )

    def test_a_workspace_without_brands_is_sent_to_create_one(self) -> None:
        from tests.factories import make_member, make_workspace

        empty = make_workspace("Empty")
        editor = make_member(empty, Role.EDITOR, "solo")
        self.client.force_login(editor)
        r = self.client.get("/campaigns/new/")
        self.assertContains(r, "this workspace has none yet")
        self.assertContains(r, 'href="/brands/new/"')
        self.assertNotContains(r, '<form method="post" class="card"')
