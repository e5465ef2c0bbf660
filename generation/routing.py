"""Routing: which backend serves a request, and where it goes when that backend fails.

A request names a policy (`Generation.requested_backend`):

- a backend name (`bfl`, `fal`...): that backend, unless it cannot serve the request right now
  and a fallback chain was given;
- `cheapest`: the lowest `estimate_cost` among the backends able to serve it;
- `fastest`: the lowest measured duration (median submitted→finished of the backend+model's
  recent succeeded generations, `speed()` below).

"Able to serve" means: the workspace's account or the environment configures it
(`is_configured`) and its rules accept the request (`validate`: model, sizes, references,
parameters). A backend whose circuit breaker is open (generation/breaker.py) is ranked after
every healthy one. `cheapest`/`fastest` consider the `fallback` list when one is given, else every
backend except `preview` (a labelled draft, never FLUX.2, so never chosen by a policy).

The candidates that were not chosen stay on the row, in order, as its fallback chain
(`Generation.fallbacks`). When the generation fails with a class worth falling back on
(FALLBACK_CLASSES) the engine (services.generation_reroute) moves it, in one conditional UPDATE,
to the first remaining candidate that can still serve it: a new submission of the same request,
re-priced, through the new backend's fair queue. Every choice, failure and skipped candidate is
appended to `Generation.route`:

    {"backend": "bfl", "model": "flux-2-pro", "outcome": "chosen", "at": "...", "estimate": "0.03",
     "policy": "cheapest", "ranking": [...]}
    {"backend": "bfl", "model": "flux-2-pro", "outcome": "failed", "error_class": "auth",
     "message": "...", "at": "...", "task_id": "..."}
    {"backend": "fal", "model": "flux-2-pro", "outcome": "chosen", "at": "...", "estimate": "0.03"}

Fallback classes, and why the others are not:
- provider_error, network, timeout (after the engine's retries), rate_limited (after the 429
  budget), auth and quota (this door is closed for this account; another may be open): the
  request itself is fine, the door is not.
- moderated: never. The provider refused the prompt or the image on purpose; sending it to
  another door of the same model family is shopping for a laxer filter, costs a second
  generation, and docs/architecture.md makes moderation terminal and explained.
- invalid_request: never. The request breaks a rule (ours were checked for every candidate before
  anything was sent), so the provider disagreeing means a bug or a stale rule worth seeing, not a
  reason to pay another provider to find out.
- not_found, expired, bad_result: the generation's own problem (a lost task, a lapsed URL, a
  broken image); the engine already resubmits or expires those on the same backend.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from generation import accounts, breaker, caps
from generation.backends import registry
from generation.backends.base import (
    Backend,
    BackendConfig,
    BackendError,
    ErrorClass,
    GenerationRequest,
    RuleViolation,
)
from generation.engine import policy as engine
from generation.models import Generation, GenerationState, ProviderAccount, cap_key_for

CHEAPEST, FASTEST = "cheapest", "fastest"
POLICIES = (CHEAPEST, FASTEST)
# Never chosen by a policy (only when named): the preview backend draws labelled drafts.
NOT_FOR_POLICIES = frozenset({"preview"})

FALLBACK_CLASSES = frozenset(
    {
        ErrorClass.PROVIDER_ERROR,
        ErrorClass.NETWORK,
        ErrorClass.TIMEOUT,
        ErrorClass.RATE_LIMITED,
        ErrorClass.AUTH,
        ErrorClass.QUOTA,
    }
)
CIRCUIT_OPEN = (
    "circuit_open"  # a route entry's error_class when an open breaker moved it on
)


def falls_back(error_class: str) -> bool:
    return error_class in FALLBACK_CLASSES


# --- names --------------------------------------------------------------------------------------


def parse_fallback(value: str | Iterable[str] | None) -> list[str]:
    """`"bfl, fal"` or ["bfl", "fal"] → ["bfl", "fal"] (order kept, duplicates dropped)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if name and name not in names:
            names.append(name)
    return names


def check_names(policy: str, fallback: Sequence[str]) -> None:
    """Raise UnknownBackend for a policy or fallback that names no backend."""
    for name in [policy, *fallback]:
        if name not in POLICIES and name not in registry.BACKENDS:
            raise registry.UnknownBackend(name)


def env_key_name(backend: str) -> str:
    names = registry.ENV_NAMES.get(backend)
    return names[0] if names else f"{backend.upper()}_API_KEY"


# --- measured speed -----------------------------------------------------------------------------

_NO_HISTORY = -1.0


def _speed_key(backend: str, model: str) -> str:
    return f"{caps.prefix()}:speed:{backend}:{model}"


def durations(
    backend: str, model: str | None = None, *, since_days: float = 7, limit: int = 20
) -> list[float]:
    """Seconds from submitted to finished of the most recent succeeded generations."""
    rows = Generation.objects.filter(
        backend=backend,
        state=GenerationState.SUCCEEDED,
        submitted_at__isnull=False,
        finished_at__gte=timezone.now() - timedelta(days=since_days),
    )
    if model is not None:
        rows = rows.filter(model=model)
    pairs = rows.order_by("-finished_at").values_list("submitted_at", "finished_at")
    return [
        (finished - submitted).total_seconds()
        for submitted, finished in pairs[:limit]
        if finished is not None and submitted is not None
    ]


def speed(backend: str, model: str) -> float | None:
    """The median submitted→finished seconds of the backend+model's last ROUTING_SPEED_SAMPLE
    succeeded generations (7 days), None without history; cached ROUTING_SPEED_TTL seconds.

    Why not the engine's EWMA (engine.duration_estimate): it is measured from polls only, so
    synchronous backends (Cloudflare, preview, diffusers) never get one; it forgets a backend after
    a day without traffic; and it is aimed at poll timing. The median of stored timestamps covers
    every backend, ignores one odd outlier, and includes the download, which the user waits for too.
    """
    key = _speed_key(backend, model)
    cached = cache.get(key)
    if cached is not None:
        return None if cached == _NO_HISTORY else float(cached)
    sample = durations(
        backend, model, limit=int(engine.conf("ROUTING_SPEED_SAMPLE", 20))
    )
    value = statistics.median(sample) if sample else None
    cache.set(
        key,
        _NO_HISTORY if value is None else round(value, 3),
        timeout=int(engine.conf("ROUTING_SPEED_TTL", 60)),
    )
    return value


# --- candidates ---------------------------------------------------------------------------------


@dataclass
class Candidate:
    name: str
    index: int
    backend: Backend | None = None
    account: ProviderAccount | None = None
    estimate: Decimal | None = None
    seconds: float | None = None
    error: BackendError | None = (
        None  # why it cannot serve the request; None when it can
    )
    breaker_open: bool = False

    @property
    def usable(self) -> bool:
        return self.error is None and self.backend is not None

    @property
    def cap_key(self) -> str:
        return cap_key_for(self.name, self.account.pk if self.account else None)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.name}
        if self.estimate is not None:
            out["estimate"] = str(self.estimate)
        if self.seconds is not None:
            out["seconds"] = round(self.seconds, 2)
        if self.breaker_open:
            out["breaker"] = "open"
        return out


def evaluate(
    *, workspace_id: int, name: str, request: GenerationRequest, index: int = 0
) -> Candidate:
    """Can backend `name` serve `request` for this workspace? Price and speed when it can."""
    candidate = Candidate(name, index)
    try:
        backend, account = accounts.backend_for(workspace_id=workspace_id, backend=name)
    except registry.UnknownBackend as exc:
        candidate.error = RuleViolation("backend", str(exc))
        return candidate
    except Exception as exc:  # an undecryptable key: configuration
        candidate.error = BackendError(
            ErrorClass.AUTH, f"cannot configure {name}: {exc}"
        )
        return candidate
    candidate.backend, candidate.account = backend, account
    try:
        backend.validate(request)
        if not backend.is_configured():
            raise BackendError(
                ErrorClass.AUTH,
                f"{backend.label} is not configured: add a provider account or set "
                f"{env_key_name(name)}.",
            )
        candidate.estimate = backend.estimate_cost(request)
    except BackendError as exc:
        candidate.error = exc
        return candidate
    candidate.breaker_open = breaker.is_open(candidate.cap_key)
    return candidate


def _rank(candidates: list[Candidate], policy: str) -> list[Candidate]:
    inf = float("inf")
    if policy == FASTEST:
        # Measured backends by their median; unmeasured ones after them, cheapest first.
        return sorted(
            candidates,
            key=lambda c: (
                c.breaker_open,
                c.seconds is None,
                c.seconds if c.seconds is not None else inf,
                c.estimate if c.estimate is not None else inf,
                c.index,
            ),
        )
    if policy == CHEAPEST:
        return sorted(
            candidates,
            key=lambda c: (
                c.breaker_open,
                c.estimate if c.estimate is not None else inf,
                c.seconds if c.seconds is not None else inf,
                c.index,
            ),
        )
    # A named backend and its chain: the order given, healthy breakers first.
    return sorted(candidates, key=lambda c: (c.breaker_open, c.index))


def _stamp() -> str:
    return timezone.now().isoformat()


def route_entry(
    backend: str,
    model: str,
    estimate: Decimal | None,
    *,
    at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The one writer of a route's "chosen" step (Generation.route), for routing and for batches."""
    entry: dict[str, Any] = {
        "backend": backend,
        "model": model,
        "outcome": "chosen",
        "at": at.isoformat() if at is not None else _stamp(),
        "estimate": str(estimate) if estimate is not None else None,
    }
    entry.update({k: v for k, v in extra.items() if v not in (None, [], {})})
    return entry


def chosen_entry(candidate: Candidate, model: str, **extra: Any) -> dict[str, Any]:
    return route_entry(candidate.name, model, candidate.estimate, **extra)


def skipped_entry(candidate: Candidate, model: str) -> dict[str, Any]:
    if candidate.error is not None:
        error_class, message = str(candidate.error.error_class), candidate.error.message
    else:
        error_class, message = CIRCUIT_OPEN, "its circuit breaker is open"
    return {
        "backend": candidate.name,
        "model": model,
        "outcome": "skipped",
        "error_class": error_class,
        "message": message[:500],
        "at": _stamp(),
    }


@dataclass
class Route:
    """Where a request goes now, what stays in reserve, and the route entries to store."""

    policy: str
    candidate: Candidate
    fallbacks: list[str]
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def backend(self) -> str:
        return self.candidate.name

    @property
    def instance(self) -> Backend:
        assert self.candidate.backend is not None
        return self.candidate.backend

    @property
    def account(self) -> ProviderAccount | None:
        return self.candidate.account

    @property
    def estimate(self) -> Decimal:
        return self.candidate.estimate or Decimal(0)


def plan(
    *,
    workspace_id: int,
    policy: str,
    request: GenerationRequest,
    fallback: Sequence[str] = (),
) -> Route:
    """Choose the backend for a new request (see the module docstring).

    Raises what generation_create always raised for a named backend that cannot serve the
    request (RuleViolation naming the rule, BackendError(AUTH) without a key) when no candidate
    can; for a policy with no able backend, RuleViolation("backend") listing each one's reason.
    """
    check_names(policy, fallback)
    if policy in POLICIES:
        names = list(fallback) or [
            n for n in registry.BACKENDS if n not in NOT_FOR_POLICIES
        ]
    else:
        names = [policy, *(n for n in fallback if n != policy)]
    candidates = [
        evaluate(workspace_id=workspace_id, name=name, request=request, index=i)
        for i, name in enumerate(names)
    ]
    usable = [c for c in candidates if c.usable]
    if not usable:
        if policy not in POLICIES:
            error = candidates[0].error
            assert error is not None
            raise error
        reasons = "; ".join(
            f"{c.name}: {c.error.message if c.error else 'unavailable'}"
            for c in candidates
        )
        raise RuleViolation(
            "backend",
            f"No backend can serve {request.model} at {request.width}×{request.height} "
            f"({reasons}).",
        )
    if policy == FASTEST:
        for c in usable:
            c.seconds = speed(c.name, request.model)
    ranked = _rank(usable, policy)
    chosen = ranked[0]
    passed_over = {
        c.name: c.error.message[:200] for c in candidates if c.error is not None
    }
    entry = chosen_entry(
        chosen,
        request.model,
        policy=policy,
        ranking=[c.summary() for c in ranked]
        if len(ranked) > 1 or policy in POLICIES
        else None,
        passed_over=passed_over or None,
    )
    return Route(
        policy=policy,
        candidate=chosen,
        fallbacks=[c.name for c in ranked[1:]],
        entries=[entry],
    )


def next_route(
    generation: Generation, request: GenerationRequest
) -> tuple[Route | None, list[dict[str, Any]]]:
    """The first remaining fallback that can serve the generation's request now.

    Answers (route or None, the "skipped" entries for candidates passed over on the way). A
    candidate is skipped when it is not configured, refuses the request, or its breaker is open.
    """
    remaining = list(generation.fallbacks or [])
    skipped: list[dict[str, Any]] = []
    while remaining:
        name = remaining.pop(0)
        if name == generation.backend:
            continue
        candidate = evaluate(
            workspace_id=generation.workspace_id, name=name, request=request
        )
        if not candidate.usable or candidate.breaker_open:
            skipped.append(skipped_entry(candidate, generation.model))
            continue
        entry = chosen_entry(
            candidate, generation.model, fallback_from=generation.backend
        )
        return Route(
            generation.requested_backend or name, candidate, remaining, [entry]
        ), skipped
    return None, skipped


def failed_entry(
    generation: Generation, error_class: str, message: str, *, outcome: str = "failed"
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "backend": generation.backend,
        "model": generation.model,
        "outcome": outcome,
        "error_class": error_class,
        "message": message[:500],
        "at": _stamp(),
    }
    if generation.provider_task_id:
        entry["task_id"] = generation.provider_task_id
    if generation.actual_cost is not None:
        entry["cost"] = str(generation.actual_cost)
    return entry


# --- the model vocabulary across backends --------------------------------------------------------


@dataclass(frozen=True)
class ModelRow:
    model: str
    label: str
    served: dict[
        str, str | None
    ]  # backend -> the provider's own id, None where not served


def model_table() -> list[ModelRow]:
    """Which backend serves which studio model, under which provider id (one row per model)."""
    served: dict[str, dict[str, str]] = {}
    for name, cls in registry.BACKENDS.items():
        try:
            models = cls(BackendConfig()).capabilities().models
        except (
            Exception
        ):  # a backend that needs configuration to even say what it serves
            continue
        for model, spec in models.items():
            served.setdefault(model, {})[name] = spec.provider_model
    vocabulary = list(registry.MODELS) + sorted(set(served) - set(registry.MODELS))
    return [
        ModelRow(
            model,
            registry.MODELS.get(model, model),
            {name: served.get(model, {}).get(name) for name in registry.BACKENDS},
        )
        for model in vocabulary
    ]
