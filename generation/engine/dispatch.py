"""Dispatch: rows leave the fair queue under SELECT ... FOR UPDATE SKIP LOCKED, within caps."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from generation import (
    caps,
    fair,
)
from generation.engine.state import Dispatched, S, _lease_ttl, _limit, _load
from generation.models import (
    Generation,
    parse_cap_key,
)


def generation_dispatch(*, cap_key: str) -> Dispatched:
    """Hand as many fair-queue rows to submit tasks as the cap has free slots (fair.py)."""
    # Cleared first: a wake-up that arrives while this runs schedules another pass, none is lost.
    caps.flag_clear(f"dispatch:{cap_key}")
    backend, account_id = parse_cap_key(cap_key)
    cap = caps.cap_for(cap_key)
    limit = _limit(backend, account_id)
    free = limit - cap.count()
    ids = fair.claim_next(
        backend=backend,
        account_id=account_id,
        count=free,
        cap=cap,
        limit=limit,
        lease_ttl=_lease_ttl(),
    )
    # Rows left waiting while this pass filled the cap get a slot when one is released (that wakes
    # the dispatcher). Only a cap found full needs the timed re-check (leases that expire).
    backlog = free <= 0 and fair.has_waiting(backend=backend, account_id=account_id)
    return Dispatched(ids, backlog)


def generation_dispatch_one(*, generation_id: int) -> bool:
    """Take a cap slot for one row directly (the command line); False while the cap is full."""
    generation = _load(generation_id)
    if generation is None or generation.state != S.QUEUED:
        return True
    now = timezone.now()
    cap = caps.cap_for(generation.cap_key)
    taken = cap.acquire(
        generation.pk,
        limit=_limit(generation.backend, generation.provider_account_id),
        ttl=_lease_ttl(),
    )
    # Either way the row is due now: the sweep only re-drives it if this caller goes away. A row
    # whose submit is in flight (due_at in the future) is left alone: that would submit it twice.
    Generation.objects.filter(pk=generation_id, state=S.QUEUED).filter(
        Q(dispatched_at__isnull=True) | Q(due_at__isnull=True) | Q(due_at__lte=now)
    ).update(dispatched_at=now, due_at=now, updated_at=now)
    return taken
