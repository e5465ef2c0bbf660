"""The gallery's status counts come from ReviewTally rows that PostgreSQL triggers keep; every
kind of write must keep them equal to a count of the assets themselves."""

from __future__ import annotations

from collections import Counter

from django.db.models import Count

from generation.gallery import counts as gallery
from generation.models import Asset, ReviewTally
from tests.base import StudioTestCase
from tests.factories import make_asset, make_campaign


def tallies(kind: str, scope_id: int) -> dict[str, int]:
    return dict(
        ReviewTally.objects.filter(kind=kind, scope_id=scope_id, n__gt=0).values_list(
            "review_status", "n"
        )
    )


def counted(**where: object) -> dict[str, int]:
    rows = (
        Asset.objects.filter(**where)
        .order_by()
        .values_list("review_status")
        .annotate(n=Count("pk"))
    )
    return dict(rows)


class ReviewTallyTests(StudioTestCase):
    def assertTallied(self) -> None:
        self.assertEqual(
            tallies("w", self.workspace.pk), counted(workspace=self.workspace)
        )
        for campaign in (self.campaign, self.other):
            self.assertEqual(tallies("c", campaign.pk), counted(campaign=campaign))

    def test_every_kind_of_write_keeps_the_tally(self) -> None:
        self.other = make_campaign(self.brand, name="Other")
        assets = [make_asset(self.campaign) for _ in range(5)]
        assets += [make_asset(self.other, review_status="approved") for _ in range(3)]
        self.assertTallied()
        self.assertEqual(tallies("c", self.campaign.pk), {"pending": 5})

        # A bulk review action is one UPDATE of many rows.
        Asset.objects.filter(pk__in=[a.pk for a in assets[:3]]).update(
            review_status="approved"
        )
        self.assertTallied()
        # An update that changes no status (ingest's upsert rewrites the file fields).
        Asset.objects.filter(campaign=self.campaign).update(byte_size=7)
        self.assertTallied()
        # One asset at a time, through save().
        asset = assets[4]
        asset.review_status = "rejected"
        asset.save()
        self.assertTallied()
        # Deletes, and a campaign deleted (its assets' campaign becomes NULL).
        assets[0].generation.delete()
        self.assertTallied()
        other_id = self.other.pk
        self.other.delete()
        self.assertEqual(tallies("c", other_id), {})
        self.other = self.campaign
        self.assertTallied()
        expected = Counter(
            Asset.objects.filter(campaign=self.campaign).values_list(
                "review_status", flat=True
            )
        )
        counts = gallery.campaign_review_counts(campaign=self.campaign)
        self.assertEqual(counts.counts, dict(expected))
