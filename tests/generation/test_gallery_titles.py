"""Asset titles (template + the values that set an image apart in its batch) and the gallery
grouped by batch: headings, counts, keyset pages that continue a batch across pages."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.urls import reverse
from django.utils import timezone

from generation.batches.spec import FIXED, Seeds, Size
from generation.gallery import queries as gallery
from generation.gallery import titles
from generation.models import Asset, Batch
from tests.base import StudioTestCase
from tests.factories import make_asset
from tests.generation.batch_helpers import make_version, matrix_spec

HTMX = {"HX-Request": "true"}


def codes_in(html: str) -> list[str]:
    return re.findall(r'<article id="asset-([0-9a-f-]{36})"', html)


def titles_in(html: str) -> list[str]:
    return [
        t.strip()
        for t in re.findall(
            r'<h3 id="asset-[^"]+" class="asset-title">([^<]*)</h3>', html
        )
    ]


def headings_in(html: str) -> list[str]:
    return re.findall(r'<h2 class="batch-heading" data-batch="(\d+)">', html)


class TitleTests(StudioTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.version = make_version(
            cls.brand, campaign=cls.campaign, name="Spring launch"
        )

    def batch(self, spec: Any, name: str = "Headlines") -> Batch:
        return Batch.objects.create(
            workspace=self.workspace,
            campaign=self.campaign,
            brand=self.brand,
            template_version=self.version,
            name=name,
            spec=spec.as_json(),
            state="finished",
        )

    def variant(self, batch: Batch | None, **fields: Any) -> Asset:
        return make_asset(
            self.campaign,
            batch=batch,
            template_version=self.version if batch or "variables" in fields else None,
            **fields,
        )

    def title_of(self, asset: Asset) -> str:
        card = gallery.card_queryset(Asset.objects.filter(pk=asset.pk)).get()
        titles.titled([card])
        return card.title  # type: ignore[attr-defined]

    def test_a_batch_variant_is_named_by_the_values_its_batch_varies(self) -> None:
        # headline varies, scene does not, one seed, one model, one size.
        batch = self.batch(
            matrix_spec(
                headlines=("Fresh start", "Half price"),
                scenes=("in a cafe",),
                seeds=Seeds(FIXED, values=(7,)),
            )
        )
        asset = self.variant(
            batch,
            variables={"headline": "Fresh start", "scene": "in a cafe"},
            seed=7,
        )
        self.assertEqual(self.title_of(asset), "Spring launch — headline: Fresh start")

    def test_several_seeds_models_and_sizes_are_named_too(self) -> None:
        batch = self.batch(
            matrix_spec(
                headlines=("Fresh start", "Half price"),
                scenes=("in a cafe", "on a table"),
                seeds=Seeds(FIXED, values=(7, 8)),
                targets=("preview:flux-2-pro", "preview:flux-2-flex"),
                sizes=(Size(1024, 1024), Size(768, 1024)),
            )
        )
        asset = self.variant(
            batch,
            variables={"headline": "Half price", "scene": "on a table"},
            seed=8,
            model="flux-2-flex",
            width=768,
            height=1024,
        )
        self.assertEqual(
            self.title_of(asset),
            "Spring launch — headline: Half price · scene: on a table · flux-2-flex"
            " · 768×1024 · seed 8",
        )

    def test_csv_rows_name_the_columns_that_differ(self) -> None:
        spec = matrix_spec().as_json() | {
            "mode": "rows",
            "matrix": [],
            "rows": [
                {"line": 2, "values": {"headline": "Tea", "scene": "kitchen"}},
                {"line": 3, "values": {"headline": "Coffee", "scene": "kitchen"}},
            ],
            "seeds": {"mode": "fixed", "values": [1], "count": 1, "rng_seed": 0},
        }
        batch = Batch.objects.create(
            workspace=self.workspace,
            campaign=self.campaign,
            brand=self.brand,
            template_version=self.version,
            spec=spec,
        )
        asset = self.variant(
            batch, variables={"headline": "Coffee", "scene": "kitchen"}, seed=1
        )
        self.assertEqual(self.title_of(asset), "Spring launch — headline: Coffee")

    def test_a_batch_of_one_combination_falls_back_to_the_seed(self) -> None:
        batch = self.batch(
            matrix_spec(
                headlines=("Only",), scenes=("here",), seeds=Seeds(FIXED, values=(5,))
            )
        )
        asset = self.variant(
            batch, variables={"headline": "Only", "scene": "here"}, seed=5
        )
        self.assertEqual(self.title_of(asset), "Spring launch — seed 5")

    def test_outside_a_batch_a_change_names_what_it_changed(self) -> None:
        asset = self.variant(
            None,
            variables={"headline": "New", "scene": "same"},
            changes={"headline": {"from": "Old", "to": "New"}},
        )
        self.assertEqual(self.title_of(asset), "Spring launch — headline: New")

    def test_a_free_prompt_is_named_by_its_first_words(self) -> None:
        asset = self.variant(
            None,
            prompt="A leather bag on an oak table, golden hour, 50 mm lens, soft light",
            seed=42,
        )
        self.assertEqual(
            self.title_of(asset),
            "A leather bag on an oak table, golden… — seed 42",
        )
        json_prompt = self.variant(
            None,
            prompt='{"scene": "A red kettle on a stove", "style": "photo"}',
            seed=3,
        )
        self.assertEqual(
            self.title_of(json_prompt), "A red kettle on a stove photo — seed 3"
        )

    def test_cards_compare_and_the_asset_page_show_the_title(self) -> None:
        batch = self.batch(
            matrix_spec(
                headlines=("Fresh start", "Half price"),
                scenes=("in a cafe",),
                seeds=Seeds(FIXED, values=(7,)),
            )
        )
        a = self.variant(
            batch, variables={"headline": "Fresh start", "scene": "in a cafe"}, seed=7
        )
        b = self.variant(
            batch, variables={"headline": "Half price", "scene": "in a cafe"}, seed=7
        )
        self.client.force_login(self.bob)
        html = self.client.get(
            reverse("generation:campaign-gallery", args=[self.campaign.code])
        ).content.decode()
        self.assertEqual(
            titles_in(html),
            [
                "Spring launch — headline: Half price",
                "Spring launch — headline: Fresh start",
            ],
        )
        page = self.client.get(reverse("generation:asset-detail", args=[a.code]))
        self.assertContains(
            page, "<h1>Spring launch — headline: Fresh start</h1>", html=True
        )
        self.assertContains(page, "<title>Spring launch — headline: Fresh start")
        compare = self.client.get(
            reverse("generation:asset-compare"), {"asset": [str(a.code), str(b.code)]}
        )
        self.assertContains(compare, "Spring launch — headline: Half price")
        # A review action re-renders the card with its title.
        self.client.force_login(self.alex)
        card = self.client.post(
            reverse("generation:asset-review", args=[b.code]),
            {"status": "approved"},
            headers=HTMX,
        )
        self.assertEqual(
            titles_in(card.content.decode()), ["Spring launch — headline: Half price"]
        )


class GroupByBatchTests(StudioTestCase):
    """Three batches made in interleaved order, and images from no batch: grouped, each batch's
    images come together under one heading, newest batch first, across keyset pages."""

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.version = make_version(cls.brand, campaign=cls.campaign, name="Poster")
        spec = matrix_spec(
            headlines=("A", "B", "C", "D"),
            scenes=("x",),
            seeds=Seeds(FIXED, values=(1,)),
        ).as_json()
        cls.batches = [
            Batch.objects.create(
                workspace=cls.workspace,
                campaign=cls.campaign,
                brand=cls.brand,
                template_version=cls.version,
                name=f"Batch {n}",
                spec=spec,
                state="finished",
            )
            for n in range(3)
        ]
        cls.by_batch: dict[int, list[Asset]] = {b.pk: [] for b in cls.batches}
        cls.loose: list[Asset] = []
        now = timezone.now()
        # Interleaved: newest-first order mixes the batches, grouping must not.
        for i in range(12):
            batch = cls.batches[i % 3]
            asset = make_asset(
                cls.campaign,
                batch=batch,
                template_version=cls.version,
                variables={"headline": "ABCD"[i // 3], "scene": "x"},
                seed=1,
                review_status="approved" if i % 2 else "pending",
            )
            Asset.objects.filter(pk=asset.pk).update(
                created_at=now - dt.timedelta(minutes=100 - i)
            )
            cls.by_batch[batch.pk].append(asset)
        for i in range(2):
            cls.loose.append(make_asset(cls.campaign, prompt=f"Loose image {i}"))
        cls.url = reverse("generation:campaign-gallery", args=[cls.campaign.code])

    def expected_order(self) -> list[str]:
        """Newest batch first, each newest image first; images from no batch last."""
        out: list[str] = []
        for batch in reversed(self.batches):
            assets = Asset.objects.filter(batch=batch).order_by("-created_at", "-pk")
            out += [str(a.code) for a in assets]
        out += [
            str(a.code)
            for a in Asset.objects.filter(batch=None).order_by("-created_at", "-pk")
        ]
        return out

    def test_grouped_cards_come_together_under_one_heading_per_batch(self) -> None:
        self.client.force_login(self.bob)
        html = self.client.get(self.url, {"group": "batch"}).content.decode()
        self.assertEqual(codes_in(html), self.expected_order())
        self.assertEqual(
            headings_in(html),
            [str(b.pk) for b in reversed(self.batches)] + ["0"],
        )
        newest = self.batches[-1]
        self.assertIn(reverse("generation:batch-detail", args=[newest.code]), html)
        self.assertIn("Poster v1", html)
        self.assertIn("4 images", html)
        self.assertIn("Not from a batch", html)
        self.assertIn('<option value="batch" selected>Group by batch</option>', html)
        # Ungrouped, the same images are interleaved by date and no heading is shown.
        plain = self.client.get(self.url).content.decode()
        self.assertNotEqual(codes_in(plain), self.expected_order())
        self.assertEqual(headings_in(plain), [])

    def test_grouping_works_with_filters_and_counts_the_matches(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get(
            self.url,
            {"group": "batch", "status": "approved"},
            headers={**HTMX, "HX-Target": "gallery-results"},
        )
        html = r.content.decode()
        approved = [
            c
            for c in self.expected_order()
            if Asset.objects.get(code=c).review_status == "approved"
        ]
        self.assertEqual(codes_in(html), approved)
        self.assertIn("2 of 4 images match", html)
        self.assertEqual(r["HX-Push-Url"], f"{self.url}?status=approved&group=batch")

    def test_pages_continue_a_batch_without_repeating_its_heading(self) -> None:
        seen: list[str] = []
        headings: list[str] = []
        page = gallery.gallery_page(
            scope=gallery.Scope(workspace=self.workspace, campaign=self.campaign),
            filters=gallery.Filters(group="batch"),
            size=5,
        )
        self.assertEqual([str(a.code) for a in page.assets], self.expected_order()[:5])
        after = page.next_cursor
        seen += [str(a.code) for a in page.assets]
        while after:
            page = gallery.gallery_page(
                scope=gallery.Scope(workspace=self.workspace, campaign=self.campaign),
                filters=gallery.Filters(group="batch"),
                after=after,
                size=5,
            )
            facts = titles.titled(page.assets)
            groups = titles.groups(page.assets, facts, before=page.group_before)
            headings += [str(g.key) for g in groups if not g.continued]
            seen += [str(a.code) for a in page.assets]
            after = page.next_cursor
        self.assertEqual(seen, self.expected_order())
        # Pages of 5: page 2 continues the middle batch (headed on page 1), page 3 the oldest.
        self.assertEqual(headings, [str(self.batches[0].pk), "0"])

    def test_the_scroll_sentinel_fetches_the_next_grouped_page(self) -> None:
        self.client.force_login(self.bob)
        first = gallery.gallery_page(
            scope=gallery.Scope(workspace=self.workspace, campaign=self.campaign),
            filters=gallery.Filters(group="batch"),
            size=6,
        )
        assert first.next_cursor is not None
        # The 6th card is the 2nd of the middle batch: the next page continues it unheaded.
        r = self.client.get(
            self.url,
            {"group": "batch", "after": first.next_cursor},
            headers={**HTMX, "HX-Target": "gallery-more"},
        )
        html = r.content.decode()
        self.assertEqual(codes_in(html), self.expected_order()[6:])
        self.assertEqual(headings_in(html), [str(self.batches[0].pk), "0"])

    def test_oldest_first_puts_the_oldest_batch_first(self) -> None:
        self.client.force_login(self.bob)
        html = self.client.get(
            self.url, {"group": "batch", "sort": "oldest"}
        ).content.decode()
        self.assertEqual(headings_in(html), ["0"] + [str(b.pk) for b in self.batches])

    def test_a_page_with_batches_costs_one_query_more_whatever_their_number(
        self,
    ) -> None:
        self.client.force_login(self.alex)
        self.client.get(reverse("home"))
        with self.assertNumQueries(13):  # FIRST_PAGE + the batches on the page
            self.client.get(self.url, {"group": "batch"})
        with self.assertNumQueries(13):
            self.client.get(self.url)
