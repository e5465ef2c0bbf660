"""Human titles for images, and what the gallery says about the batches on a page.

An image is named by its template and the values that tell it apart from its siblings: "Spring
launch — headline: Fresh start · colour: teal". Which values those are comes from the batch's
spec (generation/batches/plan.py, BatchSpec.as_json): the variables that take more than one value
across its matrix or its CSV rows, then the model, size and seed when the batch has several.
Outside a batch: the template and the image's own values (for "change one thing", the ones it
changed); a free prompt gives its first words; when nothing else tells images apart, the seed.

`titled()` reads every batch on a page in one query (whatever the number of cards), so the
gallery keeps a fixed number of queries per page (tests/generation/test_gallery_queries.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils.text import Truncator

from generation.models import Asset, Batch

MAX_VALUES = 3  # variable values in a title; more read as a list, not a name
VALUE_CHARS = 40
PROMPT_WORDS = 8


@dataclass(frozen=True)
class BatchFacts:
    """A batch as a gallery heading and its images' titles need it."""

    pk: int
    code: UUID
    name: str
    template: str  # "Spring launch v3"; "" when the version was deleted
    varying: tuple[str, ...] = ()  # variables whose values differ between its variants
    models: bool = False  # more than one backend/model target
    sizes: bool = False
    seeds: bool = False  # more than one seed per combination of values
    total: int = 0  # its images (all of them, whatever the filters)
    shown: int = 0  # its images that match the gallery's filters


def spec_axes(spec: Mapping[str, Any]) -> tuple[tuple[str, ...], bool, bool, bool]:
    """(varying variables, several models, several sizes, several seeds) of a batch spec."""
    varying: list[str] = []
    if spec.get("mode") == "rows":
        seen: dict[str, set[str]] = {}
        for row in spec.get("rows") or []:
            for name, value in (row.get("values") or {}).items():
                seen.setdefault(name, set()).add(str(value))
        varying = [name for name, values in seen.items() if len(values) > 1]
    else:
        varying = [
            str(name) for name, values in spec.get("matrix") or [] if len(values) > 1
        ]
    seeds = spec.get("seeds") or {}
    per_combination = (
        len(seeds.get("values") or [])
        if seeds.get("mode") == "fixed"
        else int(seeds.get("count") or 1)
    )
    return (
        tuple(varying),
        len(spec.get("targets") or []) > 1,
        len(spec.get("sizes") or []) > 1,
        per_combination > 1,
    )


def batch_facts(
    batch_ids: Iterable[int], *, matching: QuerySet[Asset] | None = None
) -> dict[int, BatchFacts]:
    """The batches with these ids, in one query; with `matching` (the gallery's filtered assets),
    also how many of each batch's images match and how many it has (headings)."""
    ids = sorted(set(batch_ids))
    if not ids:
        return {}
    batches = Batch.objects.filter(pk__in=ids).select_related(
        "template_version__template"
    )
    batches = batches.only(
        "code",
        "name",
        "spec",
        "template_version__number",
        "template_version__template__name",
    )
    if matching is not None:
        batches = batches.annotate(
            n_total=_count(Asset.objects.filter(batch=OuterRef("pk"))),
            n_shown=_count(matching.filter(batch=OuterRef("pk"))),
        )
    out: dict[int, BatchFacts] = {}
    for batch in batches:
        varying, models, sizes, seeds = spec_axes(batch.spec or {})
        version = batch.template_version
        out[batch.pk] = BatchFacts(
            pk=batch.pk,
            code=batch.code,
            name=str(batch),
            template=f"{version.template.name} v{version.number}" if version else "",
            varying=varying,
            models=models,
            sizes=sizes,
            seeds=seeds,
            total=getattr(batch, "n_total", 0),
            shown=getattr(batch, "n_shown", 0),
        )
    return out


def _count(assets: QuerySet[Asset]) -> Coalesce:
    return Coalesce(
        Subquery(
            assets.order_by().values("batch_id").annotate(n=Count("pk")).values("n")[:1]
        ),
        0,
    )


def titled(
    assets: Iterable[Asset], *, matching: QuerySet[Asset] | None = None
) -> dict[int, BatchFacts]:
    """Give each asset (its generation and template version joined) a `title`; one query for
    all their batches, none when no asset has one. Returns the batches' facts by id."""
    assets = list(assets)
    facts = batch_facts(
        (a.batch_id for a in assets if a.batch_id is not None), matching=matching
    )
    for asset in assets:
        asset.title = asset_title(asset, facts.get(asset.batch_id or 0))  # type: ignore[attr-defined]
    return facts


@dataclass(frozen=True)
class BatchGroup:
    """A run of cards from one batch (or from none) under its heading."""

    key: int  # the batch id, 0 for images from no batch
    facts: BatchFacts | None
    assets: list[Asset]
    continued: (
        bool  # the previous page ended in this group: its heading is already shown
    )


def groups(
    assets: list[Asset], facts: Mapping[int, BatchFacts], *, before: int | None
) -> list[BatchGroup]:
    """Consecutive cards of one batch together (the grouped page is ordered by batch)."""
    out: list[BatchGroup] = []
    for asset in assets:
        key = asset.batch_id or 0
        if out and out[-1].key == key:
            out[-1].assets.append(asset)
        else:
            continued = not out and before == key
            out.append(BatchGroup(key, facts.get(key), [asset], continued))
    return out


def asset_title(asset: Asset, facts: BatchFacts | None) -> str:
    generation = asset.generation
    variables: dict[str, Any] = generation.variables or {}
    version = generation.template_version
    parts: list[str] = []
    if facts is not None:
        names = [n for n in facts.varying if n in variables]
        parts += _values(variables, names)
        if facts.models:
            parts.append(generation.model)
        if facts.sizes:
            parts.append(f"{generation.width}×{generation.height}")
        if facts.seeds and generation.seed is not None:
            parts.append(f"seed {generation.seed}")
    elif version is not None:
        changed = [n for n in (generation.changes or {}) if n in variables]
        parts += _values(variables, changed or list(variables))
    if version is None:
        head = _first_words(generation.prompt) or generation.model
    else:
        head = version.template.name
    if not parts:
        # Nothing tells it apart by its values: the seed does (else the size).
        parts.append(
            f"seed {generation.seed}"
            if generation.seed is not None
            else f"{asset.width}×{asset.height}"
        )
    return f"{head} — {' · '.join(parts)}"


def _values(variables: Mapping[str, Any], names: list[str]) -> list[str]:
    parts = [
        f"{name}: {Truncator(str(variables[name])).chars(VALUE_CHARS)}"
        for name in names[:MAX_VALUES]
    ]
    if len(names) > MAX_VALUES:
        parts.append("…")
    return parts


def _first_words(prompt: str) -> str:
    """The prompt's first words; a JSON prompt's first text values."""
    text = prompt.strip()
    if text.startswith("{"):
        with contextlib.suppress(ValueError):
            text = " ".join(_strings(json.loads(text)))
    return Truncator(" ".join(text.split())).words(PROMPT_WORDS, truncate="…")


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
