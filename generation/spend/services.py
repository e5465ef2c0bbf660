"""What generation costs: spend per campaign, per backend and per month, and budget checks.

Spend counts what the providers said a generation cost (`actual_cost`, recorded from their
answers) and, for work with no reported cost yet, its estimate (`estimated_cost`) while it is
queued, at the provider or succeeded. Failed, moderated, canceled and expired generations count
only when the provider reported a cost for them: a request that never ran costs nothing, one that
ran was reported. So a campaign's spend is "estimated while running, actual when done".

A campaign's `budget_cap` (USD, set by admins only) limits that spend: a batch, a retry or a
variant whose estimate does not fit in what is left is refused before anything is stored. A
campaign without a cap is not limited; the builder says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncMonth

from generation.models import Generation, GenerationState

S = GenerationState
# States whose estimate counts until the provider reports the real cost.
COMMITTED_STATES = (S.QUEUED, S.SUBMITTED, S.RUNNING, S.INGESTING, S.SUCCEEDED)
_ZERO = Value(Decimal(0), output_field=DecimalField(max_digits=12, decimal_places=4))
CENT = Decimal("0.01")


def _actual() -> Any:
    return Coalesce(Sum("actual_cost"), _ZERO)


def _estimated() -> Any:
    return Coalesce(
        Sum(
            "estimated_cost",
            filter=Q(actual_cost__isnull=True, state__in=COMMITTED_STATES),
        ),
        _ZERO,
    )


@dataclass(frozen=True)
class Spend:
    actual: Decimal = Decimal(0)  # reported by the providers
    estimated: Decimal = Decimal(0)  # estimates of work with no reported cost yet

    @property
    def total(self) -> Decimal:
        return self.actual + self.estimated


def spend_of(generations: QuerySet[Generation]) -> Spend:
    totals = generations.aggregate(actual=_actual(), estimated=_estimated())
    return Spend(actual=totals["actual"], estimated=totals["estimated"])


def usd(amount: Decimal) -> str:
    """$0.72; sub-cent amounts keep their digits ($0.0150) so cheap models do not show $0.00."""
    if amount == 0:
        return "$0.00"
    rounded = amount.quantize(CENT)
    if rounded == amount.normalize() or abs(amount) >= 1:
        return f"${rounded:,}"
    return f"${amount.normalize():f}"


@dataclass(frozen=True)
class Budget:
    cap: Decimal | None
    spend: Spend

    @property
    def remaining(self) -> Decimal | None:
        return None if self.cap is None else self.cap - self.spend.total

    def fits(self, amount: Decimal) -> bool:
        remaining = self.remaining
        return remaining is None or amount <= remaining

    def refusal(self, amount: Decimal) -> str:
        """Why `amount` cannot be spent, with the numbers."""
        assert self.cap is not None and self.remaining is not None
        left = max(self.remaining, Decimal(0))
        return (
            f"Over budget: this is estimated at {usd(amount)}, but the campaign has "
            f"{usd(left)} left of its {usd(self.cap)} cap ({usd(self.spend.total)} spent or "
            f"committed). Make it smaller, or ask an admin to raise the cap."
        )


def campaign_budget(*, campaign: Any) -> Budget:
    spend = spend_of(Generation.objects.filter(campaign=campaign))
    return Budget(cap=campaign.budget_cap, spend=spend)


def spend_by_backend(generations: QuerySet[Generation]) -> list[dict[str, Any]]:
    """Per backend and model: generations, succeeded, actual and estimated spend."""
    rows = (
        generations.order_by()
        .values("backend", "model")
        .annotate(
            count=Count("id"),
            succeeded=Count("id", filter=Q(state=S.SUCCEEDED)),
            actual=_actual(),
            estimated=_estimated(),
        )
        .order_by("backend", "model")
    )
    return [{**row, "total": row["actual"] + row["estimated"]} for row in rows]


def spend_by_batch(generations: QuerySet[Generation]) -> list[dict[str, Any]]:
    rows = (
        generations.order_by()
        .values("batch__code", "batch__name", "batch__created_at")
        .annotate(count=Count("id"), actual=_actual(), estimated=_estimated())
        .order_by("-batch__created_at")
    )
    return [{**row, "total": row["actual"] + row["estimated"]} for row in rows]


def spend_by_month(generations: QuerySet[Generation]) -> list[dict[str, Any]]:
    """Per calendar month of queueing (the workspace's time zone), newest first."""
    rows = (
        generations.order_by()
        .annotate(month=TruncMonth("queued_at"))
        .values("month")
        .annotate(count=Count("id"), actual=_actual(), estimated=_estimated())
        .order_by("-month")
    )
    return [{**row, "total": row["actual"] + row["estimated"]} for row in rows]


def campaign_spend(generations: QuerySet[Generation]) -> QuerySet[Any]:
    """One row per campaign (code, name, budget_cap, count, actual, estimated, total): one
    GROUP BY query that callers may narrow further (HAVING on total, an order, a limit)."""
    return (
        generations.order_by()
        .values("campaign__code", "campaign__name", "campaign__budget_cap")
        .annotate(count=Count("id"), actual=_actual(), estimated=_estimated())
        .annotate(total=F("actual") + F("estimated"))
    )


def spend_by_campaign(generations: QuerySet[Generation]) -> list[dict[str, Any]]:
    return list(campaign_spend(generations).order_by("campaign__name"))


def month_bounds(month: date) -> tuple[date, date]:
    start = month.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end
