"""Prompt template pages: list, create, read versions, history, diff, new version, try-it preview."""

from __future__ import annotations

from typing import Any

from campaigns.models import PromptTemplate
from campaigns.prompt_templates import prompt_template_create, template_version_create
from tests.base import StudioTestCase
from tests.factories import make_brand, make_template

HTMX = {"HX-Request": "true"}

CREATE_POST = {
    "name": "Hero shot",
    "kind": "text",
    "body": "The {product} from {ref:product} on a {surface}",
    "reference_slots": "product: product\nmood: style?",
    "parameters": '{"model": "flux-2-pro", "width": 1024, "height": 1024}',
    "change_note": "First version",
    "description": "",
}


class TemplatePagesBase(StudioTestCase):
    template: PromptTemplate

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.template = prompt_template_create(
            brand=cls.brand,
            campaign=cls.campaign,
            name="Hero shot",
            description="The autumn hero",
            kind="text",
            body="The {product} from {ref:product} on a {surface}",
            reference_slots=[{"name": "product", "role": "product", "required": True}],
            parameters={"model": "flux-2-pro", "width": 1024, "height": 768},
            change_note="First version",
            author=cls.eddie,
        )
        template_version_create(
            template=cls.template,
            kind="text",
            body="The {product} from {ref:product} on a {surface}, golden hour",
            reference_slots=[{"name": "product", "role": "product", "required": True}],
            parameters={"model": "flux-2-pro", "width": 1024, "height": 768},
            change_note="Warmer light",
            author=cls.alice,
        )

    def url(self, suffix: str = "") -> str:
        return f"/templates/{self.template.code}/{suffix}"

    def preview(self, user: Any, data: dict[str, str], **kwargs: Any) -> Any:
        self.client.force_login(user)
        return self.client.post(self.url("preview/"), data, **kwargs)


class TemplateListTests(TemplatePagesBase):
    def test_it_lists_the_workspace_templates_with_their_latest_version(self) -> None:
        make_template(make_brand(self.other_workspace), name="Globex secret")
        self.client.force_login(self.bob)
        r = self.client.get("/templates/")
        self.assertContains(r, "Hero shot")
        self.assertContains(r, "v2")
        self.assertNotContains(r, "Globex secret")
        self.assertNotContains(r, "New template")

    def test_it_filters_by_brand_and_returns_the_table_partial_for_htmx(self) -> None:
        other = make_brand(self.workspace, name="Other brand")
        make_template(other, name="Other template")
        self.client.force_login(self.eddie)
        r = self.client.get(
            "/templates/", {"brand": str(self.brand.code)}, headers=HTMX
        )
        self.assertContains(r, 'id="template-table"')
        self.assertContains(r, "Hero shot")
        self.assertNotContains(r, "Other template")
        self.assertNotContains(r, "<html")
        self.assertIn("HX-Request", r["Vary"])

    def test_an_unknown_brand_filter_shows_nothing(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get("/templates/", {"brand": "not-a-uuid"})
        self.assertEqual(r.status_code, 200)
        self.assertNotContains(r, "Hero shot")

    def test_it_requires_login(self) -> None:
        r = self.client.get("/templates/")
        self.assertEqual(r.status_code, 302)
        self.assertIn("/login/", r["Location"])


class TemplateCreateViewTests(TemplatePagesBase):
    def test_an_editor_creates_a_template(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            "/templates/new/",
            {**CREATE_POST, "brand": self.brand.pk, "campaign": self.campaign.pk},
        )
        template = PromptTemplate.objects.get(
            name="Hero shot", created_by=self.eddie, pk__gt=self.template.pk
        )
        self.assertRedirects(
            r, f"/templates/{template.code}/", fetch_redirect_response=False
        )
        version = template.latest_version
        self.assertEqual(version.number, 1)
        self.assertEqual(version.variables, ["product", "surface"])
        self.assertEqual(
            version.reference_slots,
            [
                {"name": "product", "role": "product", "required": True},
                {"name": "mood", "role": "style", "required": False},
            ],
        )
        self.assertEqual(
            version.parameters, {"model": "flux-2-pro", "width": 1024, "height": 1024}
        )

    def test_the_form_preselects_the_brand_and_offers_default_parameters(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get("/templates/new/", {"campaign": str(self.campaign.code)})
        self.assertContains(r, f'<option value="{self.brand.pk}" selected>')
        self.assertContains(r, f'<option value="{self.campaign.pk}" selected>')
        self.assertContains(r, "flux-2-pro")

    def test_an_invalid_body_re_renders_the_form_with_the_error(self) -> None:
        self.client.force_login(self.eddie)
        before = PromptTemplate.objects.count()
        r = self.client.post(
            "/templates/new/",
            {**CREATE_POST, "brand": self.brand.pk, "body": "A {product"},
        )
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, "is never closed")
        self.assertContains(r, "A {product")
        self.assertEqual(PromptTemplate.objects.count(), before)

    def test_slot_lines_and_parameters_are_checked(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            "/templates/new/",
            {
                **CREATE_POST,
                "brand": self.brand.pk,
                "reference_slots": "hat: costume",
                "parameters": "{oops",
            },
        )
        self.assertContains(r, "Line 1: “costume” is not a reference role")
        self.assertContains(r, "Invalid JSON at line 1, column 2")

    def test_invalid_json_prompt_is_reported_with_its_position(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            "/templates/new/",
            {
                **CREATE_POST,
                "brand": self.brand.pk,
                "kind": "json",
                "body": '{"scene": }',
            },
        )
        self.assertContains(r, "Invalid JSON at line 1, column 11")

    def test_a_campaign_of_another_brand_is_refused(self) -> None:
        other_campaign_brand = make_brand(self.workspace, name="Other brand")
        self.client.force_login(self.eddie)
        r = self.client.post(
            "/templates/new/",
            {
                **CREATE_POST,
                "brand": other_campaign_brand.pk,
                "campaign": self.campaign.pk,
            },
        )
        self.assertContains(r, "belongs to Acme Coffee, not Other brand")

    def test_another_workspaces_brand_cannot_be_chosen(self) -> None:
        foreign = make_brand(self.other_workspace, name="Globex brand")
        self.client.force_login(self.eddie)
        r = self.client.post("/templates/new/", {**CREATE_POST, "brand": foreign.pk})
        self.assertContains(r, "Select a valid choice")
        self.assertFalse(PromptTemplate.objects.filter(brand=foreign).exists())

    def test_a_viewer_cannot_create_templates(self) -> None:
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get("/templates/new/").status_code, 403)
        r = self.client.post("/templates/new/", {**CREATE_POST, "brand": self.brand.pk})
        self.assertEqual(r.status_code, 403)
        self.assertEqual(PromptTemplate.objects.count(), 1)


class TemplateDetailTests(TemplatePagesBase):
    def test_a_viewer_reads_the_latest_version(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(self.url())
        self.assertContains(r, "golden hour")
        self.assertContains(r, '<mark class="var">{product}</mark>', html=False)
        self.assertContains(r, '<mark class="ref">{ref:product}</mark>', html=False)
        self.assertContains(r, "Warmer light")
        self.assertContains(r, 'name="var_surface"')
        self.assertNotContains(r, "Save new version")

    def test_an_editor_sees_the_new_version_button(self) -> None:
        self.client.force_login(self.eddie)
        self.assertContains(self.client.get(self.url()), "Save new version")

    def test_an_older_version_stays_readable(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(self.url("versions/1/"))
        self.assertContains(r, "This is version 1, kept as it was saved")
        self.assertContains(
            r, 'on a <mark class="var">{surface}</mark></pre>', html=False
        )
        self.assertNotContains(r, "golden hour</pre>")

    def test_an_unknown_version_is_404(self) -> None:
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get(self.url("versions/9/")).status_code, 404)

    def test_the_history_lists_author_time_and_note(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(self.url("versions/"))
        self.assertContains(r, "Warmer light")
        self.assertContains(r, "First version")
        self.assertContains(r, "alice")
        self.assertContains(r, "eddie")
        self.assertContains(r, self.url("versions/1/"))


class TemplatePreviewTests(TemplatePagesBase):
    def test_a_viewer_previews_the_exact_prompt_as_a_partial(self) -> None:
        r = self.preview(
            self.bob,
            {"var_product": "mug", "var_surface": "oak table", "use_brand": "on"},
            headers=HTMX,
        )
        self.assertEqual(r.status_code, 200)
        self.assertNotContains(r, "<html")
        self.assertContains(r, 'id="preview-result"')
        self.assertContains(r, 'title="value of {product}">mug</mark>', html=False)
        self.assertContains(
            r, '<mark class="ref" title="slot product">image 1</mark>', html=False
        )
        self.assertContains(r, "Brand palette: #1A1A2E (Midnight), #FF6B6B (Coral).")
        self.assertContains(r, "Images are sent in this order")

    def test_missing_values_are_named(self) -> None:
        r = self.preview(
            self.bob, {"var_product": "mug", "var_surface": ""}, headers=HTMX
        )
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, "The value for {surface} is empty.")

    def test_an_avoided_word_is_flagged_not_negated(self) -> None:
        r = self.preview(
            self.bob,
            {"var_product": "cheap mug", "var_surface": "table", "use_brand": "on"},
            headers=HTMX,
        )
        self.assertContains(r, "A batch would refuse to send this prompt")
        self.assertContains(r, "“cheap” is on the brand&#x27;s words to avoid")
        self.assertContains(r, 'class="var avoid"')
        self.assertNotContains(r, "no cheap")

    def test_the_brand_additions_can_be_left_out_but_words_are_still_checked(
        self,
    ) -> None:
        r = self.preview(
            self.bob, {"var_product": "cheap mug", "var_surface": "table"}, headers=HTMX
        )
        self.assertNotContains(r, "Brand palette")
        self.assertContains(r, "A batch would refuse to send this prompt")

    def test_an_older_version_can_be_previewed(self) -> None:
        r = self.preview(
            self.bob,
            {"version": "1", "var_product": "mug", "var_surface": "table"},
            headers=HTMX,
        )
        self.assertContains(r, "on a ")
        self.assertNotContains(r, "golden hour")

    def test_without_htmx_it_renders_the_whole_page(self) -> None:
        r = self.preview(self.bob, {"var_product": "mug", "var_surface": "table"})
        self.assertContains(r, "<html")
        self.assertContains(r, 'id="preview-result"')
        self.assertContains(r, 'value="mug"')

    def test_preview_only_answers_post(self) -> None:
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get(self.url("preview/")).status_code, 405)


class TemplateNewVersionViewTests(TemplatePagesBase):
    def post_data(self, **overrides: str) -> dict[str, str]:
        data = {
            "kind": "text",
            "body": "The {product} from {ref:product} on a {surface}, blue hour",
            "reference_slots": "product: product",
            "parameters": '{"model": "flux-2-pro", "width": 1024, "height": 768}',
            "change_note": "Cooler light",
            "based_on": "2",
        }
        data.update(overrides)
        return data

    def test_the_form_is_prefilled_from_the_latest_version(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get(self.url("versions/new/"))
        self.assertContains(r, "on a {surface}, golden hour</textarea>", html=False)
        self.assertContains(r, "product: product</textarea>", html=False)
        self.assertContains(r, 'name="based_on" value="2"', html=False)
        self.assertContains(r, "Save version 3")

    def test_the_form_can_start_from_an_older_version(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.get(self.url("versions/new/"), {"from": "1"})
        self.assertContains(r, "on a {surface}</textarea>", html=False)
        self.assertContains(r, "Restore version 1")

    def test_saving_makes_version_3(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(self.url("versions/new/"), self.post_data())
        self.assertRedirects(r, self.url("versions/3/"), fetch_redirect_response=False)
        version = self.template.versions.get(number=3)
        self.assertEqual(
            (version.author, version.change_note), (self.eddie, "Cooler light")
        )

    def test_an_unchanged_version_is_refused(self) -> None:
        self.client.force_login(self.eddie)
        body = "The {product} from {ref:product} on a {surface}, golden hour"
        r = self.client.post(self.url("versions/new/"), self.post_data(body=body))
        self.assertContains(r, "Nothing changed since version 2")
        self.assertEqual(self.template.versions.count(), 2)

    def test_a_stale_form_is_refused(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(self.url("versions/new/"), self.post_data(based_on="1"))
        self.assertContains(
            r, "Version 2 was saved by alice after you opened version 1"
        )
        self.assertEqual(self.template.versions.count(), 2)

    def test_a_viewer_cannot_save_versions(self) -> None:
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get(self.url("versions/new/")).status_code, 403)
        self.assertEqual(
            self.client.post(self.url("versions/new/"), self.post_data()).status_code,
            403,
        )
        self.assertEqual(self.template.versions.count(), 2)


class TemplateDiffViewTests(TemplatePagesBase):
    def test_by_default_it_compares_the_latest_version_with_the_previous(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(self.url("diff/"))
        self.assertContains(r, '<div class="del">', html=False)
        self.assertContains(
            r, "-The {product} from {ref:product} on a {surface}</div>", html=False
        )
        self.assertContains(
            r,
            "+The {product} from {ref:product} on a {surface}<ins>, golden hour</ins></div>",
            html=False,
        )
        self.assertContains(r, "Unchanged: Reference slots, Parameters, Kind.")

    def test_any_two_versions_can_be_compared_and_htmx_gets_the_partial(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(self.url("diff/"), {"from": "2", "to": "1"}, headers=HTMX)
        self.assertNotContains(r, "<html")
        self.assertContains(r, 'id="diff-result"')
        self.assertContains(
            r,
            "-The {product} from {ref:product} on a {surface}<del>, golden hour</del></div>",
            html=False,
        )

    def test_a_changed_line_marks_the_changed_words_not_the_whole_line(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(self.url("diff/"))
        # v1 -> v2 appended ", golden hour" to the one-line prompt: only that is marked.
        self.assertContains(
            r,
            "+The {product} from {ref:product} on a {surface}<ins>, golden hour</ins></div>",
            html=False,
        )
        self.assertContains(
            r, "-The {product} from {ref:product} on a {surface}</div>", html=False
        )
        self.assertNotContains(r, "<del>")

    def test_the_first_version_diffs_against_nothing(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(self.url("diff/"), {"to": "1"})
        self.assertContains(r, "v1 is the first version")

    def test_an_unknown_version_is_404(self) -> None:
        self.client.force_login(self.bob)
        self.assertEqual(
            self.client.get(self.url("diff/"), {"from": "7"}).status_code, 404
        )
        self.assertEqual(
            self.client.get(self.url("diff/"), {"to": "x"}).status_code, 404
        )


class TemplateTenancyTests(TemplatePagesBase):
    def test_an_outsider_gets_404_on_every_template_url(self) -> None:
        self.client.force_login(self.carol)  # admin, but of another workspace
        for suffix in [
            "",
            "versions/",
            "versions/1/",
            "versions/new/",
            "diff/",
            "diff/?from=1&to=2",
        ]:
            self.assertEqual(self.client.get(self.url(suffix)).status_code, 404, suffix)
        for suffix in ["versions/new/", "preview/"]:
            self.assertEqual(
                self.client.post(
                    self.url(suffix), {"body": "x", "var_product": "x"}
                ).status_code,
                404,
                suffix,
            )
        self.assertEqual(self.template.versions.count(), 2)

    def test_an_outsider_does_not_see_the_template_in_lists(self) -> None:
        self.client.force_login(self.carol)
        self.assertNotContains(self.client.get("/templates/"), "Hero shot")

    def test_anonymous_users_are_sent_to_login(self) -> None:
        for suffix in ["", "versions/", "diff/"]:
            r = self.client.get(self.url(suffix))
            self.assertEqual(r.status_code, 302, suffix)
        self.assertEqual(self.client.post(self.url("preview/")).status_code, 302)
