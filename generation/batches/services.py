"""Batch services: preview, create, dispatch, cancel, retry, sync and re-run a variant batch.

The only code that changes a batch; generation/batches/plan.py is the pure planning it calls.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.models import Campaign, ReferenceImage, TemplateVersion
from campaigns.prompting import BrandKit
from generation import accounts, fair, routing
from generation.backends import registry
from generation.backends.base import Backend, ReferenceInput
from generation.batches.common import (
    AXIS_SEEDS,
    AXIS_SIZES,
    AXIS_TARGETS,
    FIELD_BUDGET,
    RETRYABLE_STATES,
    B,
    BatchRefused,
    S,
    _unretried,
)
from generation.batches.plan import (
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
    TemplateInput,
    parse_seeds,
    parse_values,
    plan_batch,
    reference_field,
)
from generation.batches.progress import batch_counts
from generation.batches.targets import _configured_backend, max_batch_size, target_label
from generation.batches.variants import (
    _parse_targets,
    describe_changes,
    parse_size_choices,
)
from generation.engine.create import queue_generations
from generation.engine.failure import generation_cancel
from generation.models import (
    ACTIVE_STATES,
    Batch,
    Generation,
)
from generation.spend.services import Budget, campaign_budget

log = logging.getLogger(__name__)


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
                routing.route_entry(
                    variant.target.backend, variant.target.model, variant.cost, at=now
                )
            ],
            owner_key=batch.owner_key,
            fair_rank=ranks[index],
            queued_at=now,
        )
        for index, variant in enumerate(plan.variants)
    ]
    queue_generations(rows)
    # Links the request that dispatched the batch to the tasks that run each generation (their
    # log lines carry generation_id and this request's request_id: studio/logs.py).
    log.info(
        "batch generations queued",
        extra={
            "batch": str(batch.code),
            "generation_ids": [row.pk for row in rows],
        },
    )
    return len(rows)


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
    preview: BatchPreview | None = None,
) -> Batch:
    """Store a batch and (dispatch=True) all its generations in one transaction. Raises BatchRefused.

    `token` (the builder form's one-time token) makes a double click harmless: the second
    request answers the batch the first one made. dispatch=False stores a draft (no generations,
    no budget check yet) that batch_dispatch sends later. `preview`: the batch_preview the caller
    already made of this same campaign, version and spec (the builder's POST plans once); without
    it the batch is planned here.
    """
    workspace_id = version.workspace_id
    if token is not None and (
        existing := Batch.objects.filter(
            workspace_id=workspace_id, request_token=token
        ).first()
    ):
        return existing
    if preview is None:
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
        if generation_cancel(generation_id=generation_id):
            canceled += 1
    return canceled


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
                        route=[
                            routing.route_entry(
                                g.backend, g.model, g.estimated_cost, at=now
                            )
                        ],
                        owner_key=locked.owner_key,
                        fair_rank=rank,
                        queued_at=now,
                    )
                )
        queue_generations(rows)
        Batch.objects.filter(pk=locked.pk, state__in=[B.FINISHED, B.CANCELED]).update(
            state=B.RUNNING, finished_at=None, updated_at=now
        )
    return len(rows)


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
