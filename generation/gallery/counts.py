"""Assets per review status: the gallery's status chips and the approval progress bars."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, QuerySet

from campaigns.models import Campaign, PromptTemplate
from generation.gallery.filters import Filters
from generation.gallery.scope import Scope
from generation.models import Asset, ReviewStatus, ReviewTally

BAR_ORDER = (
    ReviewStatus.APPROVED,
    ReviewStatus.CHANGES_REQUESTED,
    ReviewStatus.REJECTED,
    ReviewStatus.PENDING,
)


@dataclass(frozen=True)
class ReviewCounts:
    """Assets per review status, for chips and progress bars."""

    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def decided(self) -> int:
        return self.total - self.counts.get(ReviewStatus.PENDING, 0)

    def percent(self, status: str) -> float:
        return 100 * self.counts.get(status, 0) / self.total if self.total else 0.0

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per status, with the bar segment's start and width in percent."""
        start, out = 0.0, []
        for value in BAR_ORDER:
            label = ReviewStatus(value).label
            width = self.percent(value)
            out.append(
                {
                    "status": value,
                    "label": label,
                    "count": self.counts.get(value, 0),
                    "start": round(start, 3),
                    "width": round(width, 3),
                }
            )
            start += width
        return out

    @property
    def approved_percent(self) -> int:
        return round(self.percent(ReviewStatus.APPROVED))


def review_counts(assets: QuerySet[Asset]) -> ReviewCounts:
    rows = assets.order_by().values_list("review_status").annotate(n=Count("pk"))
    return ReviewCounts(counts=dict(rows))


def _tallied(kind: str, scope_id: int) -> ReviewCounts:
    rows = ReviewTally.objects.filter(kind=kind, scope_id=scope_id, n__gt=0)
    return ReviewCounts(counts=dict(rows.values_list("review_status", "n")))


def scope_review_counts(*, scope: Scope, filters: Filters) -> ReviewCounts:
    """The status chips' counts: the scope's tallies when no filter narrows it (PostgreSQL keeps
    them, see ReviewTally), else a count over the filtered assets (the status filter aside)."""
    narrowed = filters.query_items(without=("sort", "group", "status"))
    kind = {"workspace": "w", "campaign": "c", "batch": "b"}.get(scope.kind)
    if narrowed or kind is None or connection.vendor != "postgresql":
        return review_counts(filters.apply(scope.assets(), with_status=False))
    scope_id = {
        "w": scope.workspace.pk,
        "c": scope.campaign.pk if scope.campaign else None,
        "b": scope.batch.pk if scope.batch is not None else None,
    }[kind]
    if scope_id is None:  # not reached: a campaign or batch scope has its object
        return review_counts(filters.apply(scope.assets(), with_status=False))
    return _tallied(kind, scope_id)


def campaign_review_counts(*, campaign: Campaign) -> ReviewCounts:
    """A campaign's approval progress (campaign page)."""
    if connection.vendor == "postgresql":
        return _tallied("c", campaign.pk)
    return review_counts(
        Asset.objects.filter(workspace_id=campaign.workspace_id, campaign=campaign)
    )


def template_version_approvals(*, template: PromptTemplate) -> dict[int, ReviewCounts]:
    """Per version number of a template: its images by review status (which prompts win)."""
    rows = (
        Asset.objects.filter(
            workspace_id=template.workspace_id,
            generation__template_version__template=template,
        )
        .order_by()
        .values_list("generation__template_version__number", "review_status")
        .annotate(n=Count("pk"))
    )
    counts: dict[int, dict[str, int]] = {}
    for number, status, n in rows:
        counts.setdefault(number, {})[status] = n
    return {number: ReviewCounts(counts=c) for number, c in counts.items()}
