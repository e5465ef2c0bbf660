"""Poll and callbacks: record the provider's answer once per poll sequence number."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from generation import (
    accounts,
    breaker,
    caps,
    claims,
)
from generation.backends.base import (
    Backend,
    BackendError,
    ErrorClass,
    PollResult,
    ProviderState,
)
from generation.engine import policy as engine
from generation.engine.failure import _finish, _on_error
from generation.engine.ingest import _store
from generation.engine.state import (
    AT_PROVIDER,
    INGEST,
    POLL,
    Next,
    S,
    _claim_ttl,
    _jsonable,
    _lease_ttl,
    _load,
    _seconds,
    _this_poll,
    _transition,
)
from generation.metrics import provider_call
from generation.models import (
    Generation,
)
from studio.metrics import PROVIDER_GENERATION_LATENCY


def generation_poll(*, generation_id: int, seq: int) -> Next:
    """Ask the provider once how a submitted generation is doing; never waits.

    `seq` is the poll's number (the row's poll_count when it was scheduled). There is no claim
    write: a duplicate delivery of the same poll may ask the provider twice (a harmless read),
    but only the first answer recorded moves poll_count on, so exactly one chain continues.
    """
    generation = _load(generation_id)
    if (
        generation is None
        or generation.state not in AT_PROVIDER
        or generation.poll_count != seq
    ):
        return Next()
    now = timezone.now()
    # The previous wait (for the duration estimate): the row's due time minus when it was set.
    last_delay = lateness = 0.0
    if generation.due_at is not None and generation.updated_at is not None:
        last_delay = max(
            0.0, (generation.due_at - generation.updated_at).total_seconds()
        )
        # How late this poll runs: a late poll's answer times the worker, not the provider.
        lateness = (now - generation.due_at).total_seconds()
    # The provider still counts this task: keep (or restore) its slot.
    caps.cap_for(generation.cap_key).renew(generation.pk, ttl=_lease_ttl())
    deadline = engine.conf("ENGINE_PROVIDER_DEADLINE", 900.0)
    if (
        generation.submitted_at
        and (now - generation.submitted_at).total_seconds() > deadline
    ):
        error = BackendError(
            ErrorClass.TIMEOUT, f"The provider did not finish within {deadline:g} s."
        )
        _finish(generation, S.EXPIRED, error, source=AT_PROVIDER)
        return Next(wake=(generation.cap_key,))
    try:
        backend = accounts.backend_for_generation(generation)
        with provider_call(generation.backend, "poll"):
            result = backend.poll(
                task_id=generation.provider_task_id,
                poll_url=generation.poll_url or None,
            )
    except BackendError as exc:
        return _on_error(generation, exc, step=POLL, seq=seq)
    return _on_result(
        generation,
        backend,
        result,
        seq=seq,
        now=timezone.now(),
        last_delay=last_delay,
        lateness=lateness,
    )


def _on_result(
    generation: Generation,
    backend: Backend,
    result: PollResult,
    *,
    seq: int,
    now: datetime,
    last_delay: float,
    lateness: float = 0.0,
    callback: bool = False,
) -> Next:
    """Apply one provider answer. `callback`: it came by webhook, not by poll number `seq`, so
    it applies while the row still stands for the same provider task (whatever polls did
    meanwhile) and leaves poll_count alone (it counts polls)."""
    key = generation.cap_key
    if result.state == ProviderState.PENDING:
        elapsed = (
            (now - generation.submitted_at).total_seconds()
            if generation.submitted_at
            else 0.0
        )
        delay = engine.poll_delay(
            elapsed=elapsed,
            progress=result.progress,
            estimate=engine.duration_estimate(generation.backend, generation.model),
        )
        fields: dict[str, Any] = {
            "poll_count": seq + 1,
            "due_at": now + _seconds(delay),
            "progress": result.progress,
            "updated_at": now,
        }
        rows = Generation.objects.filter(
            pk=generation.pk, **_this_poll(generation, seq)
        )
        if generation.state == S.SUBMITTED:
            # The provider acknowledged the task: submitted -> running, stamped.
            moved = rows.filter(state=S.SUBMITTED).update(
                state=S.RUNNING, running_at=now, **fields
            )
        else:
            moved = rows.filter(state=S.RUNNING).update(**fields)
        return Next(POLL, countdown=delay, poll_seq=seq + 1) if moved else Next()

    if result.state == ProviderState.READY:
        # The provider no longer counts it: free the slot before downloading, so the next
        # generation can be submitted while this one is ingested.
        caps.cap_for(key).release(generation.pk)
        breaker.record_success(key)
        _learn_duration(
            generation, result, now=now, seq=seq, last_delay=last_delay, late=lateness
        )
        if generation.submitted_at is not None:
            PROVIDER_GENERATION_LATENCY.labels(
                generation.backend, generation.model
            ).observe(max(0.0, (now - generation.submitted_at).total_seconds()))
        details = dict(generation.provider_details)
        if result.seed is not None:
            details["seed"] = result.seed
        if result.provider_prompt and result.provider_prompt != generation.prompt:
            details["provider_prompt"] = result.provider_prompt
        fields = {
            "result_url": result.result_url or "",
            "provider_details": _jsonable(details),
            "progress": 1.0,
            "poll_count": seq + 1,
        }
        if result.cost is not None:
            fields["actual_cost"] = result.cost
            generation.actual_cost = result.cost
        where = _this_poll(generation, seq)
        if callback:
            del fields["poll_count"]
            where = {"provider_task_id": generation.provider_task_id}
        # Synchronous backend: the bytes are here, ingest in this same step (claimed for it);
        # otherwise an ingest task downloads the result at once.
        data = result.result_bytes
        inline = data is not None
        if inline:
            claims.hold(
                generation.pk, now + _claim_ttl(), ttl=_claim_ttl().total_seconds()
            )
        if not _transition(
            generation.pk,
            source=AT_PROVIDER,
            target=S.INGESTING,
            where=where,
            due_at=now + _claim_ttl() if inline else now,
            **fields,
        ):
            return Next(wake=(key,))
        if data is None:  # not inline: the ingest task downloads the result
            return Next(INGEST, wake=(key,))
        generation.state = S.INGESTING
        nxt = _store(generation, data)
        return Next(nxt.action, nxt.countdown, nxt.poll_seq, wake=(key, *nxt.wake))

    error = result.error or BackendError(
        ErrorClass.PROVIDER_ERROR, "The provider reported a failure without details."
    )
    return _on_error(generation, error, step="resubmit", seq=seq)


def _learn_duration(
    generation: Generation,
    result: PollResult,
    *,
    now: datetime,
    seq: int,
    last_delay: float,
    late: float,
) -> None:
    """Teach the first-poll estimate what this answer says about the provider, and only that
    (engine.record_duration): the provider's own processing time when it reports one; else a
    poll that ran on time after a pending one (the finish lies in the last wait: count half of
    it); else, ready at the first poll, an upper bound. A late poll teaches nothing."""
    backend, model = generation.backend, generation.model
    if result.duration is not None:
        engine.record_duration(backend, model, result.duration)
        return
    if generation.submitted_at is None or result.result_bytes is not None:
        return
    elapsed = (now - generation.submitted_at).total_seconds()
    if not engine.poll_was_on_time(lateness=late, last_delay=last_delay):
        return
    if seq > 0:
        engine.record_duration(backend, model, elapsed - last_delay / 2)
    else:
        engine.record_upper_bound(backend, model, elapsed)


def generation_callback(
    *, generation_id: int, task_id: str, result: PollResult
) -> Next:
    """A provider's webhook said how task `task_id` ended: apply it exactly as a poll answer
    (the same _on_result), without a poll. A duplicate or late callback, one for a task the row
    no longer stands for (resubmitted, re-routed) and a progress event change nothing."""
    generation = _load(generation_id)
    if (
        generation is None
        or generation.state not in AT_PROVIDER
        or generation.provider_task_id != task_id
        or result.state == ProviderState.PENDING
    ):
        return Next()
    backend = accounts.backend_for_generation(generation)
    return _on_result(
        generation,
        backend,
        result,
        seq=generation.poll_count,
        now=timezone.now(),
        last_delay=0.0,
        callback=True,
    )
