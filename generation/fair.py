"""Fair scheduling: one owner's 1,000-variant batch must not starve another's four images.

Design: the fair queue is the database, not the broker.

- Creating a generation does NOT enqueue a submit task. The row is stored `queued` with
  `dispatched_at = NULL` (that is what "in the fair queue" means) and a dispatcher task
  (`generation_dispatch`, one per backend+account "cap key") is woken on commit.
- The dispatcher takes rows in (-priority, fair_rank, id) order, only as many as the provider's
  concurrency cap has free slots, takes a slot for each (caps.py), marks them dispatched and
  enqueues one submit task per row (when a finished generation frees one slot, the task that saw
  it submits the next row itself). The broker therefore never holds more submit tasks for a
  provider than it has free slots, so FIFO order in the broker cannot cause starvation: the
  order is decided at the last moment, in the database.
- `fair_rank` is a virtual start time (start-time fair queuing, one unit per image): a new row
  of owner O gets rank max(V, last rank of O's waiting rows) + 1, where V is the rank just
  before the oldest waiting row (the "current time" of the queue). An owner who queues 1,000
  rows gets ranks V+1..V+1000; another owner arriving later gets V'+1..V'+4 where V' is where the
  queue is now, so the two interleave one for one from then on: the four images start within
  the next eight dispatches, whatever the backlog. Ties break by id (arrival).
- `priority` (default 0) sorts before the rank, for work that must jump the line.
- An owner is a user (`user:<id>`) by default; a later Batch may pass another owner key.

Selection uses `SELECT ... FOR UPDATE SKIP LOCKED`, so any number of dispatchers on any number of
workers can run at once without handing out a row twice. Everything is durable: a worker killed
mid-dispatch loses nothing (rows it claimed and never submitted are re-driven by the sweep).
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from generation.caps import Cap, RedisCap
from generation.models import FAIR_QUEUE, Generation, GenerationState


def owner_key_for(*, user_id: int | None, workspace_id: int) -> str:
    return f"user:{user_id}" if user_id is not None else f"workspace:{workspace_id}"


def next_ranks(
    *, backend: str, account_id: int | None, owner_key: str, count: int = 1
) -> list[int]:
    """Virtual start times for `count` new rows of one owner (see the module docstring)."""
    waiting = Generation.objects.for_cap(backend=backend, account_id=account_id).filter(
        FAIR_QUEUE
    )
    oldest = waiting.aggregate(v=Min("fair_rank"))["v"]
    now = oldest - 1 if oldest is not None else 0
    own = waiting.filter(owner_key=owner_key).aggregate(m=Max("fair_rank"))["m"]
    start = max(now, own if own is not None else now)
    return [start + i for i in range(1, count + 1)]


def claim_next(
    *,
    backend: str,
    account_id: int | None,
    count: int,
    cap: Cap,
    limit: int,
    lease_ttl: float,
) -> list[int]:
    """Take up to `count` rows from the fair queue, a cap slot for each; answer their ids."""
    if count <= 0:
        return []
    if isinstance(cap, RedisCap) and connection.vendor == "postgresql":
        return _claim_in_one_statement(
            backend=backend,
            account_id=account_id,
            count=count,
            cap=cap,
            limit=limit,
            lease_ttl=lease_ttl,
        )
    now = timezone.now()
    with transaction.atomic():
        candidates = list(
            Generation.objects.for_cap(backend=backend, account_id=account_id)
            .filter(FAIR_QUEUE)
            .order_by("-priority", "fair_rank", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:count]
        )
        taken = []
        for generation_id in candidates:
            if not cap.acquire(generation_id, limit=limit, ttl=lease_ttl):
                break  # full: another dispatcher took the last slots meanwhile
            # One row at a time, so the database fallback cap counts it at the next acquire.
            Generation.objects.filter(FAIR_QUEUE, pk=generation_id).update(
                dispatched_at=now, due_at=now, updated_at=now
            )
            taken.append(generation_id)
    return taken


def _claim_in_one_statement(
    *,
    backend: str,
    account_id: int | None,
    count: int,
    cap: RedisCap,
    limit: int,
    lease_ttl: float,
) -> list[int]:
    """The hot path (PostgreSQL + Redis): the rows leave the fair queue in ONE statement
    (UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING), then take their slots.
    A row that finds the cap full after all (a race with another dispatcher) goes back to the
    fair queue with its rank, so fairness is kept. One round trip instead of four (BEGIN, SELECT,
    UPDATE, COMMIT): this runs once per generation."""
    table = connection.ops.quote_name(Generation._meta.db_table)
    account = (
        "provider_account_id IS NULL"
        if account_id is None
        else "provider_account_id = %s"
    )
    now = timezone.now()
    params: list[Any] = [
        now,
        now,
        now,
        backend,
        *([account_id] if account_id is not None else []),
    ]
    params += [GenerationState.QUEUED.value, count]
    sql = f"""
        UPDATE {table} SET dispatched_at = %s, due_at = %s, updated_at = %s
        WHERE id IN (
            SELECT id FROM {table}
            WHERE backend = %s AND {account} AND state = %s AND dispatched_at IS NULL
            ORDER BY priority DESC, fair_rank, id
            LIMIT %s
            FOR UPDATE SKIP LOCKED
        )
        RETURNING id, priority, fair_rank
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = sorted(cursor.fetchall(), key=lambda row: (-row[1], row[2], row[0]))
    taken: list[int] = []
    for position, (generation_id, _priority, _rank) in enumerate(rows):
        if not cap.acquire(generation_id, limit=limit, ttl=lease_ttl):
            back = [row[0] for row in rows[position:]]
            Generation.objects.filter(pk__in=back, state=GenerationState.QUEUED).update(
                dispatched_at=None, due_at=None
            )
            break
        taken.append(generation_id)
    return taken


def waiting_cap_keys() -> list[tuple[str, int | None]]:
    """(backend, account id) pairs that have rows waiting in the fair queue."""
    return list(
        Generation.objects.filter(FAIR_QUEUE)
        .values_list("backend", "provider_account_id")
        .distinct()
        .order_by("backend", "provider_account_id")
    )


def has_waiting(*, backend: str, account_id: int | None) -> bool:
    return (
        Generation.objects.for_cap(backend=backend, account_id=account_id)
        .filter(FAIR_QUEUE)
        .exists()
    )
