"""Variant batches, the pure part: a spec (generation/batches/spec.py) expanded into the exact
requests to send.

No database, clock or network: generation/batches/preview.py loads the template version, brand
kit, references and backends, and hands them to `plan_batch`.

A channel preset (1080×1080) is fitted to the nearest size each model can make (multiples of 16
on BFL: 1088×1088) and exports resize it back later; a custom size must be one the backend makes
as typed, otherwise it is refused at the field.

`plan_batch` renders every combination with `render_prompt` (the exact text sent), checks every
request with the backend's own rules (`Backend.validate`) and prices it (`estimate_cost`), and
collects every problem under the form field that caused it (FIELD_* names in spec.py), before
anything is stored or queued.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from campaigns.prompting import (
    BrandKit,
    PromptError,
    ReferenceSlot,
    RenderedPrompt,
    render_prompt,
)
from generation.backends.base import (
    Backend,
    BackendError,
    GenerationRequest,
    ModelSpec,
    ReferenceInput,
    RuleViolation,
)
from generation.batches.problems import avoided_words, check_shape, render_problems
from generation.batches.spec import (
    FIELD_REFERENCES,
    FIELD_ROWS,
    FIELD_SEEDS,
    FIELD_SIZES,
    FIELD_TARGETS,
    FIELD_TEMPLATE,
    NON_FIELD,
    BatchSpec,
    Row,
    Size,
    Target,
)
from generation.prompt_limits import prompt_too_long

REQUEST_KEYS = frozenset({"model", "width", "height", "seed"})
PREVIEW_PROMPTS = 6


def fit_size(width: int, height: int, spec: ModelSpec) -> tuple[int, int]:
    """The size nearest to `width`×`height` (same aspect) that `spec` can make."""
    step = max(1, spec.dimension_step)
    limit = spec.max_megapixels * 1_000_000
    scale = min(1.0, math.sqrt(limit / (width * height))) if width * height else 1.0

    def snap(value: float) -> int:
        value = min(max(value, spec.min_side), spec.max_side)
        snapped = max(step, round(value / step) * step)
        while snapped < spec.min_side:
            snapped += step
        while snapped > spec.max_side:
            snapped -= step
        return snapped

    w, h = snap(width * scale), snap(height * scale)
    while w * h > limit + 1e-6 and (w > spec.min_side or h > spec.min_side):
        if w >= h:
            w -= step
        else:
            h -= step
    return w, h


# --- Planning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedVariant:
    values: Mapping[str, str]
    combination: int
    seed: int
    target: Target
    size: Size
    width: int
    height: int
    prompt: str
    reference_order: tuple[str, ...]
    params: Mapping[str, Any]
    cost: Decimal
    # The row's own references sent after the slots (codes), already cut to the model's maximum.
    row_references: tuple[str, ...] = ()


@dataclass
class TargetTotal:
    target: Target
    label: str
    count: int = 0
    total: Decimal = Decimal(0)
    unit_costs: set[Decimal] = field(default_factory=set)

    @property
    def unit_cost(self) -> Decimal | None:
        """The price of one image when all are priced alike (one size, same references)."""
        return next(iter(self.unit_costs)) if len(self.unit_costs) == 1 else None


@dataclass
class Plan:
    spec: BatchSpec
    count: int
    max_size: int
    variants: list[PlannedVariant] = field(default_factory=list)
    # (values, exact prompt) per combination, in order.
    prompts: list[tuple[Mapping[str, str], str]] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    by_target: dict[str, TargetTotal] = field(default_factory=dict)
    # "1080×1080 → 1088×1088 on bfl · FLUX.2 [pro]"
    fitted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def total(self) -> Decimal:
        return sum((t.total for t in self.by_target.values()), Decimal(0))

    @property
    def by_backend(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for total in self.by_target.values():
            entry = out.setdefault(
                total.target.backend, {"count": 0, "total": Decimal(0)}
            )
            entry["count"] += total.count
            entry["total"] += total.total
        return out

    @property
    def first_prompts(self) -> list[tuple[Mapping[str, str], str]]:
        return self.prompts[:PREVIEW_PROMPTS]

    def error(self, key: str, message: str) -> None:
        messages = self.errors.setdefault(key, [])
        if message not in messages:
            messages.append(message)


@dataclass(frozen=True)
class TemplateInput:
    """What of a template version planning needs."""

    kind: str
    body: str
    variables: tuple[str, ...]
    reference_slots: tuple[Mapping[str, Any], ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)


# Where a broken backend rule is shown in the builder.
_RULE_FIELDS = {
    "model": FIELD_TARGETS,
    "max_references": FIELD_REFERENCES,
    "references": FIELD_REFERENCES,
    "dimensions": FIELD_SIZES,
    "dimension_step": FIELD_SIZES,
    "max_megapixels": FIELD_SIZES,
    "params": FIELD_TEMPLATE,
    "param_range": FIELD_TEMPLATE,
    "prompt": FIELD_TEMPLATE,
    "seed": FIELD_SEEDS,
}


def plan_batch(
    *,
    spec: BatchSpec,
    template: TemplateInput,
    brand: BrandKit | None,
    backends: Mapping[str, Backend],
    references: Mapping[str, ReferenceInput],
    labels: Mapping[str, str] | None = None,
    max_size: int = 1000,
    row_references: Mapping[str, ReferenceInput] | None = None,
) -> Plan:
    """Expand, render, validate and price every variant; problems go under their field.

    `backends` maps each target's backend name to a configured instance (a name missing from it
    is reported as not configured); `references` maps each filled slot to its image (only size
    and count matter here); `labels` gives targets their display names; `row_references` maps
    the codes rows name (Row.references) to their images.
    """
    plan = Plan(spec=spec, count=spec.count, max_size=max_size)
    labels = labels or {}
    check_shape(plan, spec, template)
    if plan.count > max_size:
        plan.error(
            NON_FIELD,
            f"This batch would make {plan.count:,} images; one batch makes at most "
            f"{max_size:,}. Remove some values, seeds, models or sizes, or split it into "
            "several batches.",
        )
    if plan.errors:
        return plan

    slots = [ReferenceSlot.coerce(s) for s in template.reference_slots]
    filled = [s.name for s in slots if s.name in references]
    rendered_ok: list[tuple[int, dict[str, str], RenderedPrompt, Row | None]] = []
    for index, (values, row) in enumerate(spec.combinations()):
        where = f"Row {row.line - 1} (line {row.line})" if row else None
        try:
            rendered = render_prompt(
                kind=template.kind,
                body=template.body,
                values=values,
                brand=brand,
                reference_slots=template.reference_slots,
                filled_slots=filled,
                merge_brand=spec.merge_brand,
            )
        except PromptError as exc:
            render_problems(plan, exc, spec, where)
            continue
        if not rendered.can_dispatch:
            avoided_words(plan, rendered, spec, where)
            continue
        too_long = [
            message
            for target in spec.targets
            if (
                message := prompt_too_long(
                    len(rendered.text),
                    target.backend,
                    labels.get(target.key, target.key),
                )
            )
        ]
        if too_long:
            for message in too_long:
                plan.error(FIELD_TEMPLATE, f"{where}: {message}" if where else message)
            continue
        rendered_ok.append((index, values, rendered, row))
        for warning in rendered.warnings:
            if warning not in plan.warnings:
                plan.warnings.append(warning)
        plan.prompts.append((values, rendered.text))
    if plan.errors:
        return plan

    seeds = spec.seeds.resolve()
    base_params = {
        k: v for k, v in (template.parameters or {}).items() if k not in REQUEST_KEYS
    }
    shapes: dict[tuple[Target, Size], tuple[int, int, dict[str, Any]] | None] = {}
    for target in spec.targets:
        label = labels.get(target.key, target.key)
        plan.by_target[target.key] = TargetTotal(target, label)
        backend = backends.get(target.backend)
        if backend is None:
            plan.error(
                FIELD_TARGETS,
                f"{label}: this backend is not configured for the workspace.",
            )
            continue
        model = backend.capabilities().models.get(target.model)
        if model is None:
            served = ", ".join(sorted(backend.capabilities().models))
            plan.error(
                FIELD_TARGETS,
                f"{label}: {backend.label} does not serve {target.model} (it serves {served}).",
            )
            continue
        params = {k: v for k, v in base_params.items() if k in model.params}
        if dropped := sorted(set(base_params) - set(params)):
            plan.warnings.append(
                f"{label} does not take the template's {', '.join(dropped)}: left out there."
            )
        for size in spec.sizes:
            width, height = size.width, size.height
            if size.is_preset:
                width, height = fit_size(size.width, size.height, model)
                if (width, height) != (size.width, size.height):
                    plan.fitted.append(
                        f"{size.describe()} is made at {width}×{height} on {label}."
                    )
            shapes[(target, size)] = (width, height, params)

    if plan.errors:
        return plan
    # render_prompt numbers the filled slots in declared order: "image N" is the N-th sent.
    inputs = tuple(references[name] for name in filled)
    row_inputs = row_references or {}
    for index, values, rendered, row in rendered_ok:
        own = _row_codes(plan, row, row_inputs)
        for seed in seeds:
            for target in spec.targets:
                backend = backends[target.backend]
                label = labels.get(target.key, target.key)
                sent = _cut_to_model(
                    plan, row, own, len(inputs), backend, target, label
                )
                for size in spec.sizes:
                    shape = shapes.get((target, size))
                    if shape is None:
                        continue
                    width, height, params = shape
                    request = GenerationRequest(
                        model=target.model,
                        prompt=rendered.text,
                        width=width,
                        height=height,
                        seed=seed,
                        references=inputs + tuple(row_inputs[c] for c in sent),
                        params=params,
                    )
                    try:
                        backend.validate(request)
                        cost = backend.estimate_cost(request)
                    except RuleViolation as exc:
                        key = _RULE_FIELDS.get(exc.rule, NON_FIELD)
                        prefix = (
                            f"{size.describe()} on {label}: "
                            if key == FIELD_SIZES
                            else f"{label}: "
                        )
                        plan.error(key, prefix + exc.message)
                        shapes[(target, size)] = None  # one message per shape is enough
                        continue
                    except BackendError as exc:
                        plan.error(FIELD_TARGETS, f"{label}: {exc.message}")
                        shapes[(target, size)] = None
                        continue
                    total = plan.by_target[target.key]
                    total.count += 1
                    total.total += cost
                    total.unit_costs.add(cost)
                    plan.variants.append(
                        PlannedVariant(
                            values=values,
                            combination=index,
                            seed=seed,
                            target=target,
                            size=size,
                            width=width,
                            height=height,
                            prompt=rendered.text,
                            reference_order=rendered.reference_order,
                            params=params,
                            cost=cost,
                            row_references=sent,
                        )
                    )
    if plan.errors:
        plan.variants = []
    return plan


def _row_codes(
    plan: Plan, row: Row | None, known: Mapping[str, ReferenceInput]
) -> tuple[str, ...]:
    """The row's reference codes that exist; a missing one is an error on the row."""
    if row is None or not row.references:
        return ()
    missing = [code for code in row.references if code not in known]
    if missing:
        who = row.label or f"Line {row.line}"
        plan.error(
            FIELD_ROWS,
            f"{who}: {len(missing)} of its reference images are no longer in the library.",
        )
    return tuple(code for code in row.references if code in known)


def _cut_to_model(
    plan: Plan,
    row: Row | None,
    own: tuple[str, ...],
    slot_count: int,
    backend: Backend,
    target: Target,
    label: str,
) -> tuple[str, ...]:
    """The row's references a model takes after the filled slots; the preview says what is left out."""
    if not own:
        return ()
    model = backend.capabilities().models.get(target.model)
    room = max(0, (model.max_references if model else len(own)) - slot_count)
    if len(own) > room and row is not None:
        who = row.label or f"Line {row.line}"
        warning = (
            f"{who}: {label} takes {room} of its {len(own)} reference images "
            f"(images 1–{room} sent, {len(own) - room} left out)."
            if room
            else f"{who}: {label} takes none of its reference images."
        )
        if warning not in plan.warnings:
            plan.warnings.append(warning)
    return own[:room]
