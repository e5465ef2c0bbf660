"""A variant batch's spec: what people asked for, before it is expanded (generation/batches/plan.py).

A spec (`BatchSpec`) is one of two modes:
- matrix: every template variable gets a list of values; the variants are their cartesian
  product, in the order the template names its variables (the last one varies fastest);
- rows: one variant per CSV row; the header names the variables (generation/batches/parsing.py).
Every combination of values then runs with every seed (the same seeds for all combinations, so
variants differ only in what the values say), on every backend/model target, at every size:

    count = combinations × seeds × targets × sizes

Seeds are a fixed list, or N random ones drawn from `random.Random(rng_seed)`; the RNG seed is
kept in the spec, so the same spec always expands to the same requests. BFL takes seeds
0..2**32-1. The FIELD_* names are the keys of planning errors and the builder form's fields.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import product
from typing import Any

MATRIX, ROWS = "matrix", "rows"
RANDOM, FIXED = "random", "fixed"
MAX_SEED = 2**32 - 1  # BFL: seed is an unsigned 32-bit integer
MAX_SEEDS = 50
# Keys of Plan.errors; the builder form uses the same names for its fields.
FIELD_ROWS = "rows"
FIELD_SEEDS = "seeds"
FIELD_TARGETS = "targets"
FIELD_SIZES = "sizes"
FIELD_REFERENCES = "references"
FIELD_TEMPLATE = "template"
NON_FIELD = "__all__"
# Parameters that are part of the request itself, not model options.


def matrix_field(name: str) -> str:
    return f"matrix_{name}"


def reference_field(slot: str) -> str:
    return f"ref_{slot}"


# --- The spec ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    backend: str
    model: str

    @property
    def key(self) -> str:
        return f"{self.backend}:{self.model}"

    @classmethod
    def parse(cls, text: str) -> Target:
        backend, sep, model = text.strip().partition(":")
        if not (sep and backend.strip() and model.strip()):
            raise ValueError(f"“{text}” is not backend:model (e.g. bfl:flux-2-pro).")
        return cls(backend.strip(), model.strip())


@dataclass(frozen=True)
class Size:
    """A requested output size: a channel preset (key set) or a custom width × height."""

    width: int
    height: int
    key: str = ""
    label: str = ""

    @property
    def text(self) -> str:
        return f"{self.width}×{self.height}"

    @property
    def is_preset(self) -> bool:
        return bool(self.key)

    def describe(self) -> str:
        return f"{self.label} ({self.text})" if self.label else self.text


@dataclass(frozen=True)
class Seeds:
    mode: str = RANDOM
    count: int = 1
    rng_seed: int = 0
    values: tuple[int, ...] = ()

    def resolve(self) -> tuple[int, ...]:
        """The seeds every combination runs with (random ones drawn deterministically)."""
        if self.mode == FIXED:
            return self.values
        rng = random.Random(self.rng_seed)
        return tuple(rng.randint(0, MAX_SEED) for _ in range(self.count))

    @property
    def per_combination(self) -> int:
        return len(self.values) if self.mode == FIXED else self.count


@dataclass(frozen=True)
class Row:
    line: int  # where it started in the CSV (the header is line 1)
    values: Mapping[str, str]
    # The row's own reference images (library codes, in send order), sent after the template's
    # filled slots and cut to each model's maximum: a catalog batch gives every product its own.
    references: tuple[str, ...] = ()
    # Who the row is for ("SKU-1"), in messages about the row.
    label: str = ""


@dataclass(frozen=True)
class BatchSpec:
    mode: str = MATRIX
    # (variable, values) in the template's order.
    matrix: tuple[tuple[str, tuple[str, ...]], ...] = ()
    rows: tuple[Row, ...] = ()
    seeds: Seeds = Seeds()
    targets: tuple[Target, ...] = ()
    sizes: tuple[Size, ...] = ()
    # slot name -> ReferenceImage code
    references: Mapping[str, str] = field(default_factory=dict)
    merge_brand: bool = True

    @property
    def combination_count(self) -> int:
        if self.mode == ROWS:
            return len(self.rows)
        return math.prod(len(values) for _, values in self.matrix)

    @property
    def count(self) -> int:
        return (
            self.combination_count
            * self.seeds.per_combination
            * len(self.targets)
            * len(self.sizes)
        )

    def combinations(self) -> Iterator[tuple[dict[str, str], Row | None]]:
        """Each combination's values, with its CSV row in rows mode."""
        if self.mode == ROWS:
            for row in self.rows:
                yield dict(row.values), row
            return
        names = [name for name, _ in self.matrix]
        for values in product(*(values for _, values in self.matrix)):
            yield dict(zip(names, values, strict=True)), None

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "matrix": [[name, list(values)] for name, values in self.matrix],
            "rows": [
                {"line": r.line, "values": dict(r.values)}
                | (
                    {"references": list(r.references), "label": r.label}
                    if r.references or r.label
                    else {}
                )
                for r in self.rows
            ],
            "seeds": {
                "mode": self.seeds.mode,
                "count": self.seeds.count,
                "rng_seed": self.seeds.rng_seed,
                "values": list(self.seeds.values),
            },
            "targets": [t.key for t in self.targets],
            "sizes": [
                {"width": s.width, "height": s.height, "key": s.key, "label": s.label}
                for s in self.sizes
            ],
            "references": dict(self.references),
            "merge_brand": self.merge_brand,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchSpec:
        seeds = data.get("seeds") or {}
        return cls(
            mode=str(data.get("mode", MATRIX)),
            matrix=tuple(
                (str(name), tuple(str(v) for v in values))
                for name, values in data.get("matrix") or []
            ),
            rows=tuple(
                Row(
                    int(r.get("line", 0)),
                    {k: str(v) for k, v in r["values"].items()},
                    tuple(str(c) for c in r.get("references") or ()),
                    str(r.get("label", "")),
                )
                for r in data.get("rows") or []
            ),
            seeds=Seeds(
                mode=str(seeds.get("mode", RANDOM)),
                count=int(seeds.get("count", 1)),
                rng_seed=int(seeds.get("rng_seed", 0)),
                values=tuple(int(v) for v in seeds.get("values") or []),
            ),
            targets=tuple(Target.parse(t) for t in data.get("targets") or []),
            sizes=tuple(
                Size(
                    int(s["width"]),
                    int(s["height"]),
                    str(s.get("key", "")),
                    str(s.get("label", "")),
                )
                for s in data.get("sizes") or []
            ),
            references={
                str(k): str(v) for k, v in (data.get("references") or {}).items()
            },
            merge_brand=bool(data.get("merge_brand", True)),
        )


def fix_axes(spec: BatchSpec, fixes: Sequence[str]) -> tuple[BatchSpec, list[str]]:
    """The spec with some axes narrowed to one value each, for a next round from the winners.

    Each fix is "axis=value" with the axis as the results page names it: `var:<name>` (a matrix
    variable), `seed`, `target` (backend:model) or `size` (W×H). A fix naming a value the spec does
    not have is skipped (the builder still shows the whole spec). Returns the spec and the fixes
    applied, as "axis = value" for a message.
    """
    applied = []
    for fix in fixes:
        axis, sep, value = fix.partition("=")
        if not sep:
            continue
        if axis.startswith("var:") and spec.mode == MATRIX:
            name = axis[4:]
            matrix = []
            for var, values in spec.matrix:
                if var == name and value in values:
                    values = (value,)
                    applied.append(f"{{{name}}} = {value}")
                matrix.append((var, values))
            spec = replace(spec, matrix=tuple(matrix))
        elif axis == "seed" and value.isdigit() and int(value) in spec.seeds.resolve():
            spec = replace(spec, seeds=Seeds(mode=FIXED, values=(int(value),)))
            applied.append(f"seed = {value}")
        elif axis == "target":
            kept_targets = tuple(t for t in spec.targets if t.key == value)
            if kept_targets:
                spec = replace(spec, targets=kept_targets)
                applied.append(f"model = {value}")
        elif axis == "size":
            kept_sizes = tuple(s for s in spec.sizes if s.text == value)
            if kept_sizes:
                spec = replace(spec, sizes=kept_sizes)
                applied.append(f"size = {value}")
    return spec, applied
