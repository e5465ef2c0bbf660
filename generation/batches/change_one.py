"""Change one thing: an asset's request made again with what the user edited changed.

What can change: the template's values (or, without a template, the prompt), a reference image
(another image of the slot's role from the brand's library), the seed, the size and the model
(backend:model among the workspace's configured ones). Everything else is kept exactly. The new
generation records its parent and `changes`, keyed by what changed ("headline", "prompt",
"references", "seed", "size", "model"), each {"from": ..., "to": ...}.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import transaction

from campaigns.models import Campaign, ReferenceImage
from campaigns.prompting import BrandKit, PromptError, render_prompt
from generation.backends.base import BackendError, RuleViolation
from generation.batches.common import FIELD_BUDGET, BatchRefused
from generation.batches.spec import NON_FIELD, Target
from generation.batches.targets import _configured_backend, target_label
from generation.engine.create import generation_create
from generation.models import Asset, Generation
from generation.spend.services import Budget, campaign_budget

# The form fields of what can change besides the values (generation/batches/variant_form.py).
FIELD_SEED = "seed"
FIELD_MODEL = "model"
FIELD_WIDTH = "width"
FIELD_HEIGHT = "height"
# Where a broken backend rule is shown on the form.
_RULE_FIELDS = {
    "model": FIELD_MODEL,
    "dimensions": FIELD_WIDTH,
    "dimension_step": FIELD_WIDTH,
    "max_megapixels": FIELD_WIDTH,
    "seed": FIELD_SEED,
}


def value_field(name: str) -> str:
    return f"value_{name}"


def slot_field(name: str) -> str:
    return f"ref_{name}"


@dataclass(frozen=True)
class Edits:
    """What the form asked for; None (or a missing key) keeps the source's."""

    values: Mapping[str, str] | None = None
    prompt: str | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    target: Target | None = None
    # slot name -> library image code
    references: Mapping[str, str] | None = None


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


def _new_prompt(
    source: Generation, edits: Edits, changes: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The prompt and values with the edited values (re-rendered) or the edited free prompt."""
    version = source.template_version
    new_values = dict(source.variables)
    if version is None or not source.variables:
        if edits.prompt is None:
            return source.prompt, new_values
        new_prompt = edits.prompt.strip()
        if not new_prompt:
            raise BatchRefused({"prompt": ["The prompt is empty."]})
        if new_prompt != source.prompt:
            changes["prompt"] = {"from": source.prompt, "to": new_prompt}
        return new_prompt, new_values
    for name in version.variables:
        if edits.values is not None and name in edits.values:
            new_values[name] = str(edits.values[name]).strip()
        if new_values.get(name) != source.variables.get(name):
            changes[name] = {
                "from": source.variables.get(name, ""),
                "to": new_values.get(name, ""),
            }
    if not changes:
        return source.prompt, new_values
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
            n for n, ch in changes.items() if avoided.word.lower() in ch["to"].lower()
        ]
        for name in names or [NON_FIELD]:
            key = value_field(name) if name != NON_FIELD else NON_FIELD
            errors.setdefault(key, []).append(avoided.message)
    if errors:
        raise BatchRefused(errors)
    return rendered.text, new_values


def _new_references(
    source: Generation, edits: Edits, changes: dict[str, Any]
) -> list[dict[str, Any]]:
    """The source's references with the edited slots' images swapped for other library images
    of the slot's role from the same brand (the order, and so "image N", is kept)."""
    references = [dict(r) for r in source.references or ()]
    wanted = {
        slot: code
        for slot, code in (edits.references or {}).items()
        if any(r.get("name") == slot and str(r.get("code")) != code for r in references)
    }
    if not wanted:
        return references
    codes = []
    errors: dict[str, list[str]] = {}
    for slot, code in wanted.items():
        try:
            codes.append(UUID(code))
        except ValueError:
            errors.setdefault(slot_field(slot), []).append(
                "Choose an image from the library."
            )
    images = {
        str(ref.code): ref
        for ref in ReferenceImage.objects.filter(
            workspace_id=source.workspace_id, brand=source.brand, code__in=codes
        )
    }
    old_names = {
        str(ref.code): str(ref)
        for ref in ReferenceImage.objects.filter(
            workspace_id=source.workspace_id,
            code__in=[r["code"] for r in references if r.get("name") in wanted],
        )
    }
    before, after = [], []
    for entry in references:
        slot = str(entry.get("name") or "")
        if slot not in wanted:
            continue
        image = images.get(wanted[slot])
        if image is None:
            errors.setdefault(slot_field(slot), []).append(
                "That image is not in this brand's library (any more)."
            )
            continue
        if entry.get("role") and image.role != entry["role"]:
            errors.setdefault(slot_field(slot), []).append(
                f"“{image}” is a {image.get_role_display().lower()} image; "
                f"“{slot}” takes a {entry['role']} image."
            )
            continue
        before.append(
            f"{slot}: {old_names.get(str(entry['code']), 'an image no longer in the library')}"
        )
        after.append(f"{slot}: {image}")
        entry["code"] = str(image.code)
    if errors:
        raise BatchRefused(errors)
    changes["references"] = {"from": "; ".join(before), "to": "; ".join(after)}
    return references


def _new_target(
    source: Generation, edits: Edits, changes: dict[str, Any]
) -> tuple[Target, dict[str, Any]]:
    """The backend and model (a configured one) and the parameters that model takes."""
    old = Target(source.backend, source.model)
    target = edits.target or old
    if target == old:
        return old, dict(source.params or {})
    backend = _configured_backend(workspace_id=source.workspace_id, name=target.backend)
    model = backend.capabilities().models.get(target.model) if backend else None
    if backend is None or model is None:
        raise BatchRefused(
            {
                FIELD_MODEL: [
                    f"{target_label(target)} is not available in this workspace."
                ]
            }
        )
    changes["model"] = {"from": target_label(old), "to": target_label(target)}
    # A parameter the new model does not take is left out there, as a batch does (plan.py).
    return target, {k: v for k, v in (source.params or {}).items() if k in model.params}


def variant_from_asset(*, asset: Asset, user: Any, edits: Edits) -> Generation:
    """ "Change one thing": the asset's request again with only the edits changed.

    Raises BatchRefused with errors under the form's field names (`value_<name>`, `prompt`,
    `ref_<slot>`, `seed`, `width`, `model`, `budget`) and stores nothing then.
    """
    source = Generation.objects.select_related(
        "template_version", "brand", "campaign", "batch"
    ).get(pk=asset.generation_id)
    changes: dict[str, Any] = {}
    new_prompt, new_values = _new_prompt(source, edits, changes)
    references = _new_references(source, edits, changes)
    seed = source.seed if edits.seed is None else edits.seed
    if seed != source.seed:
        changes["seed"] = {"from": source.seed, "to": seed}
    width = edits.width or source.width
    height = edits.height or source.height
    if (width, height) != (source.width, source.height):
        changes["size"] = {
            "from": f"{source.width}×{source.height}",
            "to": f"{width}×{height}",
        }
    target, params = _new_target(source, edits, changes)
    if not changes:
        raise BatchRefused(
            {
                NON_FIELD: [
                    "Change at least one thing (a value, a reference, the seed, the size or "
                    "the model): as it is, this would be the same image."
                ]
            }
        )
    with transaction.atomic():
        budget: Budget | None = None
        if source.campaign_id is not None:
            campaign = Campaign.objects.select_for_update().get(pk=source.campaign_id)
            budget = campaign_budget(campaign=campaign)
        try:
            generation = generation_create(
                workspace=source.workspace,
                backend=target.backend,
                model=target.model,
                prompt=new_prompt,
                width=width,
                height=height,
                seed=seed,
                params=params,
                references=references,
                created_by=user,
                campaign=source.campaign,
                brand=source.brand,
                template_version=source.template_version,
            )
        except RuleViolation as exc:
            key = _RULE_FIELDS.get(exc.rule, NON_FIELD)
            if exc.rule in ("references", "max_references") and "references" in changes:
                key = NON_FIELD
            raise BatchRefused({key: [exc.message]}) from exc
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


def describe_variant_changes(changes: Mapping[str, Any]) -> str:
    """What a variant changed, in words for the success message ("{headline} and the seed"): the
    values first, then the rest in the form's order (stored JSON keys come back sorted)."""
    words = {
        "prompt": "the prompt",
        "references": "the reference image",
        "seed": "the seed",
        "size": "the size",
        "model": "the model",
    }
    values = [f"{{{name}}}" for name in sorted(changes) if name not in words]
    parts = values + [words[name] for name in words if name in changes]
    return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)
