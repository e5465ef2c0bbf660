"""Batch services: create, dispatch, cancel and sync a variant batch.

With generation/batches/rerun.py, the only code that changes a batch; generation/batches/preview.py
plans and prices it first (generation/batches/plan.py is the pure planning).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.models import Campaign, TemplateVersion
from generation import accounts, fair, routing
from generation.batches.common import (
    FIELD_BUDGET,
    B,
    BatchRefused,
    S,
)
from generation.batches.plan import Plan
from generation.batches.preview import BatchPreview, batch_preview
from generation.batches.progress import batch_counts
from generation.batches.spec import NON_FIELD, BatchSpec
from generation.engine.create import queue_generations
from generation.engine.failure import generation_cancel
from generation.models import (
    ACTIVE_STATES,
    Batch,
    Generation,
)
from generation.spend.services import campaign_budget

log = logging.getLogger(__name__)


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
