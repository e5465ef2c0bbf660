"""A batch's progress: counts per state, error groups, and what the progress page shows."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from generation.batches.common import FAILED_STATES, S, _unretried
from generation.error_text import ERROR_LABELS
from generation.models import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    Batch,
    Generation,
    GenerationState,
)
from generation.spend.services import Spend, spend_of


@dataclass(frozen=True)
class ErrorGroup:
    error_class: str
    label: str
    count: int
    messages: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class BatchProgress:
    counts: Mapping[str, int]
    total: int
    retried: int
    spend: Spend
    eta_seconds: float | None
    errors: tuple[ErrorGroup, ...]

    @property
    def active(self) -> int:
        return sum(self.counts.get(s, 0) for s in ACTIVE_STATES)

    @property
    def finished(self) -> int:
        return self.total - self.active

    @property
    def succeeded(self) -> int:
        return self.counts.get(S.SUCCEEDED, 0)

    @property
    def failed(self) -> int:
        return sum(self.counts.get(s, 0) for s in FAILED_STATES)

    @property
    def retryable(self) -> int:
        return self.failed - self.counts.get(S.MODERATED, 0) - self.retried

    @property
    def canceled(self) -> int:
        return self.counts.get(S.CANCELED, 0)

    @property
    def percent(self) -> int:
        # 100 only when every generation is terminal.
        if not self.total:
            return 0
        return 100 if not self.active else min(99, self.finished * 100 // self.total)

    @property
    def is_done(self) -> bool:
        return self.total > 0 and not self.active

    @property
    def state_rows(self) -> list[tuple[str, str, int]]:
        return [(s.value, s.label, self.counts.get(s, 0)) for s in GenerationState]

    @property
    def eta_text(self) -> str:
        if self.is_done:
            return "done"
        if self.eta_seconds is None:
            return "estimating…"
        seconds = max(1, round(self.eta_seconds))
        if seconds < 90:
            return f"about {seconds} s"
        if seconds < 5400:
            return f"about {round(seconds / 60)} min"
        return f"about {seconds / 3600:.1f} h"


def batch_counts(*, batch: Batch) -> dict[str, int]:
    rows = (
        Generation.objects.filter(batch=batch)
        .order_by()
        .values_list("state")
        .annotate(n=Count("id"))
    )
    return dict(rows)


def batch_progress(*, batch: Batch) -> BatchProgress:
    generations = Generation.objects.filter(batch=batch)
    counts = batch_counts(batch=batch)
    total = sum(counts.values())
    retried = (
        generations.filter(state__in=FAILED_STATES)
        .filter(Exists(Generation.objects.filter(parent=OuterRef("pk"), batch=batch)))
        .count()
    )
    eta = None
    active = sum(counts.get(s, 0) for s in ACTIVE_STATES)
    if active and batch.dispatched_at is not None:
        done = generations.filter(
            state__in=TERMINAL_STATES, finished_at__gte=batch.dispatched_at
        ).count()
        elapsed = (timezone.now() - batch.dispatched_at).total_seconds()
        if done and elapsed > 0:
            eta = active / (done / elapsed)
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for error_class, message in (
        _unretried(batch)
        .filter(state__in=FAILED_STATES)
        .values_list("error_class", "error_message")
    ):
        groups[error_class or "provider_error"][message or "(no message)"] += 1
    errors = tuple(
        ErrorGroup(
            error_class=cls,
            label=ERROR_LABELS.get(cls, cls),
            count=sum(messages.values()),
            messages=tuple(messages.most_common(5)),
        )
        for cls, messages in sorted(
            groups.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])
        )
    )
    return BatchProgress(
        counts=counts,
        total=total,
        retried=retried,
        spend=spend_of(generations),
        eta_seconds=eta,
        errors=errors,
    )
