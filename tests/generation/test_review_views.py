"""Review over HTTP: card actions, bulk actions, roles enforced by the server, the asset page,
compare, approval progress on campaign and template pages, and the image files."""

from __future__ import annotations

import re
import shutil
import tempfile

from django.test import override_settings
from django.urls import reverse

from campaigns.models import TemplateVersion
from generation import review
from generation.models import Asset, Comment, ReviewEvent, ReviewStatus
from tests.base import StudioTestCase
from tests.factories import (
    image_bytes,
    make_asset,
    make_brand,
    make_campaign,
    make_template,
)

S = ReviewStatus
HTMX = {"HX-Request": "true"}


def url(name: str, asset: Asset) -> str:
    return reverse(f"generation:{name}", args=[asset.code])


class CardActionTests(StudioTestCase):
    def setUp(self) -> None:
        self.asset = make_asset(self.campaign)

    def test_an_approver_approves_and_gets_the_card_partial_back(self) -> None:
        self.client.force_login(self.alex)
        r = self.client.post(
            url("asset-review", self.asset), {"status": "approved"}, headers=HTMX
        )
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, f'id="asset-{self.asset.code}"')
        self.assertContains(r, "review-approved")
        self.assertNotContains(r, "<html")
        # The status line updates out of band.
        self.assertContains(r, 'id="review-live" hx-swap-oob="innerHTML"')
        self.assertIn("review-changed", r["HX-Trigger"])
        self.asset.refresh_from_db()
        self.assertEqual(self.asset.review_status, S.APPROVED)

    def test_the_status_chips_refresh_themselves_after_a_review(self) -> None:
        review.asset_review(asset=self.asset, actor=self.alex, to_status=S.APPROVED)
        self.client.force_login(self.bob)
        gallery_url = reverse("generation:campaign-gallery", args=[self.campaign.code])
        r = self.client.get(gallery_url, headers={**HTMX, "HX-Target": "status-chips"})
        html = r.content.decode()
        self.assertTrue(html.lstrip().startswith('<nav id="status-chips"'))
        self.assertIn('hx-trigger="review-changed from:body"', html)
        self.assertIn("Approved <b>1</b>", html)
        self.assertNotIn("asset-card", html)

    def test_a_viewer_gets_403_for_a_crafted_post_and_nothing_changes(self) -> None:
        self.client.force_login(self.bob)
        for status in S.values:
            r = self.client.post(
                url("asset-review", self.asset), {"status": status}, headers=HTMX
            )
            self.assertEqual(r.status_code, 403, status)
        for name in ("asset-star", "asset-tags", "asset-comment", "asset-focal-point"):
            r = self.client.post(
                url(name, self.asset), {"add": "x", "body": "hi", "x": 1, "y": 2}
            )
            self.assertEqual(r.status_code, 403, name)
        self.asset.refresh_from_db()
        self.assertEqual(self.asset.review_status, S.PENDING)
        self.assertFalse(ReviewEvent.objects.exists())
        self.assertFalse(Comment.objects.exists())

    def test_a_viewer_sees_no_review_buttons(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(
            reverse("generation:campaign-gallery", args=[self.campaign.code])
        )
        self.assertContains(r, f'id="asset-{self.asset.code}"')
        self.assertNotContains(r, 'data-key="a"')
        self.assertNotContains(r, 'value="approve"')

    def test_an_editor_requests_changes_but_cannot_approve(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(url("asset-review", self.asset), {"status": "approved"})
        self.assertEqual(r.status_code, 403)
        r = self.client.post(
            url("asset-review", self.asset),
            {"status": "changes_requested", "comment": "Bigger logo"},
            headers=HTMX,
        )
        self.assertEqual(r.status_code, 200)
        event = ReviewEvent.objects.get()
        self.assertEqual(
            (event.to_status, event.comment), (S.CHANGES_REQUESTED, "Bigger logo")
        )
        # Editors get the card without approve/reject buttons.
        self.assertNotContains(r, 'data-key="a"')
        self.assertContains(r, 'data-key="c"')

    def test_without_htmx_a_decision_redirects_back(self) -> None:
        self.client.force_login(self.alice)
        back = (
            reverse("generation:campaign-gallery", args=[self.campaign.code])
            + "?status=pending"
        )
        r = self.client.post(
            url("asset-review", self.asset), {"status": "rejected", "next": back}
        )
        self.assertRedirects(r, back, fetch_redirect_response=False)
        r = self.client.post(
            url("asset-review", self.asset),
            {"status": "approved", "next": "https://evil.example/"},
        )
        self.assertRedirects(
            r, url("asset-detail", self.asset), fetch_redirect_response=False
        )

    def test_star_toggles_and_tags_are_added(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            url("asset-star", self.asset), {"starred": "1"}, headers=HTMX
        )
        self.assertContains(r, "is-starred")
        self.client.post(url("asset-star", self.asset), headers=HTMX)  # toggle: off
        self.asset.refresh_from_db()
        self.assertFalse(self.asset.starred)
        r = self.client.post(
            url("asset-tags", self.asset),
            {"add": "Hero, winner"},
            headers={**HTMX, "HX-Target": "asset-tags"},
        )
        self.assertContains(r, 'id="asset-tags"')
        self.assertEqual(
            sorted(self.asset.tags.values_list("name", flat=True)), ["hero", "winner"]
        )
        self.client.post(url("asset-tags", self.asset), {"remove": "hero"})
        self.assertEqual(
            list(self.asset.tags.values_list("name", flat=True)), ["winner"]
        )

    def test_comments_come_back_as_the_timeline_partial(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            url("asset-comment", self.asset),
            {"body": "Headline reads well"},
            headers=HTMX,
        )
        self.assertContains(r, 'id="asset-timeline"')
        self.assertContains(r, "Headline reads well")
        self.assertContains(r, "eddie")
        self.assertNotContains(r, "<html")
        r = self.client.post(
            url("asset-comment", self.asset), {"body": ""}, headers=HTMX
        )
        self.assertContains(r, "Write something first.")

    def test_focal_point_form(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post(
            url("asset-focal-point", self.asset), {"x": "25", "y": "60"}
        )
        self.assertRedirects(
            r, url("asset-detail", self.asset), fetch_redirect_response=False
        )
        self.asset.refresh_from_db()
        self.assertAlmostEqual(self.asset.focal_x or 0, 0.25)
        self.assertAlmostEqual(self.asset.focal_y or 0, 0.60)


class BulkActionTests(StudioTestCase):
    def setUp(self) -> None:
        self.assets = [make_asset(self.campaign) for _ in range(3)]
        self.codes = [str(a.code) for a in self.assets]

    def test_bulk_approve_answers_every_changed_card_out_of_band(self) -> None:
        self.client.force_login(self.alex)
        r = self.client.post(
            reverse("generation:asset-bulk"),
            {"action": "approve", "asset": self.codes[:2], "comment": "Both fine"},
            headers=HTMX,
        )
        self.assertEqual(r.status_code, 200)
        body = r.content.decode()
        for code in self.codes[:2]:
            self.assertIn(f'id="asset-{code}"', body)
        self.assertEqual(body.count('hx-swap-oob="true"'), 2)
        self.assertIn("Approved: 2 of 2 images.", body)
        self.assertEqual(
            list(Asset.objects.filter(review_status=S.APPROVED).order_by("pk")),
            self.assets[:2],
        )
        self.assertEqual(
            set(ReviewEvent.objects.values_list("comment", flat=True)), {"Both fine"}
        )

    def test_bulk_star_tag_and_untag(self) -> None:
        self.client.force_login(self.eddie)
        bulk = reverse("generation:asset-bulk")
        self.client.post(bulk, {"action": "star", "asset": self.codes}, headers=HTMX)
        self.client.post(
            bulk, {"action": "tag", "tag": "Summer", "asset": self.codes}, headers=HTMX
        )
        self.client.post(
            bulk,
            {"action": "untag", "tag": "summer", "asset": self.codes[:1]},
            headers=HTMX,
        )
        self.assertEqual(Asset.objects.filter(starred=True).count(), 3)
        self.assertEqual(Asset.tags.through.objects.count(), 2)

    def test_a_viewer_gets_403_for_bulk_actions(self) -> None:
        self.client.force_login(self.bob)
        for action in ("approve", "reject", "changes", "star", "tag"):
            r = self.client.post(
                reverse("generation:asset-bulk"),
                {"action": action, "asset": self.codes, "tag": "x"},
                headers=HTMX,
            )
            self.assertEqual(r.status_code, 403, action)
        self.assertFalse(ReviewEvent.objects.exists())

    def test_an_empty_selection_or_foreign_codes_change_nothing(self) -> None:
        other = make_asset(make_campaign(make_brand(self.other_workspace)))
        self.client.force_login(self.alice)
        r = self.client.post(
            reverse("generation:asset-bulk"), {"action": "approve"}, headers=HTMX
        )
        self.assertContains(r, "Select images first")
        r = self.client.post(
            reverse("generation:asset-bulk"),
            {"action": "approve", "asset": [str(other.code), "not-a-uuid"]},
            headers=HTMX,
        )
        self.assertContains(r, "Approved: 0 of 0 images.")
        other.refresh_from_db()
        self.assertEqual(other.review_status, S.PENDING)

    def test_without_htmx_bulk_redirects_back_with_a_message(self) -> None:
        self.client.force_login(self.alice)
        back = reverse("generation:campaign-gallery", args=[self.campaign.code])
        r = self.client.post(
            reverse("generation:asset-bulk"),
            {"action": "reject", "asset": self.codes, "next": back},
            follow=True,
        )
        self.assertContains(r, "Rejected: 3 of 3 images.")
        self.assertEqual(Asset.objects.filter(review_status=S.REJECTED).count(), 3)


class CompareTests(StudioTestCase):
    def test_two_to_four_assets_side_by_side_with_the_differences_marked(self) -> None:
        template = make_template(self.brand, body="{headline} on a {surface}")
        version = TemplateVersion.objects.get(template=template)
        a = make_asset(
            self.campaign,
            prompt="A red bag on a table, headline Half price",
            seed=7,
            width=1024,
            height=1024,
            template_version=version,
            variables={"headline": "Half price"},
        )
        b = make_asset(
            self.campaign,
            prompt="A red bag on a table, headline Two for one",
            seed=7,
            model="flux-2-flex",
            width=768,
            height=1344,
            template_version=version,
            variables={"headline": "Two for one"},
        )
        self.client.force_login(self.bob)
        r = self.client.get(
            reverse("generation:asset-compare") + f"?asset={a.code}&asset={b.code}"
        )
        self.assertEqual(r.status_code, 200)
        html = r.content.decode()
        self.assertIn(
            "headline <del>Half price</del><ins>Two for one</ins></pre>", html
        )
        self.assertIn('<mark class="differs">flux-2-flex</mark>', html)
        self.assertIn('<mark class="differs">Two for one</mark>', html)
        self.assertNotIn('<mark class="differs">7</mark>', html)  # same seed
        # Same scale: 1344 px high → 560 px, so 1024 → 426.67 and 768 → 320.
        self.assertIn('width="427" height="427"', html)
        self.assertIn('width="320" height="560"', html)

    def test_the_wrong_number_of_assets_is_a_400_and_foreign_ones_a_404(self) -> None:
        a = make_asset(self.campaign)
        other = make_asset(make_campaign(make_brand(self.other_workspace)))
        self.client.force_login(self.alice)
        compare = reverse("generation:asset-compare")
        self.assertEqual(self.client.get(f"{compare}?asset={a.code}").status_code, 400)
        five = "&".join(f"asset={make_asset(self.campaign).code}" for _ in range(5))
        self.assertEqual(self.client.get(f"{compare}?{five}").status_code, 400)
        self.assertEqual(
            self.client.get(f"{compare}?asset={a.code}&asset={other.code}").status_code,
            404,
        )
        self.assertEqual(
            self.client.get(f"{compare}?asset=nope&asset=nah").status_code, 404
        )

    def test_the_gallery_selection_posts_and_lands_on_a_shareable_url(self) -> None:
        a, b = make_asset(self.campaign), make_asset(self.campaign)
        self.client.force_login(self.bob)
        r = self.client.post(
            reverse("generation:asset-compare"), {"asset": [str(a.code), str(b.code)]}
        )
        self.assertRedirects(
            r,
            reverse("generation:asset-compare") + f"?asset={a.code}&asset={b.code}",
            fetch_redirect_response=False,
        )


class AssetPageTests(StudioTestCase):
    def test_the_asset_page_shows_the_request_lineage_and_trail(self) -> None:
        template = make_template(self.brand, body="A {product} on a {surface}")
        v1 = TemplateVersion.objects.get(template=template)
        from campaigns.prompt_templates import template_version_create

        v2 = template_version_create(
            template=template,
            kind="text",
            body="A {product} on a {surface}, golden hour",
            reference_slots=[],
            parameters={},
            change_note="light",
            author=self.alice,
        )
        parent = make_asset(self.campaign, template_version=v1)
        asset = make_asset(
            self.campaign,
            template_version=v2,
            prompt="A bag on a table, golden hour",
            variables={"product": "bag", "surface": "table"},
            references=[
                {"code": "00000000-0000-0000-0000-000000000001", "role": "product"}
            ],
            params={"guidance": 3.5},
            seed=42,
            parent=parent.generation,
            changes={"surface": {"from": "desk", "to": "table"}},
            actual_cost="0.0450",
        )
        child = make_asset(
            self.campaign,
            parent=asset.generation,
            changes={"product": {"from": "bag", "to": "shoe"}},
        )
        review.asset_review(
            asset=asset, actor=self.alex, to_status=S.REJECTED, comment="Too dark"
        )
        review.comment_add(asset=asset, author=self.eddie, body="Try a warmer light")
        self.client.force_login(self.bob)
        r = self.client.get(url("asset-detail", asset))
        self.assertEqual(r.status_code, 200)
        for text in (
            "A bag on a table, golden hour",
            "guidance",
            "42",
            "{product}",
            "image 1",
            "product",
            "$0.0450",
            f"{template.name} v2",
            "?from=1&amp;to=2",
            "Too dark",
            "Try a warmer light",
            f'href="{url("asset-detail", parent)}"',
            f'href="{url("asset-detail", child)}"',
            "shoe",
        ):
            self.assertContains(r, text)
        self.assertContains(r, 'id="zoom-200"')
        self.assertNotContains(r, 'name="status" value="approved"')  # bob is a viewer
        # Remix makes a batch: offered to editors, not to viewers (issue 18: no action the
        # server would refuse).
        remix = f"{reverse('generation:batch-create')}?from={asset.generation.code}"
        self.assertNotContains(r, remix)
        self.client.force_login(self.eddie)
        self.assertContains(self.client.get(url("asset-detail", asset)), remix)

    def test_a_json_prompt_is_pretty_printed(self) -> None:
        asset = make_asset(self.campaign, prompt='{"scene":"desk","subjects":["bag"]}')
        self.client.force_login(self.alice)
        r = self.client.get(url("asset-detail", asset))
        self.assertContains(r, "JSON prompt")
        self.assertContains(r, "{\n  &quot;scene&quot;: &quot;desk&quot;")


class ProgressTests(StudioTestCase):
    def test_the_campaign_page_shows_its_approval_progress(self) -> None:
        assets = [make_asset(self.campaign) for _ in range(4)]
        review.asset_review(asset=assets[0], actor=self.alex, to_status=S.APPROVED)
        review.asset_review(asset=assets[1], actor=self.alex, to_status=S.REJECTED)
        self.client.force_login(self.bob)
        r = self.client.get(
            reverse("campaigns:campaign-detail", args=[self.campaign.code])
        )
        self.assertContains(r, "25% approved")
        self.assertContains(r, "2 of 4 images decided")
        self.assertContains(r, 'class="seg-approved" x="0.000" y="0" width="25.000"')
        self.assertContains(
            r, reverse("generation:campaign-gallery", args=[self.campaign.code])
        )

    def test_the_template_pages_show_approvals_per_version(self) -> None:
        template = make_template(self.brand)
        v1 = TemplateVersion.objects.get(template=template)
        a = make_asset(self.campaign, template_version=v1)
        make_asset(self.campaign, template_version=v1)
        review.asset_review(asset=a, actor=self.alex, to_status=S.APPROVED)
        self.client.force_login(self.bob)
        r = self.client.get(
            reverse("campaigns:template-versions", args=[template.code])
        )
        self.assertContains(r, "<strong>1</strong> of 2 (50%)")
        r = self.client.get(reverse("campaigns:template-detail", args=[template.code]))
        self.assertContains(r, "1 of 2</strong> images from v1 approved")


@override_settings(
    STORAGES={
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }
)
class FileTests(StudioTestCase):
    def setUp(self) -> None:
        self.media = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.media, True)
        override = override_settings(MEDIA_ROOT=self.media)
        override.enable()
        self.addCleanup(override.disable)
        self.asset = make_asset(self.campaign, image=image_bytes(size=(800, 600)))

    def test_thumbnails_are_webp_and_privately_cached_for_long(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(url("asset-thumbnail", self.asset))
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r["Content-Type"], "image/webp")
        cache = r["Cache-Control"]
        self.assertIn("private", cache)
        self.assertRegex(cache, r"max-age=3153\d{4}")
        self.assertTrue(b"".join(r.streaming_content).startswith(b"RIFF"))
        r = self.client.get(url("asset-image", self.asset) + "?download=1")
        self.assertIn("attachment", r["Content-Disposition"])

    def test_an_outsider_gets_404_for_the_files(self) -> None:
        self.client.force_login(self.carol)
        for name in ("asset-thumbnail", "asset-image"):
            self.assertEqual(self.client.get(url(name, self.asset)).status_code, 404)

    def test_the_card_uses_a_srcset_suited_to_the_grid(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(
            reverse("generation:campaign-gallery", args=[self.campaign.code])
        )
        html = r.content.decode()
        match = re.search(r'srcset="([^"]+)"', html)
        assert match
        # The 800×600 image's thumbnail is 512 wide.
        self.assertIn(" 512w", match.group(1))
        self.assertIn(" 800w", match.group(1))
        self.assertIn('sizes="(max-width: 760px) 46vw, 232px"', html)
        self.assertIn('width="512" height="384"', html)
