"""The engine's shared parts: the conditional-UPDATE transition, the Next answer, claims and leases."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from generation import (
    caps,
    signals,
)
from generation.engine import policy as engine
from generation.models import (
    TERMINAL_STATES,
    Generation,
    GenerationState,
    ProviderAccount,
)

S = GenerationState


SUBMIT, POLL, INGEST, NOTHING = "submit", "poll", "ingest", "none"


AT_PROVIDER = (S.SUBMITTED, S.RUNNING)


_STAMPS: dict[str, str] = {  # keyed by state value (GenerationState is a str enum)
    S.SUBMITTED: "submitted_at",
    S.RUNNING: "running_at",
    S.INGESTING: "ingesting_at",
}


# A scheduled task may fire a little before its row's due_at (clock and timer granularity).
_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class Next:
    """What to run next for a generation, and the caps whose slots were freed (run the dispatcher)."""

    action: str = NOTHING  # "submit", "poll", "ingest" or "none"
    countdown: float = 0.0
    poll_seq: int = 0
    wake: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dispatched:
    ids: list[int]
    backlog: bool  # rows still wait because the cap is full


@dataclass
class SweepPlan:
    submit: list[int] = field(default_factory=list)
    poll: list[tuple[int, int]] = field(default_factory=list)
    ingest: list[int] = field(default_factory=list)
    dispatch: list[str] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)

    @property
    def redriven(self) -> int:
        return len(self.submit) + len(self.poll) + len(self.ingest)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _transition(
    generation_id: int,
    *,
    source: Iterable[str],
    target: str,
    where: Mapping[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move one row from any of `source` to `target` in one conditional UPDATE; True if it won."""
    now = timezone.now()
    values: dict[str, Any] = {"state": target, "updated_at": now}
    stamp = _STAMPS.get(target) or (
        "finished_at" if target in TERMINAL_STATES else None
    )
    if stamp:
        values[stamp] = now
    values.update(fields)
    rows = Generation.objects.filter(
        pk=generation_id, state__in=list(source), **(where or {})
    )
    moved = rows.update(**values) == 1
    if moved and target in TERMINAL_STATES:
        # For the layers above (API waiters and webhooks); after commit, so they read the row.
        transaction.on_commit(
            lambda: signals.generation_finished.send(
                sender=Generation, generation_id=generation_id, state=target
            )
        )
    return moved


def _load(generation_id: int, *related: str) -> Generation | None:
    """The row, with only the relations the step needs (each join costs on the hot path)."""
    return (
        Generation.objects.select_related("provider_account", *related)
        .filter(pk=generation_id)
        .first()
    )


def _limit(backend: str, account_id: int | None) -> int:
    account_max = None
    if account_id is not None:
        account_max = (
            ProviderAccount.objects.filter(pk=account_id)
            .values_list("max_concurrency", flat=True)
            .first()
        )
    return caps.limit_for(backend, account_max)


def _lease_ttl(extra: float = 0.0) -> float:
    return engine.conf("ENGINE_LEASE_TTL", 180.0) + extra


def _claim_ttl() -> timedelta:
    return _seconds(engine.conf("ENGINE_CLAIM_TTL", 60.0))


def wake_on_commit(cap_keys: Iterable[str]) -> None:
    """Wake the dispatcher of each cap once the transaction that queued work commits."""
    keys = sorted(set(cap_keys))

    def wake() -> None:
        from generation import tasks

        for key in keys:
            tasks.wake_dispatcher(key)

    transaction.on_commit(wake)


def _request_for(generation: Generation) -> Any:
    references = engine.load_references(
        workspace_id=generation.workspace_id, specs=list(generation.references)
    )
    return engine.build_request(
        model=generation.model,
        prompt=generation.prompt,
        width=generation.width,
        height=generation.height,
        seed=generation.seed,
        params=dict(generation.params),
        references=references,
        brand=generation.brand,
    )


def _this_poll(generation: Generation, seq: int) -> dict[str, Any]:
    """The row as this poll saw it: its answer applies only while nothing else moved it on."""
    return {"poll_count": seq, "provider_task_id": generation.provider_task_id}
