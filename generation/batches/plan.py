"""Variant batches, the pure part: what people type, expanded into the exact requests to send.

No database, clock or network: generation/batches/services.py loads the template version, brand
kit, references and backends, and hands them to `plan_batch`.

A spec (`BatchSpec`) is one of two modes:
- matrix: every template variable gets a list of values; the variants are their cartesian
  product, in the order the template names its variables (the last one varies fastest);
- rows: one variant per CSV row; the header names the variables (`parse_rows`).
Every combination of values then runs with every seed (the same seeds for all combinations, so
variants differ only in what the values say), on every backend/model target, at every size:

    count = combinations × seeds × targets × sizes

Seeds are a fixed list, or N random ones drawn from `random.Random(rng_seed)`; the RNG seed is
kept in the spec, so the same spec always expands to the same requests. BFL takes seeds
0..2**32-1. A channel preset (1080×1080) is fitted to the nearest size each model can make
(multiples of 16 on BFL: 1088×1088) and exports resize it back later; a custom size must be one
the backend makes as typed, otherwise it is refused at the field.

`plan_batch` renders every combination with `render_prompt` (the exact text sent), checks every
request with the backend's own rules (`Backend.validate`) and prices it (`estimate_cost`), and
collects every problem under the form field that caused it (FIELD_* names below), before
anything is stored or queued.
"""

from __future__ import annotations

import csv
import io
import math
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import product
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
from generation.prompt_limits import prompt_too_long
from studio.input_rules import NUL_MESSAGE, has_nul

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
REQUEST_KEYS = frozenset({"model", "width", "height", "seed"})
PREVIEW_PROMPTS = 6


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
            kept = tuple(t for t in spec.targets if t.key == value)
            if kept:
                spec = replace(spec, targets=kept)
                applied.append(f"model = {value}")
        elif axis == "size":
            kept = tuple(s for s in spec.sizes if s.text == value)
            if kept:
                spec = replace(spec, sizes=kept)
                applied.append(f"size = {value}")
    return spec, applied


# --- Parsing what people type ------------------------------------------------------------------

_SPLIT = re.compile(r"[\s,;]+")
_SIZE = re.compile(r"\A(\d{1,5})\s*[x×X*]\s*(\d{1,5})\Z")


def parse_values(text: str) -> tuple[str, ...]:
    """One value per line (commas are part of a value); blank lines and repeats dropped."""
    lines = (line.strip() for line in (text or "").splitlines())
    return tuple(dict.fromkeys(line for line in lines if line))


def parse_seeds(text: str) -> tuple[tuple[int, ...], list[str]]:
    """Whole numbers 0..2**32-1, separated by commas, spaces or lines; repeats dropped."""
    seeds: list[int] = []
    problems: list[str] = []
    for token in _SPLIT.split((text or "").strip()):
        if not token:
            continue
        try:
            value = int(token)
        except ValueError:
            problems.append(f"“{token}” is not a whole number.")
            continue
        if not 0 <= value <= MAX_SEED:
            problems.append(
                f"Seed {value} is out of range: seeds run from 0 to {MAX_SEED:,}."
            )
            continue
        if value not in seeds:
            seeds.append(value)
    if len(seeds) > MAX_SEEDS:
        problems.append(f"At most {MAX_SEEDS} seeds per batch ({len(seeds)} given).")
    return tuple(seeds), problems


def parse_sizes(text: str) -> tuple[tuple[Size, ...], list[str]]:
    """Custom sizes "1024x768", "1024×768", separated by commas, semicolons or lines."""
    sizes: list[Size] = []
    problems: list[str] = []
    for token in re.split(r"[,;\n]+", text or ""):
        token = token.strip()
        if not token:
            continue
        match = _SIZE.match(token)
        if not match:
            problems.append(
                f"“{token}” is not a size: write width×height, e.g. 1024x768."
            )
            continue
        size = Size(int(match.group(1)), int(match.group(2)))
        if size not in sizes:
            sizes.append(size)
    return tuple(sizes), problems


def parse_rows(
    text: str, variables: Sequence[str]
) -> tuple[tuple[Row, ...], list[str]]:
    """CSV rows, one variant each. The header (line 1) names the template's variables.

    Comma, semicolon or tab separated (sniffed from the header); quotes as in RFC 4180, so a
    value may hold the separator or a line break. Problems name their line in the file.
    """
    text = (text or "").lstrip("\ufeff")
    if has_nul(text):
        return (), [NUL_MESSAGE.format(what="The CSV")]
    if not text.strip():
        return (), [
            "Paste or upload CSV rows: a header line with the variable names, then one row per variant."
        ]
    header_line = text.splitlines()[0]
    try:
        dialect: Any = csv.Sniffer().sniff(header_line, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    problems: list[str] = []
    try:
        header = [name.strip() for name in next(reader)]
    except (StopIteration, csv.Error) as exc:
        return (), [f"Line 1: the header cannot be read ({exc})."]
    known = list(variables)
    for name in sorted({n for n in header if header.count(n) > 1}):
        problems.append(f"Line 1: the column “{name}” appears twice.")
    for name in header:
        if name and name not in known:
            listed = ", ".join(known) if known else "none"
            problems.append(
                f"Line 1: “{name}” is not a variable of this template (its variables: {listed})."
            )
        elif not name:
            problems.append("Line 1: a column has no name.")
    for name in known:
        if name not in header:
            problems.append(f"Line 1: no column for {{{name}}}.")
    if problems:
        return (), problems

    rows: list[Row] = []
    line = reader.line_num
    while True:
        start = line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"Line {start}: {exc}.")
            break
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            problems.append(
                f"Line {start}: {len(record)} values for {len(header)} columns."
            )
            continue
        values = {name: cell.strip() for name, cell in zip(header, record, strict=True)}
        empty = [name for name, value in values.items() if not value]
        if empty:
            problems.append(
                f"Line {start}: "
                + ", ".join(f"{{{name}}}" for name in empty)
                + (" is empty." if len(empty) == 1 else " are empty.")
            )
            continue
        rows.append(Row(start, values))
    if not rows and not problems:
        problems.append("The CSV has a header but no rows.")
    return tuple(rows), problems


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
    _check_shape(plan, spec, template)
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
            _render_problems(plan, exc, spec, where)
            continue
        if not rendered.can_dispatch:
            _avoided_words(plan, rendered, spec, where)
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


def _check_shape(plan: Plan, spec: BatchSpec, template: TemplateInput) -> None:
    """Variables missing or extra, empty axes, no seeds, targets or sizes."""
    variables = list(template.variables)
    if spec.mode == MATRIX:
        given = [name for name, _ in spec.matrix]
        for name in given:
            if name not in variables:
                plan.error(
                    NON_FIELD,
                    f"“{name}” is not a variable of this template (its variables: "
                    f"{', '.join(variables) or 'none'}).",
                )
        axes = dict(spec.matrix)
        for name in variables:
            if not axes.get(name):
                plan.error(
                    matrix_field(name),
                    f"Give at least one value for {{{name}}}: an empty list makes an empty matrix.",
                )
    elif spec.mode == ROWS:
        if not spec.rows:
            plan.error(
                FIELD_ROWS,
                "Paste or upload at least one row: a header with the variable names, then one line per variant.",
            )
        for row in spec.rows:
            missing = [n for n in variables if n not in row.values]
            extra = [n for n in row.values if n not in variables]
            if missing:
                plan.error(
                    FIELD_ROWS,
                    f"Line {row.line}: no value for "
                    + ", ".join(f"{{{n}}}" for n in missing)
                    + ".",
                )
            if extra:
                plan.error(
                    FIELD_ROWS,
                    f"Line {row.line}: "
                    + ", ".join(f"“{n}”" for n in extra)
                    + " is not a variable of this template.",
                )
    else:
        plan.error(NON_FIELD, f"Unknown mode “{spec.mode}”: choose matrix or rows.")
    seeds = spec.seeds
    if seeds.mode == FIXED:
        if not seeds.values:
            plan.error(FIELD_SEEDS, "Give at least one seed, or choose random seeds.")
        for value in seeds.values:
            if not 0 <= value <= MAX_SEED:
                plan.error(
                    FIELD_SEEDS,
                    f"Seed {value} is out of range: seeds run from 0 to {MAX_SEED:,}.",
                )
    elif not 1 <= seeds.count <= MAX_SEEDS:
        plan.error(FIELD_SEEDS, f"Choose between 1 and {MAX_SEEDS} random seeds.")
    if not spec.targets:
        plan.error(FIELD_TARGETS, "Choose at least one backend and model.")
    if not spec.sizes:
        plan.error(FIELD_SIZES, "Choose at least one size.")
    for size in spec.sizes:
        if size.width <= 0 or size.height <= 0:
            plan.error(FIELD_SIZES, f"{size.text} is not a size.")


def _value_field(spec: BatchSpec, name: str) -> str:
    return FIELD_ROWS if spec.mode == ROWS else matrix_field(name)


def _render_problems(
    plan: Plan, exc: PromptError, spec: BatchSpec, where: str | None
) -> None:
    for problem in exc.problems:
        message = f"{where}: {problem.message}" if where else problem.message
        if problem.code in ("missing_value", "empty_value", "invalid_value"):
            plan.error(_value_field(spec, problem.name), message)
        elif problem.code == "unknown_value":
            plan.error(
                FIELD_ROWS if spec.mode == ROWS else NON_FIELD,
                message,
            )
        elif problem.code in ("missing_reference", "unfilled_reference"):
            plan.error(reference_field(problem.name), problem.message)
        elif problem.code == "unknown_reference":
            plan.error(FIELD_REFERENCES, problem.message)
        else:
            plan.error(FIELD_TEMPLATE, problem.message)


def _avoided_words(
    plan: Plan, rendered: RenderedPrompt, spec: BatchSpec, where: str | None
) -> None:
    """Words to avoid go to the field they came from: a variable's values, or the template."""
    bounds: list[tuple[int, int, str, str]] = []
    offset = 0
    for segment in rendered.segments:
        bounds.append(
            (offset, offset + len(segment.text), segment.origin, segment.name)
        )
        offset += len(segment.text)
    for avoided in rendered.avoided_words:
        variables = {
            name
            for s, e in avoided.spans
            for start, end, origin, name in bounds
            if origin == "variable" and start < e and s < end
        }
        message = f"{where}: {avoided.message}" if where else avoided.message
        if variables:
            for name in sorted(variables):
                plan.error(_value_field(spec, name), message)
        else:
            plan.error(FIELD_TEMPLATE, message)
