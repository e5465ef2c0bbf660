"""What the home page shows the team (issue 18): what needs someone now.

Read-only selectors over one workspace: batches in flight, images waiting for review per campaign,
the latest approvals and the campaigns near their budget cap. The home page (studio) shows them
through the `home_panels` UI hook, so studio does not import this layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, ExpressionWrapper, F

from generation.models import (
    Asset,
    Batch,
    BatchState,
    Generation,
    ReviewEvent,
    ReviewStatus,
)
from generation.spend import services as spend
from studio.models import Workspace

# A campaign is "near its cap" from this share of it on (spent or committed).
NEAR_CAP = Decimal("0.8")
SHOWN = 6


@dataclass(frozen=True)
class Dashboard:
    running: list[Batch]
    waiting: Sequence[Mapping[str, Any]]  # campaign__code, campaign__name, count
    waiting_total: int
    approvals: list[ReviewEvent]
    budgets: list[dict[str, Any]]  # spend_by_campaign rows, plus share (0..1+)

    @property
    def empty(self) -> bool:
        return not (self.running or self.waiting or self.approvals or self.budgets)


def dashboard_for(workspace: Workspace) -> Dashboard:
    running = list(
        Batch.objects.filter(
            workspace=workspace, state__in=[BatchState.QUEUED, BatchState.RUNNING]
        )
        .select_related("campaign", "template_version__template")
        .order_by("-created_at")[:SHOWN]
    )
    for batch in running:
        version = batch.template_version
        batch.title = batch.name or (version.template.name if version else "Batch")  # type: ignore[attr-defined]
    waiting = list(
        Asset.objects.filter(
            workspace=workspace,
            review_status=ReviewStatus.PENDING,
            campaign__isnull=False,
        )
        .order_by()
        .values("campaign__code", "campaign__name")
        .annotate(count=Count("id"))
        .order_by("-count", "campaign__name")
    )
    approvals = list(
        ReviewEvent.objects.filter(
            workspace=workspace, to_status=ReviewStatus.APPROVED
        ).select_related("actor", "asset__campaign")[:SHOWN]
    )
    # One aggregate query returns only the campaigns shown: near their cap (HAVING), the
    # tightest first, at most SHOWN (the share itself is computed here, exactly, from the row).
    near = (
        spend.campaign_spend(
            Generation.objects.filter(workspace=workspace, campaign__budget_cap__gt=0)
        )
        .filter(total__gte=F("campaign__budget_cap") * NEAR_CAP)
        .order_by(
            ExpressionWrapper(
                F("total") / F("campaign__budget_cap"), output_field=DecimalField()
            ).desc(),
            "campaign__name",
        )[:SHOWN]
    )
    budgets = []
    for row in near:
        share = row["total"] / row["campaign__budget_cap"]
        budgets.append({**row, "share": share, "percent": round(share * 100)})
    return Dashboard(
        running=running,
        waiting=waiting[:SHOWN],
        waiting_total=sum(row["count"] for row in waiting),
        approvals=approvals,
        budgets=budgets,
    )
