"""The gallery runs a constant number of queries per page, whatever the number of assets.

Measured at two sizes (a handful of assets, and more than three pages of them, with tags and
comments), for the first page, a deep page fetched by the scroll sentinel, a filtered page and a
review action. Equal counts at both sizes mean no N+1 query hides in a card.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.urls import reverse
from django.utils import timezone

from campaigns.models import Tag
from generation.gallery import queries as gallery
from generation.models import Asset, Comment, Generation
from tests.base import StudioTestCase

HTMX = {"HX-Request": "true"}

# Every request: session, user, membership (middleware); full pages also the brand stamp (the
# palette stylesheet's version, evaluated only where base.html renders it).
# A gallery adds its campaign, the cards and their tags; the full page also the status counts,
# the filter choices (templates, references, tags) and the workspace switcher's memberships; the
# results partial only the counts. A card action: the asset, the actor's membership (the service
# checks the role itself), lock + conditional UPDATE + audit INSERT (with savepoints here, as the
# test runs in a transaction), then the card re-read with its tags.
FIRST_PAGE = 12
NEXT_PAGE = 6
FILTERED_RESULTS = 7
CARD_ACTION = 12


def bulk_assets(campaign: Any, n: int) -> list[Asset]:
    """n succeeded generations with assets, in two bulk INSERTs (no files on disk)."""
    now = timezone.now()
    generations = Generation.objects.bulk_create(
        [
            Generation(
                workspace=campaign.workspace,
                campaign=campaign,
                brand=campaign.brand,
                backend="preview" if i % 2 else "bfl",
                model="flux-2-pro",
                prompt=f"A bag on a table, variant {i}",
                width=1024,
                height=1024,
                seed=i,
                state="succeeded",
                variables={"headline": f"Offer {i % 5}"},
            )
            for i in range(n)
        ]
    )
    assets = Asset.objects.bulk_create(
        [
            Asset(
                workspace=campaign.workspace,
                generation=g,
                campaign=campaign,
                file=f"generations/x/{g.code}/image.png",
                thumbnail=f"generations/x/{g.code}/thumb.webp",
                width=1024,
                height=1024,
                format="png",
                content_type="image/png",
                byte_size=1000,
                sha256=f"{i:064x}",
                created_at=now - dt.timedelta(seconds=i),
                review_status=["pending", "approved", "rejected"][i % 3],
            )
            for i, g in enumerate(generations)
        ]
    )
    tag = Tag.objects.create(workspace=campaign.workspace, name="hero")
    Asset.tags.through.objects.bulk_create(
        [Asset.tags.through(asset=a, tag=tag) for a in assets[::2]]
    )
    Comment.objects.bulk_create(
        [
            Comment(workspace=campaign.workspace, asset=a, body="Nice")
            for a in assets[::3]
        ]
    )
    return assets


class GalleryQueryCountTests(StudioTestCase):
    def run_pages(self, n: int) -> None:
        assets = bulk_assets(self.campaign, n)
        base = reverse("generation:campaign-gallery", args=[self.campaign.code])
        self.client.force_login(self.alex)
        # The first request after login saves the session: not part of what is measured.
        self.client.get(reverse("home"))

        with self.assertNumQueries(FIRST_PAGE):
            html = self.client.get(base).content.decode()
        self.assertEqual(html.count('<article id="asset-'), min(n, gallery.PAGE_SIZE))

        # A deep page: the cursor of the card in the middle of the gallery.
        middle = sorted(assets, key=lambda a: (a.created_at, a.pk))[n // 2]
        after = gallery.cursor_for(middle, gallery.SORTS["newest"])
        with self.assertNumQueries(NEXT_PAGE):
            r = self.client.get(
                base, {"after": after}, headers={**HTMX, "HX-Target": "gallery-more"}
            )
        self.assertEqual(
            r.content.decode().count('<article id="asset-'),
            min(n // 2, gallery.PAGE_SIZE),
        )

        with self.assertNumQueries(FILTERED_RESULTS):
            r = self.client.get(
                base,
                {"status": "pending", "tag": "hero", "var": "headline=Offer 0"},
                headers={**HTMX, "HX-Target": "gallery-results"},
            )
        # Exactly the pending (i % 3 == 0), tagged (i even), "Offer 0" (i % 5 == 0) assets: every
        # 30th, newest first, and no other card.
        shown = re.findall(r'<article id="asset-([0-9a-f-]{36})"', r.content.decode())
        matching = Asset.objects.filter(pk__in=[a.pk for a in assets[::30]])
        expected = [str(code) for code in matching.values_list("code", flat=True)]
        self.assertTrue(expected)
        self.assertEqual(shown, expected[: gallery.PAGE_SIZE])

        card = assets[0]
        with self.assertNumQueries(CARD_ACTION):
            r = self.client.post(
                reverse("generation:asset-review", args=[card.code]),
                {"status": "approved"},
                headers=HTMX,
            )
        self.assertEqual(r.status_code, 200)

    def test_a_few_assets(self) -> None:
        self.run_pages(6)

    def test_more_than_three_pages_of_assets(self) -> None:
        self.run_pages(gallery.PAGE_SIZE * 3 + 7)

    def test_a_page_lists_its_cards_in_one_query_with_generation_and_template(
        self,
    ) -> None:
        bulk_assets(self.campaign, 10)
        page = gallery.gallery_page(
            scope=gallery.Scope(workspace=self.workspace, campaign=self.campaign),
            filters=gallery.Filters(),
        )
        with self.assertNumQueries(0):
            for asset in page.assets:
                _ = (
                    asset.generation.model,
                    asset.generation.template_version,
                    list(asset.tags.all()),
                    asset.comment_count,  # type: ignore[attr-defined]
                    asset.cost,  # type: ignore[attr-defined]
                )
