"""Celery tasks: thin, take ids, call one service, schedule what the service answers.

No task waits for a provider. `generation_submit` sends the request and schedules the first
`generation_poll` with a countdown; each poll schedules the next (backoff and latency hints in
engine.poll_delay) until the provider is done, then `generation_ingest` runs on the CPU queue.
A freed concurrency slot runs the dispatcher inline and submits the next waiting generation in the
same task (no round trip through the broker, where it would queue behind polls and ingests), so a
slot is idle for milliseconds between two generations.

Queues (settings.CELERY_TASK_ROUTES): "dispatch" for submit, poll, the dispatcher and the sweep
(short I/O, many in flight: run by the I/O worker on a threads pool, so a provider that answers
slowly holds one thread and never the other generations), "ingest" for download + Pillow +
storage (CPU: the prefork CPU worker). Later: "export".
A backend that names a `celery_queue` (diffusers: "gpu") has its submits sent there instead:
its submit IS the work (an in-process pipeline run), so it runs on that queue's workers
(`celery -A studio worker -Q gpu -c 1`, one per GPU) and never inline in another task.
`route_by_backend` (first in CELERY_TASK_ROUTES) looks the generation's backend up for a submit
sent without a queue (retries, the sweep); the dispatcher names the queue itself, from the cap key.

Crash safety: acks_late + reject_on_worker_lost (settings) redeliver a task whose worker process
died; every task is idempotent through the conditional UPDATEs in generation/engine/, so a redelivery
or a duplicate does nothing. When a whole worker is SIGKILLed its messages stay unacked in Redis
until the visibility timeout; the periodic `generation_sweep` (celery beat) re-drives such
generations long before that (see engine_sweep.generation_sweep and the settings for the intervals).
A task that hits a transient database or Redis error retries a few times with backoff; if it
still fails, the sweep picks the generation up again.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from celery import shared_task
from celery.signals import task_postrun, task_prerun, worker_ready
from django.db import InterfaceError, OperationalError, connections

from generation import caps
from generation.engine import policy as engine
from generation.engine.state import Next, SweepPlan
from generation.models import parse_cap_key

log = logging.getLogger(__name__)
_INFRA_ERRORS = (
    OperationalError,
    InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
)
_OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "autoretry_for": _INFRA_ERRORS,
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 5,
}


@task_prerun.connect
@task_postrun.connect
def _usable_connections(**_: object) -> None:
    """Drop database connections that broke (server restart, network) before and after every
    task: the worker keeps its connection between tasks (CELERY_DB_REUSE_MAX), so nobody else
    would notice, and a retry would fail again on the same dead socket."""
    for conn in connections.all(initialized_only=True):
        if (
            conn.connection is not None
            and conn.errors_occurred
            and not conn.is_usable()
        ):
            conn.close()


def backend_queue(backend: str) -> str | None:
    """The Celery queue a backend's submits must run on, when it has its own (diffusers: gpu)."""
    from generation.backends.registry import BACKENDS

    return getattr(BACKENDS.get(backend), "celery_queue", None)


def route_by_backend(
    name: str,
    args: tuple,
    kwargs: dict,
    options: dict,
    task: object = None,
    **kw: object,
) -> dict[str, str] | None:
    """Celery router: a submit of a backend with its own queue goes there; else the next route.

    Only a submit sent without an explicit queue costs a lookup (one primary-key query).
    """
    if name != f"{__name__}.generation_submit" or options.get("queue") or not args:
        return None
    from generation.models import Generation

    backend = (
        Generation.objects.filter(pk=args[0]).values_list("backend", flat=True).first()
    )
    queue = backend_queue(backend) if backend else None
    return {"queue": queue} if queue else None


def wake_dispatcher(cap_key: str) -> None:
    """Run the dispatcher for a cap soon; many wake-ups in a row send one message."""
    if caps.flag_once(f"dispatch:{cap_key}", ttl=5):
        generation_dispatch.delay(cap_key)


def _recheck_later(cap_key: str) -> None:
    # The cap is full and rows wait. Releases wake the dispatcher anyway; this re-check is the
    # safety net for slots that free themselves by lease expiry. One pending re-check per cap.
    delay = engine.conf("ENGINE_CAP_RECHECK", 2.0)
    if caps.flag_once(f"recheck:{cap_key}", ttl=delay):
        generation_dispatch.apply_async((cap_key,), countdown=delay)


def _dispatch(cap_key: str, *, inline: int = 0) -> None:
    """Hand free slots to waiting generations: the first `inline` are submitted right here (a
    freed slot goes to the next generation without a trip through the broker, where it would
    queue behind other work), the rest as submit tasks."""
    from generation.engine import dispatch as engine_dispatch

    result = engine_dispatch.generation_dispatch(cap_key=cap_key)
    # A backend with its own queue (the GPU) never runs inside this task: straight to its queue.
    queue = backend_queue(parse_cap_key(cap_key)[0])
    for index, generation_id in enumerate(result.ids):
        if queue:
            generation_submit.apply_async((generation_id,), queue=queue)
        elif index < inline:
            _submit_inline(generation_id)
        else:
            generation_submit.delay(generation_id)
    if result.backlog:
        _recheck_later(cap_key)


def _submit_inline(generation_id: int) -> None:
    from generation.engine import submit as engine_submit

    try:
        nxt = engine_submit.generation_submit(generation_id=generation_id)
    except Exception:
        # Not this task's generation: never let it fail the task that freed the slot. A submit
        # task retries it (or, if the row was claimed, the sweep after ENGINE_CLAIM_TTL).
        log.exception(
            "inline submit of generation %s failed; handing it to a task", generation_id
        )
        generation_submit.delay(generation_id)
        return
    follow(generation_id, nxt, inline=0)


def follow(generation_id: int, nxt: Next, *, inline: int = 1) -> None:
    """Turn a service's Next into messages: this generation's next step first, then the
    dispatcher for every cap where a slot was freed."""
    if nxt.action == "submit":
        generation_submit.apply_async((generation_id,), countdown=nxt.countdown)
    elif nxt.action == "poll":
        generation_poll.apply_async(
            (generation_id, nxt.poll_seq), countdown=nxt.countdown
        )
    elif nxt.action == "ingest":
        generation_ingest.apply_async((generation_id,), countdown=nxt.countdown)
    for cap_key in nxt.wake:
        _dispatch(cap_key, inline=inline)


@shared_task(**_OPTIONS)
def generation_dispatch(cap_key: str) -> None:
    _dispatch(cap_key)


@shared_task(**_OPTIONS)
def generation_submit(generation_id: int) -> None:
    from generation.engine import submit as engine_submit

    follow(generation_id, engine_submit.generation_submit(generation_id=generation_id))


@shared_task(**_OPTIONS)
def generation_poll(generation_id: int, seq: int) -> None:
    from generation.engine import poll as engine_poll

    follow(
        generation_id, engine_poll.generation_poll(generation_id=generation_id, seq=seq)
    )


@shared_task(**_OPTIONS)
def generation_ingest(generation_id: int) -> None:
    from generation.engine import ingest as engine_ingest

    follow(generation_id, engine_ingest.generation_ingest(generation_id=generation_id))


@shared_task(**_OPTIONS)
def generation_sweep(stuck_after: float | None = None) -> dict[str, int]:
    from generation.engine import sweep as engine_sweep

    plan = engine_sweep.generation_sweep(stuck_after=stuck_after)
    _send(plan)
    return {
        "redriven": plan.redriven,
        "expired": len(plan.expired),
        "dispatch": len(plan.dispatch),
    }


def _send(plan: SweepPlan) -> None:
    for generation_id in plan.submit:
        generation_submit.delay(generation_id)
    for generation_id, seq in plan.poll:
        generation_poll.delay(generation_id, seq)
    for generation_id in plan.ingest:
        generation_ingest.delay(generation_id)
    for cap_key in plan.dispatch:
        wake_dispatcher(cap_key)


@worker_ready.connect
def _sweep_on_start(sender: object = None, **_: object) -> None:
    """A worker that starts re-drives its dead predecessor's work at once. The predecessor's
    messages sit unacknowledged in Redis until the visibility timeout, and the periodic sweep
    only takes work ENGINE_STUCK_AFTER (30 s) overdue. So for a short while the worker sweeps
    every ENGINE_STARTUP_STUCK_AFTER seconds with that as the overdue bound: until every poll the
    predecessor had scheduled is due (ENGINE_POLL_MAX) and its claims' holders have missed their
    heartbeat (ENGINE_HOLDER_ALIVE_TTL, claims.py). Re-driving work another live worker holds is
    harmless (every step is idempotent); its claims are never touched while it lives.

    The passes run in a thread of the worker's main process, not as broker tasks: a sweep sent
    through the broker would queue behind the predecessor's backlog, the very work it must
    rescue (measured: 7 s behind it on a loaded machine)."""
    from generation import claims

    step = max(engine.conf("ENGINE_STARTUP_STUCK_AFTER", 1.0), 0.5)
    until = max(engine.conf("ENGINE_POLL_MAX", 8.0), claims.alive_ttl()) + step
    threading.Thread(
        target=_startup_sweeps,
        args=(step, until),
        name="engine-startup-sweeps",
        daemon=True,
    ).start()


def _startup_sweeps(step: float, until: float) -> None:
    from generation.engine import sweep as engine_sweep

    started = time.monotonic()
    redriven: set[int] = (
        set()
    )  # once each: a re-drive may wait in this worker's busy queue
    try:
        while True:
            try:
                plan = engine_sweep.generation_sweep(stuck_after=step, skip=redriven)
                _send(plan)
                redriven.update(plan.submit, plan.ingest, (pk for pk, _ in plan.poll))
            except Exception:
                log.exception("startup sweep failed; the next pass tries again")
            elapsed = time.monotonic() - started
            if elapsed + step > until:
                return
            time.sleep(step - elapsed % step)
    finally:
        connections.close_all()
