"""Batch services: preview, dispatch, cancel, retry, re-run with one axis changed, and "change one
thing" from an asset.

Everything that stores generations checks first and stores second: a batch is expanded, rendered,
validated against each backend's rules and priced (generation/batches.py) before one row is
written, and the campaign's budget is checked under a lock on the campaign row, so two batches
dispatched at once cannot both squeeze into the same remaining budget.

A batch's generations go into the engine's fair queue with the batch as their owner
(`batch:<code>`, generation/fair.py): a 1,000-variant batch takes turns with everyone else's work
instead of filling the queue ahead of it. The dispatcher is woken once per backend on commit.

Batch state: draft → queued (dispatched) → running (the first generation left the queue) →
finished (every generation is terminal); queued/running → canceled. A retry moves a finished or
canceled batch back to running. Each change is a conditional UPDATE on the expected state.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from campaigns.models import Campaign, ReferenceImage, TemplateVersion
from campaigns.prompting import BrandKit, PromptError, render_prompt
from generation import accounts, fair, services
from generation.backends import registry
from generation.backends.base import Backend, BackendError, ReferenceInput
from generation.batches import (
    FIELD_REFERENCES,
    FIELD_SEEDS,
    FIELD_SIZES,
    FIELD_TARGETS,
    FIXED,
    MATRIX,
    MAX_SEED,
    NON_FIELD,
    RANDOM,
    BatchSpec,
    Plan,
    Seeds,
    Size,
    Target,
    TemplateInput,
    parse_seeds,
    parse_sizes,
    parse_values,
    plan_batch,
    reference_field,
)
from generation.error_text import ERROR_LABELS
from generation.models import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    Asset,
    Batch,
    BatchState,
    Generation,
    GenerationState,
)
from generation.spend import Budget, Spend, campaign_budget, spend_of

log = logging.getLogger(__name__)
S = GenerationState
B = BatchState
FIELD_BUDGET = "budget"
# Failures a retry may fix; moderation is the provider's final word and is never retried.
RETRYABLE_STATES = (S.FAILED, S.EXPIRED)
FAILED_STATES = (S.FAILED, S.MODERATED, S.EXPIRED)
# Backends listed first in the builder: the offline one always works.
_BACKEND_ORDER = ("preview", "bfl", "fal", "replicate", "cloudflare", "comfyui")


class BatchRefused(Exception):
    """Nothing was stored: the problems, keyed by the form field that caused them."""

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors = {key: list(messages) for key, messages in errors.items()}
        super().__init__(" ".join(m for ms in self.errors.values() for m in ms))

    @property
    def messages(self) -> list[str]:
        return [m for ms in self.errors.values() for m in ms]


def max_batch_size() -> int:
    return int(getattr(settings, "STUDIO_BATCH_MAX_SIZE", 1000))


# --- What can be chosen -------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetOption:
    backend: str
    model: str
    backend_label: str
    model_label: str

    @property
    def key(self) -> str:
        return f"{self.backend}:{self.model}"

    @property
    def label(self) -> str:
        return f"{self.backend_label} · {self.model_label}"


def _configured_backend(*, workspace_id: int, name: str) -> Backend | None:
    try:
        backend, _account = accounts.backend_for(
            workspace_id=workspace_id, backend=name
        )
    except Exception:  # unknown name, undecryptable key: not usable, so not offered
        return None
    return backend if backend.is_configured() else None


def target_options(*, workspace: Any) -> list[TargetOption]:
    """Every backend/model pair the workspace can use now (the preview backend always)."""
    names = sorted(
        registry.BACKENDS,
        key=lambda n: (
            _BACKEND_ORDER.index(n) if n in _BACKEND_ORDER else len(_BACKEND_ORDER),
            n,
        ),
    )
    options = []
    for name in names:
        backend = _configured_backend(workspace_id=workspace.pk, name=name)
        if backend is None:
            continue
        for model in backend.capabilities().models:
            options.append(
                TargetOption(
                    name, model, backend.label, registry.MODELS.get(model, model)
                )
            )
    return options


def target_label(target: Target) -> str:
    backend_cls = registry.BACKENDS.get(target.backend)
    backend = backend_cls.label if backend_cls is not None else target.backend
    return f"{backend} · {registry.MODELS.get(target.model, target.model)}"


# --- Preview -------------------------------------------------------------------------------------


@dataclass
class BatchPreview:
    plan: Plan
    budget: Budget
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def can_dispatch(self) -> bool:
        return not self.errors

    @property
    def no_cap(self) -> bool:
        return self.budget.cap is None

    @property
    def fits_budget(self) -> bool:
        return self.budget.fits(self.plan.total)

    @property
    def remaining_after(self) -> Decimal | None:
        remaining = self.budget.remaining
        return None if remaining is None else remaining - self.plan.total


def _template_input(version: TemplateVersion) -> TemplateInput:
    return TemplateInput(
        kind=version.kind,
        body=version.body,
        variables=tuple(version.variables),
        reference_slots=tuple(version.reference_slots or ()),
        parameters=dict(version.parameters or {}),
    )


def _load_references(
    *, version: TemplateVersion, spec: BatchSpec, errors: dict[str, list[str]]
) -> tuple[dict[str, ReferenceInput], dict[str, ReferenceImage]]:
    """The chosen library images per slot (their sizes; the bytes are read when sent)."""
    slots = {s["name"]: s for s in version.reference_slots or ()}
    chosen = {slot: code for slot, code in spec.references.items() if code}
    codes = []
    for slot, code in chosen.items():
        if slot not in slots:
            errors.setdefault(FIELD_REFERENCES, []).append(
                f"“{slot}” is not a reference slot of this template."
            )
            continue
        try:
            codes.append(UUID(str(code)))
        except ValueError:
            errors.setdefault(reference_field(slot), []).append(
                "Choose an image from the library."
            )
    brand_id = version.template.brand_id
    images = {
        str(ref.code): ref
        for ref in ReferenceImage.objects.filter(
            workspace_id=version.workspace_id, brand_id=brand_id, code__in=codes
        )
    }
    inputs: dict[str, ReferenceInput] = {}
    rows: dict[str, ReferenceImage] = {}
    for slot, code in chosen.items():
        if slot not in slots:
            continue
        ref = images.get(str(code))
        if ref is None:
            errors.setdefault(reference_field(slot), []).append(
                "That image is not in this brand's library (any more)."
            )
            continue
        role = slots[slot].get("role") or ref.role
        if ref.role != role:
            errors.setdefault(reference_field(slot), []).append(
                f"“{ref}” is a {ref.get_role_display().lower()} image; slot “{slot}” takes a {role} image."
            )
            continue
        inputs[slot] = ReferenceInput(
            role, b"", ref.content_type, ref.width, ref.height, name=str(ref)
        )
        rows[slot] = ref
    return inputs, rows


def _load_row_references(
    *, version: TemplateVersion, spec: BatchSpec
) -> dict[str, ReferenceInput]:
    """The brand's library images that rows name as their own (a catalog batch's products)."""
    codes = {code for row in spec.rows for code in row.references}
    if not codes:
        return {}
    valid = []
    for code in codes:
        try:
            valid.append(UUID(code))
        except ValueError:
            continue
    return {
        str(ref.code): ReferenceInput(
            ref.role, b"", ref.content_type, ref.width, ref.height, name=str(ref)
        )
        for ref in ReferenceImage.objects.filter(
            workspace_id=version.workspace_id,
            brand_id=version.template.brand_id,
            code__in=valid,
        )
    }


def batch_preview(
    *, campaign: Campaign, version: TemplateVersion, spec: BatchSpec
) -> BatchPreview:
    """Expand, render, validate and price a batch, and check it against the budget. Stores nothing."""
    errors: dict[str, list[str]] = {}
    template = version.template
    if campaign.brand_id != template.brand_id:
        errors.setdefault(NON_FIELD, []).append(
            f"“{campaign.name}” is a campaign of another brand than the template’s."
        )
    references, _rows = _load_references(version=version, spec=spec, errors=errors)
    backends: dict[str, Backend] = {}
    for name in {t.backend for t in spec.targets}:
        backend = _configured_backend(workspace_id=version.workspace_id, name=name)
        if backend is not None:
            backends[name] = backend
    plan = plan_batch(
        spec=spec,
        template=_template_input(version),
        brand=BrandKit.from_brand(template.brand),
        backends=backends,
        references=references,
        labels={t.key: target_label(t) for t in spec.targets},
        max_size=max_batch_size(),
        row_references=_load_row_references(version=version, spec=spec),
    )
    for key, messages in plan.errors.items():
        for message in messages:
            if message not in errors.setdefault(key, []):
                errors[key].append(message)
    budget = campaign_budget(campaign=campaign)
    if not errors and not budget.fits(plan.total):
        errors[FIELD_BUDGET] = [budget.refusal(plan.total)]
    return BatchPreview(plan=plan, budget=budget, errors=errors)


# --- Dispatch -------------------------------------------------------------------------------------


def _wake_on_commit(cap_keys: set[str]) -> None:
    def wake() -> None:
        from generation import tasks

        for key in sorted(cap_keys):
            tasks.wake_dispatcher(key)

    transaction.on_commit(wake)


def _store_generations(
    *, batch: Batch, plan: Plan, user: Any, reference_specs: list[dict[str, str]]
) -> int:
    """Insert every planned variant as a queued generation in the fair queue (one INSERT per 500)."""
    now = timezone.now()
    account_ids: dict[str, Any] = {}
    for backend in {v.target.backend for v in plan.variants}:
        account_ids[backend] = accounts.enabled_account(
            workspace_id=batch.workspace_id, backend=backend
        )
    by_cap: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    for index, variant in enumerate(plan.variants):
        account = account_ids[variant.target.backend]
        by_cap[(variant.target.backend, account.pk if account else None)].append(index)
    ranks: dict[int, int] = {}
    for (backend, account_id), indexes in by_cap.items():
        for index, rank in zip(
            indexes,
            fair.next_ranks(
                backend=backend,
                account_id=account_id,
                owner_key=batch.owner_key,
                count=len(indexes),
            ),
            strict=True,
        ):
            ranks[index] = rank
    rows = [
        Generation(
            workspace_id=batch.workspace_id,
            campaign_id=batch.campaign_id,
            brand_id=batch.brand_id,
            template_version_id=batch.template_version_id,
            created_by=user,
            batch=batch,
            variables=dict(variant.values),
            backend=variant.target.backend,
            model=variant.target.model,
            provider_account=account_ids[variant.target.backend],
            prompt=variant.prompt,
            params=dict(variant.params),
            width=variant.width,
            height=variant.height,
            seed=variant.seed,
            references=reference_specs
            + [
                {"code": code, "role": "product", "name": ""}
                for code in variant.row_references
            ],
            estimated_cost=variant.cost,
            # A batch names its backend: no routing policy, no fallback chain (routing.py).
            requested_backend=variant.target.backend,
            route=[
                _route_entry(
                    variant.target.backend, variant.target.model, now, variant.cost
                )
            ],
            owner_key=batch.owner_key,
            fair_rank=ranks[index],
            queued_at=now,
        )
        for index, variant in enumerate(plan.variants)
    ]
    Generation.objects.bulk_create(rows, batch_size=500)
    # Links the request that dispatched the batch to the tasks that run each generation (their
    # log lines carry generation_id and this request's request_id: studio/logs.py).
    log.info(
        "batch generations queued",
        extra={
            "batch": str(batch.code),
            "generation_ids": [row.pk for row in rows],
        },
    )
    _wake_on_commit(
        {
            f"{backend}:{account_id if account_id is not None else 'env'}"
            for backend, account_id in by_cap
        }
    )
    return len(rows)


def _route_entry(
    backend: str, model: str, at: datetime, estimate: Decimal
) -> dict[str, Any]:
    """The route's first step, as generation/routing.py records a chosen backend."""
    return {
        "backend": backend,
        "model": model,
        "outcome": "chosen",
        "at": at.isoformat(),
        "estimate": str(estimate),
    }


def _reference_specs(
    version: TemplateVersion, spec: BatchSpec, plan: Plan
) -> list[dict[str, str]]:
    """The generation's references in the order they are sent ("image 1" first)."""
    if not plan.variants:
        return []
    slots = {s["name"]: s for s in version.reference_slots or ()}
    return [
        {"code": spec.references[name], "role": slots[name]["role"], "name": name}
        for name in plan.variants[0].reference_order
    ]


def _estimate_by_backend(plan: Plan) -> dict[str, Any]:
    return {
        backend: {"count": entry["count"], "total": str(entry["total"])}
        for backend, entry in plan.by_backend.items()
    }


def batch_create(
    *,
    campaign: Campaign,
    version: TemplateVersion,
    spec: BatchSpec,
    user: Any,
    name: str = "",
    token: UUID | None = None,
    parent: Batch | None = None,
    changed: str = "",
    dispatch: bool = True,
) -> Batch:
    """Store a batch and (dispatch=True) all its generations in one transaction. Raises BatchRefused.

    `token` (the builder form's one-time token) makes a double click harmless: the second
    request answers the batch the first one made. dispatch=False stores a draft (no generations,
    no budget check yet) that batch_dispatch sends later.
    """
    workspace_id = version.workspace_id
    if token is not None and (
        existing := Batch.objects.filter(
            workspace_id=workspace_id, request_token=token
        ).first()
    ):
        return existing
    preview = batch_preview(campaign=campaign, version=version, spec=spec)
    plan = preview.plan
    errors = {k: v for k, v in preview.errors.items() if k != FIELD_BUDGET}
    if errors:
        raise BatchRefused(errors)
    template = version.template
    try:
        with transaction.atomic():
            locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
            if token is not None and (
                existing := Batch.objects.filter(
                    workspace_id=workspace_id, request_token=token
                ).first()
            ):
                return existing
            if dispatch:
                budget = campaign_budget(campaign=locked)
                if not budget.fits(plan.total):
                    raise BatchRefused({FIELD_BUDGET: [budget.refusal(plan.total)]})
            now = timezone.now()
            batch = Batch.objects.create(
                workspace_id=workspace_id,
                campaign=locked,
                brand_id=template.brand_id,
                template_version=version,
                name=(name.strip() or _default_name(version, plan))[:160],
                created_by=user,
                state=B.QUEUED if dispatch else B.DRAFT,
                spec=spec.as_json(),
                size=plan.count,
                estimate_total=plan.total,
                estimate_by_backend=_estimate_by_backend(plan),
                parent=parent,
                changed=changed[:500],
                request_token=token,
                dispatched_at=now if dispatch else None,
            )
            if dispatch:
                _store_generations(
                    batch=batch,
                    plan=plan,
                    user=user,
                    reference_specs=_reference_specs(version, spec, plan),
                )
    except IntegrityError:
        # The same token committed between our check and our insert: answer that batch.
        if token is None:
            raise
        return Batch.objects.get(workspace_id=workspace_id, request_token=token)
    return batch


def _default_name(version: TemplateVersion, plan: Plan) -> str:
    return f"{version.template.name} v{version.number} · {plan.count} variants"


def batch_dispatch(*, batch: Batch, user: Any) -> Batch:
    """Send a draft: re-plan it (backends and budget may have changed), store its generations.

    Idempotent: a batch that is no longer a draft is answered as it is.
    """
    with transaction.atomic():
        locked = Batch.objects.select_for_update().get(pk=batch.pk)
        if locked.state != B.DRAFT:
            return locked
        version = locked.template_version
        if version is None:
            raise BatchRefused(
                {NON_FIELD: ["The template version of this draft no longer exists."]}
            )
        spec = BatchSpec.from_json(locked.spec)
        preview = batch_preview(campaign=locked.campaign, version=version, spec=spec)
        errors = {k: v for k, v in preview.errors.items() if k != FIELD_BUDGET}
        if errors:
            raise BatchRefused(errors)
        campaign = Campaign.objects.select_for_update().get(pk=locked.campaign_id)
        budget = campaign_budget(campaign=campaign)
        plan = preview.plan
        if not budget.fits(plan.total):
            raise BatchRefused({FIELD_BUDGET: [budget.refusal(plan.total)]})
        _store_generations(
            batch=locked,
            plan=plan,
            user=user,
            reference_specs=_reference_specs(version, spec, plan),
        )
        now = timezone.now()
        Batch.objects.filter(pk=locked.pk, state=B.DRAFT).update(
            state=B.QUEUED,
            dispatched_at=now,
            size=plan.count,
            estimate_total=plan.total,
            estimate_by_backend=_estimate_by_backend(plan),
            updated_at=now,
        )
    return Batch.objects.get(pk=batch.pk)


# --- Cancel and retry -----------------------------------------------------------------------------


def batch_cancel(*, batch: Batch) -> int:
    """Cancel what has not finished: queued rows at once, in-flight ones one by one.

    Rows still in the fair queue hold nothing, so one conditional UPDATE cancels them all. Rows
    that hold a concurrency slot or a provider task go through generation_cancel, which frees the
    slot and cancels at the provider where the provider allows it (BFL does not: its task runs to
    the end and is not ingested). Ingesting rows finish. Answers how many were canceled.
    """
    now = timezone.now()
    with transaction.atomic():
        canceled = Generation.objects.filter(
            batch=batch, state=S.QUEUED, dispatched_at__isnull=True
        ).update(state=S.CANCELED, finished_at=now, due_at=None, updated_at=now)
        Batch.objects.filter(
            pk=batch.pk, state__in=[B.DRAFT, B.QUEUED, B.RUNNING]
        ).update(state=B.CANCELED, finished_at=now, updated_at=now)
    in_flight = Generation.objects.filter(
        batch=batch, state__in=[S.QUEUED, S.SUBMITTED, S.RUNNING]
    ).values_list("id", flat=True)
    for generation_id in list(in_flight):
        if services.generation_cancel(generation_id=generation_id):
            canceled += 1
    return canceled


def _unretried(batch: Batch) -> Any:
    retried = Generation.objects.filter(parent=OuterRef("pk"), batch=batch)
    return Generation.objects.filter(batch=batch).exclude(Exists(retried))


def batch_retry_failed(*, batch: Batch, user: Any) -> int:
    """A new generation for each failed (or expired) one not retried yet, recording its parent.

    Same request (prompt, model, size, seed, references); the budget is checked as for a new
    batch. Run twice, it retries nothing the second time. Answers how many were retried.
    """
    with transaction.atomic():
        locked = Batch.objects.select_for_update().get(pk=batch.pk)
        failed = list(
            _unretried(locked).filter(state__in=RETRYABLE_STATES).order_by("id")
        )
        if not failed:
            return 0
        problems = []
        for name in sorted({g.backend for g in failed}):
            if _configured_backend(workspace_id=locked.workspace_id, name=name) is None:
                problems.append(
                    f"{registry.BACKENDS[name].label if name in registry.BACKENDS else name} is not configured any more."
                )
        if problems:
            raise BatchRefused({NON_FIELD: problems})
        campaign = Campaign.objects.select_for_update().get(pk=locked.campaign_id)
        amount = sum((g.estimated_cost for g in failed), Decimal(0))
        budget = campaign_budget(campaign=campaign)
        if not budget.fits(amount):
            raise BatchRefused({FIELD_BUDGET: [budget.refusal(amount)]})
        account_ids = {
            name: accounts.enabled_account(
                workspace_id=locked.workspace_id, backend=name
            )
            for name in {g.backend for g in failed}
        }
        groups: dict[tuple[str, int | None], list[Generation]] = defaultdict(list)
        for g in failed:
            account = account_ids[g.backend]
            groups[(g.backend, account.pk if account else None)].append(g)
        now = timezone.now()
        rows = []
        for (backend, account_id), members in groups.items():
            ranks = fair.next_ranks(
                backend=backend,
                account_id=account_id,
                owner_key=locked.owner_key,
                count=len(members),
            )
            for g, rank in zip(members, ranks, strict=True):
                rows.append(
                    Generation(
                        workspace_id=g.workspace_id,
                        campaign_id=g.campaign_id,
                        brand_id=g.brand_id,
                        template_version_id=g.template_version_id,
                        created_by=user,
                        batch=locked,
                        variables=g.variables,
                        parent=g,
                        changes={"retry": True},
                        backend=g.backend,
                        model=g.model,
                        provider_account=account_ids[g.backend],
                        prompt=g.prompt,
                        params=g.params,
                        width=g.width,
                        height=g.height,
                        seed=g.seed,
                        references=g.references,
                        estimated_cost=g.estimated_cost,
                        requested_backend=g.requested_backend or g.backend,
                        route=[_route_entry(g.backend, g.model, now, g.estimated_cost)],
                        owner_key=locked.owner_key,
                        fair_rank=rank,
                        queued_at=now,
                    )
                )
        Generation.objects.bulk_create(rows)
        Batch.objects.filter(pk=locked.pk, state__in=[B.FINISHED, B.CANCELED]).update(
            state=B.RUNNING, finished_at=None, updated_at=now
        )
        _wake_on_commit(
            {
                f"{backend}:{account_id if account_id is not None else 'env'}"
                for backend, account_id in groups
            }
        )
    return len(rows)


# --- Progress -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorGroup:
    error_class: str
    label: str
    count: int
    messages: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class BatchProgress:
    counts: Mapping[str, int]
    total: int
    retried: int
    spend: Spend
    eta_seconds: float | None
    errors: tuple[ErrorGroup, ...]

    @property
    def active(self) -> int:
        return sum(self.counts.get(s, 0) for s in ACTIVE_STATES)

    @property
    def finished(self) -> int:
        return self.total - self.active

    @property
    def succeeded(self) -> int:
        return self.counts.get(S.SUCCEEDED, 0)

    @property
    def failed(self) -> int:
        return sum(self.counts.get(s, 0) for s in FAILED_STATES)

    @property
    def retryable(self) -> int:
        return self.failed - self.counts.get(S.MODERATED, 0) - self.retried

    @property
    def canceled(self) -> int:
        return self.counts.get(S.CANCELED, 0)

    @property
    def percent(self) -> int:
        # 100 only when every generation is terminal.
        if not self.total:
            return 0
        return 100 if not self.active else min(99, self.finished * 100 // self.total)

    @property
    def is_done(self) -> bool:
        return self.total > 0 and not self.active

    @property
    def state_rows(self) -> list[tuple[str, str, int]]:
        return [(s.value, s.label, self.counts.get(s, 0)) for s in GenerationState]

    @property
    def eta_text(self) -> str:
        if self.is_done:
            return "done"
        if self.eta_seconds is None:
            return "estimating…"
        seconds = max(1, round(self.eta_seconds))
        if seconds < 90:
            return f"about {seconds} s"
        if seconds < 5400:
            return f"about {round(seconds / 60)} min"
        return f"about {seconds / 3600:.1f} h"


def batch_counts(*, batch: Batch) -> dict[str, int]:
    rows = (
        Generation.objects.filter(batch=batch)
        .order_by()
        .values_list("state")
        .annotate(n=Count("id"))
    )
    return dict(rows)


def batch_progress(*, batch: Batch) -> BatchProgress:
    generations = Generation.objects.filter(batch=batch)
    counts = batch_counts(batch=batch)
    total = sum(counts.values())
    retried = (
        generations.filter(state__in=FAILED_STATES)
        .filter(Exists(Generation.objects.filter(parent=OuterRef("pk"), batch=batch)))
        .count()
    )
    eta = None
    active = sum(counts.get(s, 0) for s in ACTIVE_STATES)
    if active and batch.dispatched_at is not None:
        done = generations.filter(
            state__in=TERMINAL_STATES, finished_at__gte=batch.dispatched_at
        ).count()
        elapsed = (timezone.now() - batch.dispatched_at).total_seconds()
        if done and elapsed > 0:
            eta = active / (done / elapsed)
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for error_class, message in (
        _unretried(batch)
        .filter(state__in=FAILED_STATES)
        .values_list("error_class", "error_message")
    ):
        groups[error_class or "provider_error"][message or "(no message)"] += 1
    errors = tuple(
        ErrorGroup(
            error_class=cls,
            label=ERROR_LABELS.get(cls, cls),
            count=sum(messages.values()),
            messages=tuple(messages.most_common(5)),
        )
        for cls, messages in sorted(
            groups.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])
        )
    )
    return BatchProgress(
        counts=counts,
        total=total,
        retried=retried,
        spend=spend_of(generations),
        eta_seconds=eta,
        errors=errors,
    )


def batch_sync_state(*, batch: Batch) -> Batch:
    """Bring the stored state in line with the generations (conditional, safe to run any time)."""
    if batch.state not in (B.QUEUED, B.RUNNING):
        return batch
    counts = batch_counts(batch=batch)
    total = sum(counts.values())
    active = sum(counts.get(s, 0) for s in ACTIVE_STATES)
    now = timezone.now()
    if total and not active:
        Batch.objects.filter(pk=batch.pk, state__in=[B.QUEUED, B.RUNNING]).update(
            state=B.FINISHED, finished_at=now, updated_at=now
        )
    elif batch.state == B.QUEUED and (
        counts.get(S.QUEUED, 0) < total
        or Generation.objects.filter(batch=batch, dispatched_at__isnull=False).exists()
    ):
        Batch.objects.filter(pk=batch.pk, state=B.QUEUED).update(
            state=B.RUNNING, updated_at=now
        )
    else:
        return batch
    batch.refresh_from_db()
    return batch


# --- Change one thing ---------------------------------------------------------------------------


def value_field(name: str) -> str:
    return f"value_{name}"


def _slots_of(generation: Generation) -> list[str]:
    return [str(r["name"]) for r in generation.references or () if r.get("name")]


def _merge_brand_of(generation: Generation, kit: BrandKit, filled: list[str]) -> bool:
    """Whether the brand kit was merged into this generation's prompt (its batch says; else
    whichever rendering reproduces the stored prompt)."""
    if generation.batch is not None and "merge_brand" in generation.batch.spec:
        return bool(generation.batch.spec["merge_brand"])
    version = generation.template_version
    assert version is not None
    for merge in (True, False):
        try:
            rendered = render_prompt(
                kind=version.kind,
                body=version.body,
                values=dict(generation.variables),
                brand=kit,
                reference_slots=version.reference_slots,
                filled_slots=filled,
                merge_brand=merge,
            )
        except PromptError:
            break
        if rendered.text == generation.prompt:
            return merge
    return True


def variant_from_asset(
    *,
    asset: Asset,
    user: Any,
    values: Mapping[str, str] | None = None,
    prompt: str | None = None,
) -> Generation:
    """ "Change one thing": the asset's request again with only the edited values changed.

    Seed, backend, model, size, parameters and references are kept exactly; the prompt is
    rendered from the same template version with the new values (or, for a generation made
    without a template, the edited prompt is used as written). The new generation records its
    parent and `changes` ({"headline": {"from": ..., "to": ...}}). Raises BatchRefused with
    errors under `value_<name>` (or `prompt`).
    """
    source = Generation.objects.select_related(
        "template_version", "brand", "campaign", "batch"
    ).get(pk=asset.generation_id)
    version = source.template_version
    changes: dict[str, Any] = {}
    new_values = dict(source.variables)
    if version is not None and source.variables:
        for name in version.variables:
            if values is not None and name in values:
                new_values[name] = str(values[name]).strip()
            if new_values.get(name) != source.variables.get(name):
                changes[name] = {
                    "from": source.variables.get(name, ""),
                    "to": new_values.get(name, ""),
                }
        if not changes:
            raise BatchRefused(
                {
                    NON_FIELD: [
                        "Change at least one value: this would be the same image."
                    ]
                }
            )
        brand = source.brand
        kit = BrandKit.from_brand(brand) if brand is not None else None
        filled = _slots_of(source)
        merge = _merge_brand_of(source, kit, filled) if kit is not None else False
        errors: dict[str, list[str]] = {}
        try:
            rendered = render_prompt(
                kind=version.kind,
                body=version.body,
                values=new_values,
                brand=kit,
                reference_slots=version.reference_slots,
                filled_slots=filled,
                merge_brand=merge,
            )
        except PromptError as exc:
            for problem in exc.problems:
                key = value_field(problem.name) if problem.name else NON_FIELD
                errors.setdefault(key, []).append(problem.message)
            raise BatchRefused(errors) from exc
        for avoided in rendered.avoided_words:
            names = [
                n
                for n, ch in changes.items()
                if avoided.word.lower() in ch["to"].lower()
            ]
            for name in names or [NON_FIELD]:
                key = value_field(name) if name != NON_FIELD else NON_FIELD
                errors.setdefault(key, []).append(avoided.message)
        if errors:
            raise BatchRefused(errors)
        new_prompt = rendered.text
    else:
        new_prompt = (prompt if prompt is not None else source.prompt).strip()
        if not new_prompt:
            raise BatchRefused({"prompt": ["The prompt is empty."]})
        if new_prompt == source.prompt:
            raise BatchRefused(
                {"prompt": ["Change the prompt: this would be the same image."]}
            )
        changes["prompt"] = {"from": source.prompt, "to": new_prompt}

    with transaction.atomic():
        budget: Budget | None = None
        if source.campaign_id is not None:
            campaign = Campaign.objects.select_for_update().get(pk=source.campaign_id)
            budget = campaign_budget(campaign=campaign)
        try:
            generation = services.generation_create(
                workspace=source.workspace,
                backend=source.backend,
                model=source.model,
                prompt=new_prompt,
                width=source.width,
                height=source.height,
                seed=source.seed,
                params=source.params,
                references=source.references,
                created_by=user,
                campaign=source.campaign,
                brand=source.brand,
                template_version=version,
            )
        except BackendError as exc:
            raise BatchRefused({NON_FIELD: [exc.message]}) from exc
        if budget is not None and not budget.fits(generation.estimated_cost):
            raise BatchRefused(
                {FIELD_BUDGET: [budget.refusal(generation.estimated_cost)]}
            )
        Generation.objects.filter(pk=generation.pk).update(
            parent=source, changes=changes, variables=new_values
        )
    generation.refresh_from_db()
    return generation


def spec_from_generation(*, generation: Generation) -> BatchSpec:
    """A one-variant spec that remakes `generation` (the builder's "remix" start): its values,
    seed, backend and model, size and references."""
    version = generation.template_version
    names = list(version.variables) if version is not None else []
    merge = True
    if generation.batch is not None:
        merge = bool(generation.batch.spec.get("merge_brand", True))
    return BatchSpec(
        mode=MATRIX,
        matrix=tuple(
            (name, (str(generation.variables.get(name, "")),)) for name in names
        ),
        seeds=(
            Seeds(FIXED, values=(generation.seed,))
            if generation.seed is not None
            else Seeds(RANDOM, 1, random.SystemRandom().randint(0, MAX_SEED))
        ),
        targets=(Target(generation.backend, generation.model),),
        sizes=(Size(generation.width, generation.height),),
        references={
            str(r["name"]): str(r["code"])
            for r in generation.references or ()
            if r.get("name") and r.get("code")
        },
        merge_brand=merge,
    )


# --- Re-run with one axis changed -----------------------------------------------------------------

AXIS_SEEDS, AXIS_TARGETS, AXIS_SIZES = "seeds", "targets", "sizes"


def batch_axes(batch: Batch) -> list[tuple[str, str, str]]:
    """(axis, label, current value as text) for the "re-run with one axis changed" form."""
    spec = BatchSpec.from_json(batch.spec)
    axes = []
    if spec.mode == MATRIX:
        for name, values in spec.matrix:
            axes.append((f"var:{name}", f"Values of {{{name}}}", "\n".join(values)))
    seeds = spec.seeds
    axes.append(
        (
            AXIS_SEEDS,
            "Seeds",
            f"random {seeds.count}"
            if seeds.mode == RANDOM
            else ", ".join(str(s) for s in seeds.values),
        )
    )
    axes.append(
        (AXIS_TARGETS, "Backends and models", "\n".join(t.key for t in spec.targets))
    )
    axes.append(
        (
            AXIS_SIZES,
            "Sizes",
            "\n".join(s.key or f"{s.width}x{s.height}" for s in spec.sizes),
        )
    )
    return axes


def _parse_targets(text: str) -> tuple[tuple[Target, ...], list[str]]:
    targets: list[Target] = []
    problems = []
    for token in text.replace(",", "\n").splitlines():
        if not token.strip():
            continue
        try:
            target = Target.parse(token)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if target not in targets:
            targets.append(target)
    return tuple(targets), problems


def parse_size_choices(
    text: str, presets: Mapping[str, Size]
) -> tuple[tuple[Size, ...], list[str]]:
    """Channel keys ("instagram-square") or custom sizes ("1024x768"), one per line or comma."""
    sizes: list[Size] = []
    problems: list[str] = []
    custom = []
    for token in text.replace(",", "\n").splitlines():
        token = token.strip()
        if not token:
            continue
        if token in presets:
            sizes.append(presets[token])
        else:
            custom.append(token)
    parsed, problems = parse_sizes("\n".join(custom))
    sizes.extend(s for s in parsed if s not in sizes)
    return tuple(sizes), problems


def describe_changes(old: BatchSpec, new: BatchSpec) -> str:
    """What differs between two specs, in words ("{headline}: “A”, “B” → “A”, “C”")."""

    def listing(items: Sequence[str]) -> str:
        shown = ", ".join(f"“{i}”" for i in items[:4])
        return shown + (f" and {len(items) - 4} more" if len(items) > 4 else "")

    parts = []
    if old.mode != new.mode:
        parts.append(f"mode: {old.mode} → {new.mode}")
    elif new.mode == MATRIX:
        before = dict(old.matrix)
        for name, values in new.matrix:
            if before.get(name) != values:
                parts.append(
                    f"{{{name}}}: {listing(before.get(name, ()))} → {listing(values)}"
                )
    elif old.rows != new.rows:
        parts.append(f"rows: {len(old.rows)} → {len(new.rows)}")
    if old.seeds != new.seeds:

        def seeds_text(seeds: Seeds) -> str:
            if seeds.mode == RANDOM:
                return f"{seeds.count} random"
            return ", ".join(str(s) for s in seeds.values[:6])

        parts.append(f"seeds: {seeds_text(old.seeds)} → {seeds_text(new.seeds)}")
    if old.targets != new.targets:
        parts.append(
            "models: "
            + ", ".join(target_label(t) for t in old.targets)
            + " → "
            + ", ".join(target_label(t) for t in new.targets)
        )
    if old.sizes != new.sizes:
        parts.append(
            "sizes: "
            + ", ".join(s.text for s in old.sizes)
            + " → "
            + ", ".join(s.text for s in new.sizes)
        )
    if dict(old.references) != dict(new.references):
        parts.append("references changed")
    if old.merge_brand != new.merge_brand:
        parts.append("brand kit " + ("added" if new.merge_brand else "left out"))
    return "; ".join(parts)[:500]


def batch_rerun_with_axis(
    *,
    batch: Batch,
    axis: str,
    text: str,
    user: Any,
    presets: Mapping[str, Size] | None = None,
) -> Batch:
    """A draft copy of `batch` with one axis replaced (values of a variable, seeds, targets or
    sizes). It records its parent and what changed; batch_dispatch sends it. Raises BatchRefused
    (errors under "values")."""
    version = batch.template_version
    if version is None:
        raise BatchRefused(
            {NON_FIELD: ["The template version of this batch no longer exists."]}
        )
    old = BatchSpec.from_json(batch.spec)
    problems: list[str] = []
    new = old
    if axis.startswith("var:") and old.mode == MATRIX:
        name = axis[4:]
        values = parse_values(text)
        if name not in dict(old.matrix):
            problems.append(f"{{{name}}} is not an axis of this batch.")
        elif not values:
            problems.append(f"Give at least one value for {{{name}}}.")
        else:
            new = dataclasses.replace(
                old,
                matrix=tuple((n, values if n == name else vs) for n, vs in old.matrix),
            )
    elif axis == AXIS_SEEDS:
        words = text.strip().lower().split()
        if len(words) == 2 and words[0] == "random" and words[1].isdigit():
            new = dataclasses.replace(
                old,
                seeds=Seeds(
                    RANDOM,
                    count=int(words[1]),
                    rng_seed=random.SystemRandom().randint(0, MAX_SEED),
                ),
            )
        else:
            seeds, seed_problems = parse_seeds(text)
            problems += seed_problems
            if not seeds and not seed_problems:
                problems.append("Give seeds (e.g. 1, 2, 3) or “random 4”.")
            new = dataclasses.replace(old, seeds=Seeds(FIXED, values=seeds))
    elif axis == AXIS_TARGETS:
        targets, target_problems = _parse_targets(text)
        problems += target_problems
        new = dataclasses.replace(old, targets=targets)
    elif axis == AXIS_SIZES:
        sizes, size_problems = parse_size_choices(text, presets or {})
        problems += size_problems
        new = dataclasses.replace(old, sizes=sizes)
    else:
        problems.append("Choose which axis to change.")
    if problems:
        raise BatchRefused({"values": problems})
    changed = describe_changes(old, new)
    if not changed:
        raise BatchRefused(
            {"values": ["Nothing changed: edit the values of the axis first."]}
        )
    try:
        return batch_create(
            campaign=batch.campaign,
            version=version,
            spec=new,
            user=user,
            name=f"{batch} · re-run"[:160],
            parent=batch,
            changed=changed,
            dispatch=False,
        )
    except BatchRefused as exc:
        keyed = {
            FIELD_SEEDS: "values",
            FIELD_TARGETS: "values",
            FIELD_SIZES: "values",
        }
        errors: dict[str, list[str]] = {}
        for key, messages in exc.errors.items():
            target = keyed.get(key, "values" if key.startswith("matrix_") else key)
            errors.setdefault(target, []).extend(messages)
        raise BatchRefused(errors) from exc
