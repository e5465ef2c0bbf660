"""Generation services: create, dispatch, submit, poll, ingest, fail, cancel, expire, sweep.

The only code that changes a generation's state. Every transition is ONE conditional UPDATE
(`filter(pk=..., state__in=expected).update(...)`) that also stamps the transition's timestamp;
it answers whether it won. A duplicate or late task delivery finds the row already moved and does
nothing, which is what makes every Celery task here safe to run twice.

Step functions (`generation_submit`, `generation_poll`, `generation_ingest`) never wait and never
enqueue anything themselves: they answer a `Next` (what to run after how many seconds, and which
concurrency caps got a free slot). generation/tasks.py turns a Next into Celery messages; the
`generate` management command follows the same Next values in the foreground with real sleeps.
So the worker path and the command path run the same engine code.

Claims that keep a step from running twice at once:
- dispatch: the row leaves the fair queue (`dispatched_at`) under SELECT ... FOR UPDATE SKIP LOCKED.
- submit: `due_at <= now` → `due_at = now + ENGINE_CLAIM_TTL` (a second delivery sees a future
  due_at and stops). The provider task id and polling URL are saved in the same UPDATE that moves
  the row to `submitted`, before anything waits; a `submitted` row is only ever polled.
- poll: tasks carry the poll sequence number; recording an answer increments `poll_count` where
  it still equals that number (and the provider task id is the one polled), so exactly one poll
  chain survives duplicates and sweep re-drives.
- ingest: the same due_at claim as submit; the file keys are deterministic and the Asset is
  an upsert (INSERT ... ON CONFLICT DO UPDATE), so even a second run gives one asset.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from generation import (
    accounts,
    breaker,
    caps,
    claims,
    engine,
    fair,
    imaging,
    routing,
    signals,
    webhooks,
)
from generation.backends.base import (
    Backend,
    BackendError,
    ErrorClass,
    PollResult,
    ProviderState,
    RuleViolation,
)
from generation.error_text import RAW_MAX_CHARS, member_message
from generation.metrics import finished, provider_call, provider_error
from generation.models import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    Asset,
    Generation,
    GenerationState,
    ProviderAccount,
    cap_key_for,
    parse_cap_key,
)
from studio.metrics import PROVIDER_GENERATION_LATENCY

log = logging.getLogger(__name__)

S = GenerationState
SUBMIT, POLL, INGEST, NOTHING = "submit", "poll", "ingest", "none"
AT_PROVIDER = (S.SUBMITTED, S.RUNNING)
_STAMPS = {
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


def _wake_on_commit(key: str) -> None:
    def wake() -> None:
        from generation import tasks

        tasks.wake_dispatcher(key)

    transaction.on_commit(wake)


# --- creation -----------------------------------------------------------------------------------


def _clean_reference_specs(
    references: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    specs = []
    for ref in references:
        spec = {
            k: str(v)
            for k, v in ref.items()
            if k in ("code", "file", "role", "sha256", "name") and v
        }
        if not (spec.get("code") or spec.get("file")):
            raise RuleViolation(
                "references",
                f"Reference {dict(ref)!r} names neither a library image nor a file.",
            )
        specs.append(spec)
    return specs


def generation_create(
    *,
    workspace: Any,
    backend: str,
    model: str,
    prompt: str,
    width: int,
    height: int,
    seed: int | None = None,
    params: Mapping[str, Any] | None = None,
    references: Sequence[Mapping[str, Any]] = (),
    created_by: Any = None,
    campaign: Any = None,
    brand: Any = None,
    template_version: Any = None,
    owner_key: str | None = None,
    priority: int = 0,
    dispatch: bool = True,
    fallback: Sequence[str] = (),
) -> Generation:
    """Validate, price and store one generation as `queued`; wake the dispatcher on commit.

    A request that breaks the backend's rules raises RuleViolation and NOTHING is stored: it is the
    caller's input error (a form field, a batch row, a command-line flag), shown at once with the
    rule named, and a failed row would only litter the gallery and the spend report. Likewise a
    backend with no credentials raises BackendError(AUTH) here. Failures that only the provider
    can detect (a bad key, moderation) happen later and are stored on the row.

    dispatch=False (the command line) keeps the row out of the fair queue: the caller drives it
    with generation_dispatch_one / generation_submit itself.

    `backend` is a backend name or a routing policy ("cheapest", "fastest"); `fallback` names
    the backends to fall back on, in order (generation/routing.py). The row stores the backend
    chosen, the policy asked for, the chain in reserve and the route so far.
    """
    policy = backend
    routing.check_names(policy, fallback)
    specs = _clean_reference_specs(references)
    try:
        loaded = engine.load_references(workspace_id=workspace.pk, specs=specs)
    except (engine.ReferenceMissing, imaging.ImageRejected) as exc:
        raise RuleViolation("references", str(exc)) from exc
    if brand is None and campaign is not None:
        brand = campaign.brand
    request = engine.build_request(
        model=model,
        prompt=prompt,
        width=width,
        height=height,
        seed=seed,
        params=dict(params or {}),
        references=loaded,
        brand=brand,
    )
    route = routing.plan(
        workspace_id=workspace.pk, policy=policy, request=request, fallback=fallback
    )
    backend, account, estimate = route.backend, route.account, route.estimate
    owner = owner_key or fair.owner_key_for(
        user_id=getattr(created_by, "pk", None), workspace_id=workspace.pk
    )
    account_id = account.pk if account is not None else None
    now = timezone.now()
    with transaction.atomic():
        rank = fair.next_ranks(backend=backend, account_id=account_id, owner_key=owner)[
            0
        ]
        generation = Generation.objects.create(
            workspace=workspace,
            campaign=campaign,
            brand=brand,
            template_version=template_version,
            created_by=created_by,
            backend=backend,
            model=model,
            provider_account=account,
            prompt=prompt,
            params=_jsonable(dict(params or {})),
            width=width,
            height=height,
            seed=seed,
            references=specs,
            estimated_cost=estimate,
            requested_backend=policy,
            fallbacks=route.fallbacks,
            route=_jsonable(route.entries),
            owner_key=owner,
            priority=priority,
            fair_rank=rank,
            queued_at=now,
            dispatched_at=None if dispatch else now,
            due_at=None if dispatch else now,
        )
        if dispatch:
            _wake_on_commit(generation.cap_key)
    # Links the request (or command) that made it to the tasks that run it (studio/logs.py).
    log.info(
        "generation queued",
        extra={"generation_id": generation.pk, "backend": backend, "model": model},
    )
    return generation


def reference_file_store(*, content: bytes, name: str = "") -> dict[str, str]:
    """Store an ad-hoc reference image (command line) under a content-addressed key; answer its spec."""
    info = imaging.inspect(
        content,
        max_pixels=int(getattr(settings, "STUDIO_UPLOAD_MAX_PIXELS", 40_000_000)),
    )
    key = f"generations/inputs/{info.sha256}.{info.extension}"
    if not default_storage.exists(key):
        key = default_storage.save(key, ContentFile(content))
    return {"file": key, "sha256": info.sha256, "name": name}


# --- dispatch -----------------------------------------------------------------------------------


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


# --- submit -------------------------------------------------------------------------------------


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

    None of the hosted providers (providers.md: BFL, fal, Replicate, Cloudflare) documents a way
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


def _cancel_at_provider(backend: Backend, task_id: str, poll_url: str | None) -> None:
    try:
        backend.cancel(task_id=task_id, poll_url=poll_url)
    except Exception:  # best effort: most providers (BFL) cannot cancel
        log.info("cancel at provider failed for task %s", task_id, exc_info=True)


# --- poll ---------------------------------------------------------------------------------------


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


def _this_poll(generation: Generation, seq: int) -> dict[str, Any]:
    """The row as this poll saw it: its answer applies only while nothing else moved it on."""
    return {"poll_count": seq, "provider_task_id": generation.provider_task_id}


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
        inline = result.result_bytes is not None
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
        if not inline:
            return Next(INGEST, wake=(key,))
        generation.state = S.INGESTING
        nxt = _store(generation, result.result_bytes)
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


# --- ingest -------------------------------------------------------------------------------------


class _ResultLost(Exception):
    pass


def generation_ingest(*, generation_id: int) -> Next:
    """Download the result, verify it with Pillow, store it and its thumbnail, create the Asset."""
    generation = _load(generation_id, "workspace")
    now = timezone.now()
    if generation is None or generation.state != S.INGESTING:
        return Next()
    claims.hold(generation_id, now + _claim_ttl(), ttl=_claim_ttl().total_seconds())
    claimed = (
        Generation.objects.filter(pk=generation_id, state=S.INGESTING)
        .filter(Q(due_at__isnull=True) | Q(due_at__lte=now + _SLACK))
        .update(due_at=now + _claim_ttl(), updated_at=now)
    )
    if not claimed:
        return Next()
    try:
        backend = accounts.backend_for_generation(generation)
        content = _download(generation, backend)
    except _ResultLost as exc:
        # A synchronous backend keeps nothing: draw it again (counts as a retry).
        return _on_error(
            generation,
            BackendError(ErrorClass.NOT_FOUND, str(exc), retryable=True),
            step="resubmit",
        )
    except BackendError as exc:
        return _on_error(generation, exc, step=INGEST)
    return _store(generation, content)


def _download(generation: Generation, backend: Backend) -> bytes:
    """The result's bytes. A result URL that fails as expired (a 403 from the delivery host: a
    lapsed signature, or a transient refusal) is not the end while the provider keeps the task:
    poll it again for a (fresh) URL and fetch that; if that fails too, the error is retryable
    and the ingest retries with backoff, polling again each time. Only a provider that no longer
    has the result, or the retries running out, make it `expired` (a paid image lost)."""
    synchronous = backend.capabilities().synchronous
    if generation.result_url:
        try:
            with provider_call(generation.backend, "fetch"):
                content, _type = backend.fetch(
                    PollResult(ProviderState.READY, result_url=generation.result_url)
                )
            return content
        except BackendError as exc:
            if exc.error_class != ErrorClass.EXPIRED:
                raise
            log.info(
                "result URL of %s refused as expired; polling for a fresh one",
                generation.code,
            )
    if synchronous:
        raise _ResultLost("the synchronous result was lost before it was stored")
    with provider_call(generation.backend, "poll"):
        result = backend.poll(
            task_id=generation.provider_task_id, poll_url=generation.poll_url or None
        )
    if result.state == ProviderState.READY and (
        result.result_url or result.result_bytes is not None
    ):
        try:
            with provider_call(generation.backend, "fetch"):
                content, _type = backend.fetch(result)
        except BackendError as exc:
            if exc.error_class != ErrorClass.EXPIRED:
                raise
            # The provider still lists the result: worth another try after a backoff.
            raise BackendError(
                ErrorClass.EXPIRED,
                f"{exc.message} (the provider still keeps the result: retrying)",
                retryable=True,
                status_code=exc.status_code,
            ) from exc
        if result.result_url and result.result_url != generation.result_url:
            Generation.objects.filter(pk=generation.pk).update(
                result_url=result.result_url
            )
        return content
    if result.state == ProviderState.FAILED and result.error is not None:
        error = result.error
        if error.error_class in (ErrorClass.NOT_FOUND, ErrorClass.EXPIRED):
            # The provider no longer has it: the paid image is lost.
            raise BackendError(ErrorClass.EXPIRED, error.message, details=error.details)
        raise error
    raise BackendError(
        ErrorClass.EXPIRED, "The result is no longer available at the provider."
    )


def _put(key: str, content: bytes) -> str:
    # Deterministic keys: a rerun overwrites instead of adding a second file (storages rename
    # on conflict, S3Storage here too with file_overwrite=False, so delete first).
    if default_storage.exists(key):
        default_storage.delete(key)
    return default_storage.save(key, ContentFile(content))


def _store(generation: Generation, content: bytes) -> Next:
    try:
        info, thumbnail = imaging.inspect_and_thumbnail(
            content,
            max_pixels=int(engine.conf("ENGINE_MAX_RESULT_PIXELS", 64_000_000)),
            max_side=int(engine.conf("ENGINE_THUMBNAIL_SIZE", 512)),
        )
    except imaging.ImageRejected as exc:
        error = BackendError(
            ErrorClass.BAD_RESULT,
            f"The result is not a usable image: {exc}.",
            retryable=True,
        )
        return _on_error(generation, error, step=INGEST)
    base = f"generations/{generation.workspace.code}/{generation.code}"
    file_name = _put(f"{base}/image.{info.extension}", content)
    thumb_name = _put(f"{base}/thumb.webp", thumbnail)
    defaults = {
        "workspace_id": generation.workspace_id,
        # Copied for the gallery's per-campaign and per-batch indexes (generation/gallery.py).
        "campaign_id": generation.campaign_id,
        "batch_id": generation.batch_id,
        "file": file_name,
        "thumbnail": thumb_name,
        "width": info.width,
        "height": info.height,
        "format": info.format,
        "content_type": info.content_type,
        "byte_size": info.byte_size,
        "sha256": info.sha256,
        # Copied for the gallery's cost sorts (an index per scope): the charge, else the estimate.
        "cost": generation.actual_cost
        if generation.actual_cost is not None
        else generation.estimated_cost,
    }
    # One INSERT ... ON CONFLICT (generation) DO UPDATE: a rerun, even a concurrent one,
    # leaves exactly one Asset, in one round trip.
    (asset,) = Asset.objects.bulk_create(
        [Asset(generation=generation, **defaults)],
        update_conflicts=True,
        unique_fields=["generation"],
        update_fields=[name.removesuffix("_id") for name in defaults],
    )
    stored = _transition(
        generation.pk,
        source=[S.INGESTING],
        target=S.SUCCEEDED,
        result_url="",
        due_at=None,
        error_class="",
        error_message="",
    )
    if stored:
        finished(generation, S.SUCCEEDED)
        # Brand checks (checks/) listen: they queue their own task, the image is in the gallery now.
        # (PostgreSQL returns the row's id from the upsert; other databases need a query.)
        asset_id = asset.pk or Asset.objects.get(generation=generation).pk
        signals.asset_stored.send(sender=Asset, asset_id=asset_id)
    return Next()


# --- failures, cancel, expire -------------------------------------------------------------------


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


def generation_fail(*, generation_id: int, error: BackendError) -> bool:
    """Fail an active generation with its error class and message (moderation: `moderated`)."""
    generation = _load(generation_id)
    if generation is None:
        return False
    target = S.MODERATED if error.error_class == ErrorClass.MODERATED else S.FAILED
    if not _finish(generation, target, error):
        return False
    _wake_on_commit(generation.cap_key)
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
    _wake_on_commit(generation.cap_key)
    return True


def generation_expire(*, generation_id: int, message: str) -> bool:
    """Expire an active generation (a deadline passed); error class `timeout`."""
    generation = _load(generation_id)
    if generation is None:
        return False
    if not _finish(generation, S.EXPIRED, BackendError(ErrorClass.TIMEOUT, message)):
        return False
    _wake_on_commit(generation.cap_key)
    return True


# --- the sweep ----------------------------------------------------------------------------------


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
    claimed = (
        Generation.objects.filter(
            Q(state=S.QUEUED, dispatched_at__isnull=False) | Q(state=S.INGESTING),
            due_at__gt=now,
            due_at__lte=now + _claim_ttl() + _SLACK,
        )
        .order_by("due_at")
        .values_list("id", "state", "poll_count", "due_at")[:limit]
    )
    claimed = list(claimed)
    orphaned = claims.dead((pk, due_at) for pk, _, _, due_at in claimed)
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
