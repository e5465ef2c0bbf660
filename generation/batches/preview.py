"""A batch's preview: planned, priced and checked against the budget, before anything is stored.

Loads what planning needs (the template version, brand kit, chosen references and the
workspace's configured backends) and hands it to the pure plan_batch (generation/batches/plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID

from campaigns.models import Campaign, ReferenceImage, TemplateVersion
from campaigns.prompting import BrandKit
from generation.backends import registry
from generation.backends.base import Backend, BackendConfig, ReferenceInput
from generation.batches.common import (
    FIELD_BUDGET,
)
from generation.batches.plan import Plan, PlannedVariant, TemplateInput, plan_batch
from generation.batches.real_costs import (
    PRICED_BACKENDS,
    SELF_HOSTED_BACKENDS,
    BackendCost,
    real_backend_costs,
)
from generation.batches.spec import (
    FIELD_REFERENCES,
    NON_FIELD,
    BatchSpec,
    reference_field,
)
from generation.batches.targets import _configured_backend, max_batch_size, target_label
from generation.spend.services import Budget, campaign_budget

# The offline backend: it draws labelled drafts and charges nothing (generation/backends/preview.py).
PREVIEW_BACKEND = "preview"


@dataclass
class BatchPreview:
    plan: Plan
    budget: Budget
    errors: dict[str, list[str]] = field(default_factory=dict)
    # A batch of free preview drafts only: what it would cost on each real backend.
    real_costs: list[BackendCost] = field(default_factory=list)
    # Whether the workspace has any backend but the offline preview configured.
    providers_configured: bool = True

    @property
    def free_drafts_only(self) -> bool:
        return bool(self.real_costs)

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
    row_references = _load_row_references(version=version, spec=spec)
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
        row_references=row_references,
    )
    for key, messages in plan.errors.items():
        for message in messages:
            if message not in errors.setdefault(key, []):
                errors[key].append(message)
    budget = campaign_budget(campaign=campaign)
    if not errors and not budget.fits(plan.total):
        errors[FIELD_BUDGET] = [budget.refusal(plan.total)]
    preview = BatchPreview(plan=plan, budget=budget, errors=errors)
    if plan.variants and all(t.backend == PREVIEW_BACKEND for t in spec.targets):
        preview.real_costs = _real_costs(plan, references, row_references)
        preview.providers_configured = any(
            _configured_backend(workspace_id=version.workspace_id, name=name)
            for name in PRICED_BACKENDS + SELF_HOSTED_BACKENDS
        )
    return preview


def _real_costs(
    plan: Plan,
    references: dict[str, ReferenceInput],
    row_references: dict[str, ReferenceInput],
) -> list[BackendCost]:
    """The drafts priced on each real backend (none needs to be configured to be priced)."""

    def inputs(variant: PlannedVariant) -> tuple[ReferenceInput, ...]:
        return tuple(references[n] for n in variant.reference_order) + tuple(
            row_references[c] for c in variant.row_references
        )

    return real_backend_costs(
        variants=plan.variants,
        backends={
            name: registry.get_backend(name, BackendConfig())
            for name in PRICED_BACKENDS + SELF_HOSTED_BACKENDS
        },
        references=inputs,
        model_labels=registry.MODELS,
    )
