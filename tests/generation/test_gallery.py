"""The gallery: scopes, filters and sort kept in the URL, keyset pages, htmx partials."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from unittest import mock

from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from campaigns.models import TemplateVersion
from generation import review
from generation.gallery import queries as gallery
from generation.models import Asset, ReviewStatus
from tests.base import StudioTestCase
from tests.factories import (
    make_asset,
    make_brand,
    make_campaign,
    make_template,
)
from tests.generation.test_engine_state import EngineTestCase

S = ReviewStatus
HTMX = {"HX-Request": "true"}


def codes_in(html: str) -> list[str]:
    return re.findall(r'<article id="asset-([0-9a-f-]{36})"', html)


class FilterTests(StudioTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        template = make_template(cls.brand, body="{headline} with {product}")
        cls.template = template
        cls.v1 = TemplateVersion.objects.get(template=template)
        from campaigns.prompt_templates import template_version_create

        cls.v2 = template_version_create(
            template=template,
            kind="text",
            body="{headline} with {product}, golden hour",
            reference_slots=[],
            parameters={},
            change_note="",
            author=cls.alice,
        )
        ref = "11111111-2222-3333-4444-555555555555"
        cls.ref = ref
        cls.a = make_asset(
            cls.campaign,
            backend="bfl",
            model="flux-2-pro",
            template_version=cls.v1,
            variables={"headline": "Half price", "product": "bag"},
            references=[{"code": ref, "role": "product"}],
        )
        cls.b = make_asset(
            cls.campaign,
            backend="fal",
            model="flux-2-flex",
            template_version=cls.v2,
            variables={"headline": "Two for one", "product": "bag"},
            estimated_cost=Decimal("0.0600"),
        )
        cls.c = make_asset(
            cls.campaign,
            backend="preview",
            model="flux-2-pro",
            template_version=cls.v2,
            variables={"headline": "Half price", "product": "shoe"},
            starred=True,
            estimated_cost=Decimal("0.0100"),
        )
        review.asset_review(asset=cls.a, actor=cls.alex, to_status=S.APPROVED)
        review.asset_review(asset=cls.b, actor=cls.alex, to_status=S.REJECTED)
        review.asset_tag(asset=cls.c, actor=cls.eddie, add=["hero"])
        # Another campaign of the same brand, and another workspace: never in this gallery.
        cls.elsewhere = make_asset(make_campaign(cls.brand, name="Spring"))
        cls.outside = make_asset(make_campaign(make_brand(cls.other_workspace)))

    def gallery(self, query: str = "", user: object = None, **headers: str) -> str:
        self.client.force_login(user or self.bob)
        r = self.client.get(
            reverse("generation:campaign-gallery", args=[self.campaign.code]) + query,
            headers=headers,
        )
        self.assertEqual(r.status_code, 200)
        return r.content.decode()

    def assertShows(self, query: str, *assets: Asset) -> None:
        self.assertEqual(
            codes_in(self.gallery(query)), [str(a.code) for a in assets], query
        )

    def test_the_campaign_gallery_shows_its_assets_newest_first(self) -> None:
        self.assertShows("", self.c, self.b, self.a)

    def test_each_filter_narrows_the_gallery(self) -> None:
        self.assertShows("?status=approved", self.a)
        self.assertShows("?status=pending", self.c)
        self.assertShows("?backend=fal", self.b)
        self.assertShows("?model=flux-2-pro", self.c, self.a)
        self.assertShows(f"?template={self.template.code}", self.c, self.b, self.a)
        self.assertShows(f"?template={self.template.code}&version=2", self.c, self.b)
        self.assertShows("?var=headline%3DHalf+price", self.c, self.a)
        self.assertShows("?var=headline%3DHalf+price&var=product%3Dbag", self.a)
        self.assertShows(f"?ref={self.ref}", self.a)
        self.assertShows("?tag=hero", self.c)
        self.assertShows("?starred=1", self.c)
        self.assertShows("?status=rejected&backend=fal&model=flux-2-flex", self.b)

    def test_the_date_range_filter(self) -> None:
        Asset.objects.filter(pk=self.a.pk).update(
            created_at=timezone.now() - dt.timedelta(days=10)
        )
        today = timezone.localdate()
        self.assertShows(f"?since={today.isoformat()}", self.c, self.b)
        before = (today - dt.timedelta(days=5)).isoformat()
        self.assertShows(f"?until={before}", self.a)

    def test_sorts(self) -> None:
        self.assertShows("?sort=oldest", self.a, self.b, self.c)
        self.assertShows("?sort=cost", self.b, self.a, self.c)
        self.assertShows("?sort=cheapest", self.c, self.a, self.b)

    def test_bad_values_are_ignored_not_errors(self) -> None:
        self.assertShows(
            "?status=great&version=x&since=yesterday&ref=nope&var=noequals&sort=best",
            self.c,
            self.b,
            self.a,
        )

    def test_the_brand_and_workspace_galleries(self) -> None:
        self.client.force_login(self.bob)
        html = self.client.get(
            reverse("generation:brand-gallery", args=[self.brand.code])
        ).content.decode()
        self.assertEqual(len(codes_in(html)), 4)
        html = self.client.get(reverse("generation:gallery")).content.decode()
        self.assertEqual(len(codes_in(html)), 4)
        self.assertNotIn(str(self.outside.code), html)

    def test_the_status_chips_count_with_the_other_filters_applied(self) -> None:
        html = self.gallery("?model=flux-2-pro")
        self.assertIn("All <b>2</b>", html)
        self.assertIn("Approved <b>1</b>", html)
        self.assertIn("Pending <b>1</b>", html)
        self.assertIn("?status=approved&amp;model=flux-2-pro", html)

    def test_filters_render_back_into_the_form(self) -> None:
        html = self.gallery(
            f"?status=approved&starred=1&var=headline%3DHalf+price&template={self.template.code}"
        )
        self.assertIn('<option value="approved" selected>', html)
        self.assertIn('name="starred" value="1" checked', html)
        self.assertIn('value="headline=Half price"', html)
        self.assertIn(f'<option value="{self.template.code}" selected>', html)

    def test_an_htmx_filter_change_answers_the_results_and_pushes_a_clean_url(
        self,
    ) -> None:
        self.client.force_login(self.bob)
        base = reverse("generation:campaign-gallery", args=[self.campaign.code])
        r = self.client.get(
            base + "?status=approved&backend=&model=&var=&sort=newest&since=",
            headers={**HTMX, "HX-Target": "gallery-results"},
        )
        html = r.content.decode()
        self.assertTrue(html.lstrip().startswith('<div id="gallery-results">'))
        self.assertNotIn("<html", html)
        self.assertEqual(codes_in(html), [str(self.a.code)])
        self.assertEqual(r["HX-Push-Url"], base + "?status=approved")
        self.assertIn("HX-Request", r["Vary"])

    def test_the_canonical_query_string_round_trips(self) -> None:
        query = QueryDict(
            f"status=approved&backend=bfl&model=flux-2-pro&template={self.template.code}"
            "&version=2&var=headline%3DHalf+price&ref="
            + self.ref
            + "&tag=hero&starred=1&since=2026-01-01&until=2026-02-01&sort=oldest"
        )
        filters = gallery.Filters.from_query(query)
        again = gallery.Filters.from_query(QueryDict(filters.query_string()[1:]))
        self.assertEqual(filters, again)
        self.assertTrue(filters.active)
        self.assertEqual(gallery.Filters.from_query(QueryDict("")).query_string(), "")


class KeysetPageTests(StudioTestCase):
    def test_pages_walk_every_asset_once_in_every_sort(self) -> None:
        now = timezone.now()
        assets = [make_asset(self.campaign) for _ in range(7)]
        # Ties in the sort key: the id breaks them, so nothing is skipped or repeated.
        for i, asset in enumerate(assets):
            Asset.objects.filter(pk=asset.pk).update(
                created_at=now - dt.timedelta(seconds=i // 3)
            )
            asset.generation.__class__.objects.filter(pk=asset.generation_id).update(
                estimated_cost=Decimal("0.01") * (i % 2)
            )
        scope = gallery.Scope(workspace=self.workspace, campaign=self.campaign)
        for sort in gallery.SORTS:
            with self.subTest(sort=sort):
                filters = gallery.Filters(sort=sort)
                seen, after = [], ""
                while True:
                    page = gallery.gallery_page(
                        scope=scope, filters=filters, after=after, size=3
                    )
                    seen += [a.pk for a in page.assets]
                    if not page.has_next:
                        break
                    after = page.next_cursor or ""
                self.assertEqual(sorted(seen), sorted(a.pk for a in assets))
                self.assertEqual(len(seen), len(set(seen)))

    def test_the_sentinel_fetches_the_next_page_as_cards_only(self) -> None:
        assets = [make_asset(self.campaign) for _ in range(5)]
        self.client.force_login(self.alice)
        base = reverse("generation:campaign-gallery", args=[self.campaign.code])
        with mock.patch.object(gallery, "PAGE_SIZE", 2):
            html = self.client.get(base + "?sort=oldest").content.decode()
            self.assertEqual(codes_in(html), [str(a.code) for a in assets[:2]])
            next_url = re.search(r'id="gallery-more"[^>]*hx-get="([^"]+)"', html)
            assert next_url
            self.assertIn("sort=oldest", next_url.group(1))
            self.assertIn('hx-trigger="revealed"', html)
            r = self.client.get(
                next_url.group(1).replace("&amp;", "&"),
                headers={**HTMX, "HX-Target": "gallery-more"},
            )
            page2 = r.content.decode()
            self.assertNotIn("<html", page2)
            self.assertNotIn("gallery-results", page2)
            self.assertEqual(codes_in(page2), [str(a.code) for a in assets[2:4]])
            self.assertIn('id="gallery-more"', page2)
            # Without JavaScript the same link is a full page starting there.
            full = self.client.get(
                next_url.group(1).replace("&amp;", "&")
            ).content.decode()
            self.assertEqual(codes_in(full), [str(a.code) for a in assets[2:4]])

    def test_a_mangled_cursor_shows_the_first_page(self) -> None:
        first = make_asset(self.campaign)
        self.client.force_login(self.alice)
        base = reverse("generation:campaign-gallery", args=[self.campaign.code])
        html = self.client.get(base + "?after=garbage~x").content.decode()
        self.assertEqual(codes_in(html), [str(first.code)])


class BatchGalleryTests(StudioTestCase):
    def test_a_batch_gallery_shows_only_that_batchs_assets(self) -> None:
        from generation.models import Batch

        batch = Batch.objects.create(
            workspace=self.workspace, campaign=self.campaign, brand=self.brand
        )
        mine = make_asset(self.campaign, batch=batch)
        make_asset(self.campaign)
        self.client.force_login(self.bob)
        html = self.client.get(
            reverse("generation:batch-gallery", args=[batch.code])
        ).content.decode()
        self.assertEqual(codes_in(html), [str(mine.code)])


class IngestCopiesTheScopeTests(EngineTestCase):
    """Ingest writes the generation's campaign and batch onto the asset (the gallery's index)."""

    backend_name = "preview"

    def test_a_preview_asset_carries_its_campaign_and_batch(self) -> None:
        from generation.engine.submit import generation_submit
        from generation.models import Batch

        campaign = make_campaign(self.brand)
        batch = Batch.objects.create(
            workspace=self.workspace, campaign=campaign, brand=self.brand
        )
        generation = self.create(model="flux-2-pro", campaign=campaign)
        generation.__class__.objects.filter(pk=generation.pk).update(batch=batch)
        self.dispatch(generation)
        generation_submit(generation_id=generation.pk)
        asset = Asset.objects.get(generation=generation)
        self.assertEqual((asset.campaign_id, asset.batch_id), (campaign.pk, batch.pk))
        scope = gallery.Scope(workspace=self.workspace, batch=batch)
        self.assertEqual(list(scope.assets()), [asset])
