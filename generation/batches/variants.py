"""Batch specs from what exists: a remix spec from a generation, a batch's axes for a re-run,
parsing a re-run's axis, and what changed between two specs (change_one.py makes a single variant)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from generation.batches.common import (
    AXIS_SEEDS,
    AXIS_SIZES,
    AXIS_TARGETS,
)
from generation.batches.parsing import parse_sizes
from generation.batches.spec import (
    FIXED,
    MATRIX,
    MAX_SEED,
    RANDOM,
    BatchSpec,
    Seeds,
    Size,
    Target,
)
from generation.batches.targets import target_label
from generation.models import (
    Batch,
    Generation,
)


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
