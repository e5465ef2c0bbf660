"""Change one thing: a batch spec from an asset or a generation, its axes, and what changed."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction

from campaigns.models import Campaign
from campaigns.prompting import BrandKit, PromptError, render_prompt
from generation.backends.base import BackendError
from generation.batches.common import (
    AXIS_SEEDS,
    AXIS_SIZES,
    AXIS_TARGETS,
    FIELD_BUDGET,
    BatchRefused,
)
from generation.batches.parsing import parse_sizes
from generation.batches.spec import (
    FIXED,
    MATRIX,
    MAX_SEED,
    NON_FIELD,
    RANDOM,
    BatchSpec,
    Seeds,
    Size,
    Target,
)
from generation.batches.targets import target_label
from generation.engine.create import generation_create
from generation.models import (
    Asset,
    Batch,
    Generation,
)
from generation.spend.services import Budget, campaign_budget


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
            generation = generation_create(
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
