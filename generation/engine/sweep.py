"""The sweep: re-drive stuck rows and expire what the provider no longer keeps."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from generation import (
    claims,
    fair,
)
from generation.engine import policy as engine
from generation.engine.failure import generation_expire
from generation.engine.state import (
    _SLACK,
    AT_PROVIDER,
    S,
    SweepPlan,
    _claim_ttl,
    _seconds,
)
from generation.models import (
    ACTIVE_STATES,
    Generation,
    cap_key_for,
)

log = logging.getLogger(__name__)


def generation_sweep(
    *,
    now: datetime | None = None,
    limit: int = 1000,
    stuck_after: float | None = None,
    skip: Iterable[int] = (),
) -> SweepPlan:
    """Find non-terminal generations whose next step is overdue, re-arm them, and say what to run.

    A row is overdue when its due_at is more than ENGINE_STUCK_AFTER in the past: its scheduled
    task was lost (a SIGKILLed worker's messages stay unacked in Redis until visibility_timeout,
    5 minutes here) or its claim outlived a dead worker. A claim whose holder is provably dead
    (claims.py) is re-armed at once, whatever its due_at. Re-arming (due_at = now, conditional on
    the due_at just read) makes each re-drive happen once per ENGINE_STUCK_AFTER at most, even with
    two sweeps running. A starting worker passes a shorter `stuck_after` (tasks.py), and `skip`:
    the rows its earlier passes re-drove (their re-drives may still wait in its busy queue). Deadlines: ENGINE_PROVIDER_DEADLINE at the provider, ENGINE_QUEUE_DEADLINE
    waiting, then `expired`.
    """
    now = now or timezone.now()
    plan = SweepPlan()
    provider_deadline = now - _seconds(engine.conf("ENGINE_PROVIDER_DEADLINE", 900.0))
    queue_deadline = now - _seconds(engine.conf("ENGINE_QUEUE_DEADLINE", 86400.0))
    late = Generation.objects.filter(
        Q(state__in=AT_PROVIDER, submitted_at__lt=provider_deadline)
        | Q(state=S.QUEUED, queued_at__lt=queue_deadline)
    ).values_list("id", "state")[:limit]
    for generation_id, state in late:
        reason = (
            "waited too long in the queue"
            if state == S.QUEUED
            else "the provider did not finish in time"
        )
        if generation_expire(
            generation_id=generation_id, message=f"Expired: {reason}."
        ):
            plan.expired.append(generation_id)

    if stuck_after is None:
        stuck_after = engine.conf("ENGINE_STUCK_AFTER", 30.0)
    stuck_before = now - _seconds(stuck_after)
    stuck = (
        Generation.objects.filter(state__in=ACTIVE_STATES, due_at__lt=stuck_before)
        .exclude(pk__in=list(skip))
        .order_by("due_at")
        .values_list("id", "state", "poll_count", "due_at")[:limit]
    )
    # Claims whose holder died (claims.py): released now instead of after ENGINE_CLAIM_TTL.
    claimed = list(
        Generation.objects.filter(
            Q(state=S.QUEUED, dispatched_at__isnull=False) | Q(state=S.INGESTING),
            due_at__gt=now,
            due_at__lte=now + _claim_ttl() + _SLACK,
        )
        .order_by("due_at")
        .values_list("id", "state", "poll_count", "due_at")[:limit]
    )
    # due_at is never None here (filtered on it above): the check is for the types.
    orphaned = claims.dead(
        (pk, due_at) for pk, _, _, due_at in claimed if due_at is not None
    )
    if orphaned:
        log.warning("sweep: releasing %d claim(s) of dead workers", len(orphaned))
    overdue = [*stuck, *(row for row in claimed if row[0] in orphaned)]
    for generation_id, state, poll_count, due_at in overdue:
        rearmed = Generation.objects.filter(
            pk=generation_id, state=state, due_at=due_at
        ).update(due_at=now, updated_at=now)
        if not rearmed:
            continue
        if state == S.QUEUED:
            plan.submit.append(generation_id)
        elif state in AT_PROVIDER:
            plan.poll.append((generation_id, poll_count))
        else:
            plan.ingest.append(generation_id)
    plan.dispatch = [
        cap_key_for(backend, account_id)
        for backend, account_id in fair.waiting_cap_keys()
    ]
    if plan.redriven or plan.expired:
        log.warning(
            "sweep: re-driving %d submit, %d poll, %d ingest; expired %d",
            len(plan.submit),
            len(plan.poll),
            len(plan.ingest),
            len(plan.expired),
        )
    return plan
