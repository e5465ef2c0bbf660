"""Where planning problems go: each to the builder field that caused it (generation/batches/plan.py).

A batch's shape (missing values, no seeds, targets or sizes), a template that does not render,
and words the brand avoids are all collected under the FIELD_* names of spec.py, so the builder
shows every problem at once, next to what to fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from campaigns.prompting import PromptError, RenderedPrompt
from generation.batches.spec import (
    FIELD_REFERENCES,
    FIELD_ROWS,
    FIELD_SEEDS,
    FIELD_SIZES,
    FIELD_TARGETS,
    FIELD_TEMPLATE,
    FIXED,
    MATRIX,
    MAX_SEED,
    MAX_SEEDS,
    NON_FIELD,
    ROWS,
    BatchSpec,
    matrix_field,
    reference_field,
)

if TYPE_CHECKING:
    from generation.batches.plan import Plan, TemplateInput


def check_shape(plan: Plan, spec: BatchSpec, template: TemplateInput) -> None:
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


def render_problems(
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


def avoided_words(
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
