"""Failure, retry, reroute, cancel and expiry: what happens when a step meets an error."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from generation import (
    accounts,
    breaker,
    caps,
    fair,
    routing,
)
from generation.backends.base import (
    Backend,
    BackendError,
    ErrorClass,
)
from generation.engine import policy as engine
from generation.engine.state import (
    _SLACK,
    AT_PROVIDER,
    INGEST,
    POLL,
    SUBMIT,
    Next,
    S,
    _jsonable,
    _lease_ttl,
    _load,
    _request_for,
    _seconds,
    _this_poll,
    _transition,
    wake_on_commit,
)
from generation.error_text import RAW_MAX_CHARS, member_message
from generation.metrics import finished, provider_error
from generation.models import (
    ACTIVE_STATES,
    Generation,
    cap_key_for,
)

log = logging.getLogger(__name__)


def _cancel_at_provider(backend: Backend, task_id: str, poll_url: str | None) -> None:
    try:
        backend.cancel(task_id=task_id, poll_url=poll_url)
    except Exception:  # best effort: most providers (BFL) cannot cancel
        log.info("cancel at provider failed for task %s", task_id, exc_info=True)


def _error_fields(generation: Generation, error: BackendError) -> dict[str, Any]:
    details = dict(generation.provider_details)
    if error.error_class == ErrorClass.MODERATED:
        details["moderation_reasons"] = list(error.details.get("reasons") or [])
        if stage := error.details.get("moderation"):
            details["moderation_stage"] = stage
    if error.details:
        details["error_details"] = error.details
    if error.status_code:
        details["error_status"] = error.status_code
    # The provider's words for admins only; members read the classified message (error_text.py).
    details["error_raw"] = error.message[:RAW_MAX_CHARS]
    return {
        "error_class": str(error.error_class),
        "error_message": member_message(error),
        "provider_details": _jsonable(details),
    }


def _finish(
    generation: Generation,
    target: str,
    error: BackendError | None,
    *,
    source: Iterable[str] = ACTIVE_STATES,
) -> bool:
    """Move an active row to a terminal state with the error kept; free its slot. True if it won."""
    fields: dict[str, Any] = {"due_at": None, "result_url": ""}
    if error is not None:
        fields.update(_error_fields(generation, error))
    moved = _transition(generation.pk, source=source, target=target, **fields)
    if moved:
        caps.cap_for(generation.cap_key).release(generation.pk)
        finished(generation, target)
    return moved


def _on_error(
    generation: Generation, error: BackendError, *, step: str, seq: int = 0
) -> Next:
    """Terminal or retry, per engine.decide; a retry is scheduled, never slept. With a fallback
    chain, a failure worth falling back on re-routes the row instead (generation_reroute)."""
    provider_error(generation.backend, error.error_class)
    tripped = breaker.record_failure(
        generation.cap_key, error.error_class, error.message
    )
    decision = engine.decide(
        error, retries=generation.retries, rate_limited=generation.rate_limited
    )
    if (
        generation.fallbacks
        and routing.falls_back(error.error_class)
        and (
            decision.outcome == "failed"
            # Retrying a backend whose breaker just opened is waiting for nothing: move on now,
            # while no task of ours lives at that provider.
            or (step in (SUBMIT, "resubmit") and tripped == breaker.OPEN)
        )
    ):
        rerouted = generation_reroute(
            generation=generation,
            error_class=str(error.error_class),
            message=error.message,
            step=step,
            seq=seq,
            final=decision.outcome != "retry",
        )
        if rerouted is not None:
            return rerouted
    if decision.outcome != "retry":
        target = {"moderated": S.MODERATED, "expired": S.EXPIRED}.get(
            decision.outcome, S.FAILED
        )
        _finish(generation, target, error)
        return Next(wake=(generation.cap_key,))
    now = timezone.now()
    delay = decision.delay
    fields: dict[str, Any] = {
        decision.counter: F(decision.counter) + 1,
        "error_class": str(error.error_class),
        "error_message": member_message(error),
        "due_at": now + _seconds(delay),
        "updated_at": now,
    }
    cap = caps.cap_for(generation.cap_key)
    if step == SUBMIT:
        moved = Generation.objects.filter(pk=generation.pk, state=S.QUEUED).update(
            **fields
        )
        if moved:
            cap.renew(generation.pk, ttl=_lease_ttl(delay))
        return Next(SUBMIT, countdown=delay) if moved else Next()
    if step == POLL:
        moved = Generation.objects.filter(
            pk=generation.pk, state__in=AT_PROVIDER, **_this_poll(generation, seq)
        ).update(poll_count=seq + 1, **fields)
        return Next(POLL, countdown=delay, poll_seq=seq + 1) if moved else Next()
    if step == INGEST:
        moved = Generation.objects.filter(pk=generation.pk, state=S.INGESTING).update(
            **fields
        )
        return Next(INGEST, countdown=delay) if moved else Next()
    # "resubmit": the provider's task failed in a retryable way (BFL "Error"), or a synchronous
    # result was lost: submit again, keeping the slot. The old task id stays in the details.
    details = dict(generation.provider_details)
    if generation.provider_task_id:
        details.setdefault("previous_task_ids", []).append(generation.provider_task_id)
    fields.update(
        provider_task_id="",
        poll_url="",
        result_url="",
        dispatched_at=now,
        provider_details=_jsonable(details),
    )
    moved = _transition(
        generation.pk,
        source=[*AT_PROVIDER, S.INGESTING],
        target=S.QUEUED,
        # Only while the row still stands for the task that failed (not a later resubmission).
        where={"provider_task_id": generation.provider_task_id},
        **fields,
    )
    if moved:
        cap.renew(generation.pk, ttl=_lease_ttl(delay))
    return Next(SUBMIT, countdown=delay) if moved else Next()


def _reroute_guard(
    generation: Generation, step: str, seq: int
) -> tuple[list[str], dict[str, Any]]:
    """The states and column values the row must still have for a re-route by this step to be
    the one that counts (as every transition here: a duplicate or late caller finds it moved)."""
    where: dict[str, Any] = {
        "backend": generation.backend,
        "provider_task_id": generation.provider_task_id,
    }
    if step == SUBMIT:
        # Our own claim took one attempt; a later claim (a re-drive after ours lapsed) took
        # another, and then that submission, not ours, decides.
        return [S.QUEUED], {**where, "attempts": generation.attempts + 1}
    if step == "gate":
        # Not claimed yet: only while nobody else has claimed it since it was read.
        return [S.QUEUED], {
            **where,
            "attempts": generation.attempts,
            "due_at": generation.due_at,
        }
    if step == POLL:
        return list(AT_PROVIDER), {**where, "poll_count": seq}
    if step == INGEST:
        return [S.INGESTING], where
    return [*AT_PROVIDER, S.INGESTING], where  # "resubmit"


def generation_reroute(
    *,
    generation: Generation,
    error_class: str,
    message: str,
    step: str,
    seq: int = 0,
    outcome: str = "failed",
    final: bool = True,
) -> Next | None:
    """Move a generation that failed on its backend to the next usable one of its fallback chain.

    One conditional UPDATE (guarded per step, `_reroute_guard`) puts the row back to `queued` on
    the new backend and account, re-priced, with a fresh retry budget and a new place in that
    backend's fair queue; the failure, any candidates skipped on the way and the new choice are
    appended to `route`. The old slot is freed; the dispatchers of both caps are woken (Next.wake).
    Nothing is submitted here, so a duplicate caller cannot submit twice: it loses the UPDATE.

    Answers None when no remaining candidate can serve the request now (the caller goes on with
    its failure or retry; with `final`, the failure and the skipped candidates are recorded and the
    chain is cleared), Next() when another caller moved the row first.
    """
    try:
        request = _request_for(generation)
    except Exception:  # a reference vanished: no other backend can serve it either
        log.info("cannot re-route %s: its request cannot be rebuilt", generation.code)
        return None
    chosen, skipped = routing.next_route(generation, request)
    failed = routing.failed_entry(generation, error_class, message, outcome=outcome)
    source, where = _reroute_guard(generation, step, seq)
    now = timezone.now()
    if chosen is None:
        if final:
            Generation.objects.filter(
                pk=generation.pk, state__in=source, **where
            ).update(
                route=_jsonable([*generation.route, failed, *skipped]),
                fallbacks=[],
                updated_at=now,
            )
        return None
    account_id = chosen.account.pk if chosen.account is not None else None
    rank = fair.next_ranks(
        backend=chosen.backend, account_id=account_id, owner_key=generation.owner_key
    )[0]
    moved = _transition(
        generation.pk,
        source=source,
        target=S.QUEUED,
        where=where,
        backend=chosen.backend,
        provider_account=chosen.account,
        estimated_cost=chosen.estimate,
        actual_cost=None,
        fallbacks=chosen.fallbacks,
        route=_jsonable([*generation.route, failed, *skipped, *chosen.entries]),
        provider_task_id="",
        poll_url="",
        result_url="",
        poll_count=0,
        progress=None,
        retries=0,
        rate_limited=0,
        error_class="",
        error_message="",
        due_at=None,
        dispatched_at=None,
        fair_rank=rank,
    )
    if not moved:
        return Next()
    old_key = generation.cap_key
    caps.cap_for(old_key).release(generation.pk)
    if step == POLL and generation.provider_task_id:
        # Its task may still run there; ask the provider to drop it (best effort).
        try:
            old_backend = accounts.backend_for_generation(generation)
        except Exception:
            old_backend = None
        if old_backend is not None:
            _cancel_at_provider(
                old_backend, generation.provider_task_id, generation.poll_url or None
            )
    log.warning(
        "generation %s falls back from %s to %s (%s: %s)",
        generation.code,
        generation.backend,
        chosen.backend,
        error_class,
        message[:200],
    )
    return Next(wake=(old_key, cap_key_for(chosen.backend, account_id)))


def _breaker_gate(generation: Generation, *, now: datetime) -> Next | None:
    """Before a submission: None when the backend's breaker lets it through (closed, or this is
    the half-open probe). Otherwise the row moves on to a fallback now, or, without one, waits
    (keeping its slot) and tries again when the breaker may let it through."""
    allowed, wait = breaker.allow(generation.cap_key)
    if allowed:
        return None
    message = (
        f"{generation.backend} keeps failing: its circuit breaker is open "
        f"(next probe in {wait:.0f} s)."
    )
    if generation.fallbacks:
        rerouted = generation_reroute(
            generation=generation,
            error_class=routing.CIRCUIT_OPEN,
            message=message,
            step="gate",
            outcome="skipped",
            final=False,
        )
        if rerouted is not None:
            return rerouted
    delay = min(max(wait, 0.5), engine.conf("ENGINE_BREAKER_RECHECK", 5.0))
    moved = (
        Generation.objects.filter(
            pk=generation.pk, state=S.QUEUED, dispatched_at__isnull=False
        )
        .filter(Q(due_at__isnull=True) | Q(due_at__lte=now + _SLACK))
        .update(due_at=now + _seconds(delay), error_message=message, updated_at=now)
    )
    if not moved:
        return Next()
    caps.cap_for(generation.cap_key).renew(generation.pk, ttl=_lease_ttl(delay))
    return Next(SUBMIT, countdown=delay)


def generation_fail(*, generation_id: int, error: BackendError) -> bool:
    """Fail an active generation with its error class and message (moderation: `moderated`)."""
    generation = _load(generation_id)
    if generation is None:
        return False
    target = S.MODERATED if error.error_class == ErrorClass.MODERATED else S.FAILED
    if not _finish(generation, target, error):
        return False
    wake_on_commit([generation.cap_key])
    return True


def generation_cancel(*, generation_id: int) -> bool:
    """Cancel a generation that has not reached ingesting; best effort at the provider."""
    generation = _load(generation_id)
    if generation is None:
        return False
    if not _transition(
        generation_id, source=[S.QUEUED, *AT_PROVIDER], target=S.CANCELED, due_at=None
    ):
        return False
    caps.cap_for(generation.cap_key).release(generation.pk)
    finished(generation, S.CANCELED)
    if generation.provider_task_id:
        try:
            backend = accounts.backend_for_generation(generation)
        except Exception:
            backend = None
        if backend is not None:
            _cancel_at_provider(
                backend, generation.provider_task_id, generation.poll_url or None
            )
    wake_on_commit([generation.cap_key])
    return True


def generation_expire(*, generation_id: int, message: str) -> bool:
    """Expire an active generation (a deadline passed); error class `timeout`."""
    generation = _load(generation_id)
    if generation is None:
        return False
    if not _finish(generation, S.EXPIRED, BackendError(ErrorClass.TIMEOUT, message)):
        return False
    wake_on_commit([generation.cap_key])
    return True
