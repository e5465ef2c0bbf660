"""Submit: send the request to the provider and save its task id in the same UPDATE."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from generation import (
    accounts,
    caps,
    claims,
    imaging,
    webhooks,
)
from generation.backends.base import (
    BackendError,
    ErrorClass,
)
from generation.engine import policy as engine
from generation.engine.failure import _breaker_gate, _cancel_at_provider, _on_error
from generation.engine.poll import _on_result
from generation.engine.state import (
    _SLACK,
    POLL,
    SUBMIT,
    Next,
    S,
    _claim_ttl,
    _jsonable,
    _lease_ttl,
    _limit,
    _load,
    _request_for,
    _seconds,
    _transition,
)
from generation.metrics import provider_call
from generation.models import (
    TERMINAL_STATES,
    Generation,
)

log = logging.getLogger(__name__)


def generation_submit(*, generation_id: int) -> Next:
    """Send a dispatched row to its provider; save the task id at once; answer the first poll."""
    generation = _load(generation_id, "brand")
    now = timezone.now()
    if (
        generation is None
        or generation.state != S.QUEUED
        or generation.dispatched_at is None
    ):
        return Next()
    if generation.due_at is not None and generation.due_at > now + _SLACK:
        return Next()  # another delivery holds it, or its retry is not due yet
    key = generation.cap_key
    cap = caps.cap_for(key)
    if not cap.acquire(
        generation.pk,
        limit=_limit(generation.backend, generation.provider_account_id),
        ttl=_lease_ttl(),
    ):
        # The slot was lost (lease expired during an outage and was taken): back to the fair queue.
        Generation.objects.filter(
            pk=generation_id, state=S.QUEUED, dispatched_at__isnull=False
        ).update(dispatched_at=None, due_at=None, updated_at=now)
        return Next(wake=(key,))
    if (held := _breaker_gate(generation, now=now)) is not None:
        return held
    # The holder is recorded before the claim is taken: a kill between the two leaves either
    # no claim or a claim the sweep can attribute (claims.py).
    claims.hold(generation_id, now + _claim_ttl(), ttl=_claim_ttl().total_seconds())
    claimed = (
        Generation.objects.filter(
            pk=generation_id, state=S.QUEUED, dispatched_at__isnull=False
        )
        .filter(Q(due_at__isnull=True) | Q(due_at__lte=now + _SLACK))
        .update(due_at=now + _claim_ttl(), attempts=F("attempts") + 1, updated_at=now)
    )
    if not claimed:
        return Next()
    try:
        backend = accounts.backend_for_generation(generation)
        request = webhooks.attach(generation, backend, _request_for(generation))
    except (engine.ReferenceMissing, imaging.ImageRejected) as exc:
        return _on_error(
            generation, BackendError(ErrorClass.INVALID_REQUEST, str(exc)), step=SUBMIT
        )
    except Exception as exc:
        # An unknown backend or an undecryptable key: configuration, not a transient failure.
        return _on_error(
            generation,
            BackendError(ErrorClass.AUTH, f"cannot configure the backend: {exc}"),
            step=SUBMIT,
        )
    try:
        with provider_call(generation.backend, "submit"):
            submission = backend.submit(request)
    except BackendError as exc:
        if exc.details.get("maybe_submitted"):
            _record_uncertain_submit(generation, exc, now=now)
        return _on_error(generation, exc, step=SUBMIT)

    sync = submission.result is not None
    first = (
        0.0
        if sync
        else engine.poll_delay(
            elapsed=0.0,
            estimate=engine.duration_estimate(generation.backend, generation.model),
        )
    )
    if request.webhook_url and not sync:
        # A callback is expected: polling is only the fallback, so it starts later.
        first = webhooks.first_poll_delay(generation, first)
    done = timezone.now()
    fields: dict[str, Any] = {
        "provider_task_id": submission.task_id[:200],
        "poll_url": submission.poll_url or "",
        "poll_count": 0,
        "due_at": done + (_claim_ttl() if sync else _seconds(first)),
        "error_class": "",
        "error_message": "",
    }
    if submission.cost is not None:
        fields["actual_cost"] = submission.cost
    if not _transition(generation_id, source=[S.QUEUED], target=S.SUBMITTED, **fields):
        # Canceled while the submit was in flight (or, after a claim outlived by a hung call,
        # another submit won): this task is not the row's. Tell the provider if it listens; free
        # the slot only if the row is finished, never the slot of the submission that won.
        _cancel_at_provider(backend, submission.task_id, submission.poll_url)
        state = (
            Generation.objects.filter(pk=generation_id)
            .values_list("state", flat=True)
            .first()
        )
        if state in TERMINAL_STATES:
            cap.release(generation.pk)
        log.warning(
            "submission %s of %s was not recorded (row is %s)",
            submission.task_id,
            generation.code,
            state,
        )
        return Next(wake=(key,))
    generation.state = S.SUBMITTED
    generation.submitted_at = done
    if submission.cost is not None:
        generation.actual_cost = submission.cost
    generation.provider_task_id = submission.task_id[:200]
    generation.poll_url = submission.poll_url or ""
    if sync:
        assert submission.result is not None
        return _on_result(
            generation, backend, submission.result, seq=0, now=done, last_delay=0.0
        )
    return Next(POLL, countdown=first, poll_seq=0)


def _record_uncertain_submit(
    generation: Generation, error: BackendError, *, now: datetime
) -> None:
    """A submit whose answer was lost after the request went out (a read timeout, a dropped
    connection): the provider may have created, and charged, a task we will never hear of.

    None of the hosted providers (docs/providers.md: BFL, fal, Replicate, Cloudflare) documents a way
    to find a task by anything but the id that was lost, or to submit idempotently, so the retry
    has to submit again; each such submit is kept in provider_details["uncertain_submits"] and a
    later submission that succeeds makes it a possible paid duplicate, which the operator page
    counts with its estimated cost (generation/losses.py)."""
    details = dict(generation.provider_details)
    details.setdefault("uncertain_submits", []).append(
        {
            "at": now.isoformat(),
            "attempt": generation.attempts + 1,
            "error": f"{error.error_class}: {error.message}"[:300],
        }
    )
    generation.provider_details = _jsonable(details)
    Generation.objects.filter(pk=generation.pk).update(
        provider_details=generation.provider_details
    )
