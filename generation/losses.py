"""Money paid for nothing, for the operator page: possible duplicate submissions and lost images.

- A duplicate submission: a submit whose answer was lost after the request went out (recorded by
  services._record_uncertain_submit) may have created a task at the provider; when the same
  generation was later submitted again, that earlier task, if it exists, is a second paid image
  nobody will see. Counted per uncertain submit, at the generation's estimated cost (the provider
  never told us a price for a task we never heard of).
- A lost image: `expired` after the provider reported a cost, i.e. paid but never downloaded
  (the download was retried and the result re-polled first: services._download).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from generation.models import Generation, GenerationState

S = GenerationState


@dataclass
class Losses:
    duplicate_submissions: int = 0
    duplicate_cost: Decimal = Decimal(0)
    lost_images: int = 0
    lost_cost: Decimal = Decimal(0)

    @property
    def any(self) -> bool:
        return bool(self.duplicate_submissions or self.lost_images)


def month_losses(workspace: Any, *, since: datetime) -> dict[str, Losses]:
    """Per backend, this period's possible duplicate submissions and paid images lost."""
    losses: dict[str, Losses] = {}
    mine = Generation.objects.filter(workspace=workspace, queued_at__gte=since)
    uncertain = mine.filter(provider_details__has_key="uncertain_submits").values_list(
        "backend", "provider_details", "estimated_cost", "submitted_at"
    )
    for backend, details, estimated, submitted_at in uncertain.iterator():
        entries = details.get("uncertain_submits") or []
        # Only a generation that was submitted again afterwards paid twice (at most once per
        # uncertain submit); without a later submission the lost answer was its only task.
        duplicates = len(entries) if submitted_at is not None else 0
        if not duplicates:
            continue
        entry = losses.setdefault(backend, Losses())
        entry.duplicate_submissions += duplicates
        entry.duplicate_cost += (estimated or Decimal(0)) * duplicates
    lost = mine.filter(state=S.EXPIRED, actual_cost__isnull=False).values_list(
        "backend", "actual_cost"
    )
    for backend, cost in lost.iterator():
        entry = losses.setdefault(backend, Losses())
        entry.lost_images += 1
        entry.lost_cost += cost or Decimal(0)  # never None: actual_cost__isnull=False
    return losses


def total(losses: dict[str, Losses]) -> Losses:
    result = Losses()
    for entry in losses.values():
        result.duplicate_submissions += entry.duplicate_submissions
        result.duplicate_cost += entry.duplicate_cost
        result.lost_images += entry.lost_images
        result.lost_cost += entry.lost_cost
    return result
