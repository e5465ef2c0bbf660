"""Validating a template and rendering it, with values, references and a brand kit, into a prompt."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from campaigns.prompting.brand_kit import (
    PALETTE_ADVICE_MAX,
    BrandKit,
    merge_json_brand,
    text_brand_clause,
)
from campaigns.prompting.emitting import emit
from campaigns.prompting.parsing import JSON, Token, parse, unknown_ref
from campaigns.prompting.problems import Problem, PromptError
from campaigns.prompting.segments import Origin, Segment, coalesce
from campaigns.prompting.words import AvoidedWord, check_words


@dataclass(frozen=True)
class ReferenceSlot:
    name: str
    role: str = ""
    required: bool = True

    @classmethod
    def coerce(cls, slot: ReferenceSlot | Mapping[str, Any] | str) -> ReferenceSlot:
        """Accept the stored JSON shape ({"name", "role", "required"}), a bare name, or a slot."""
        if isinstance(slot, ReferenceSlot):
            return slot
        if isinstance(slot, str):
            return cls(name=slot)
        return cls(
            name=str(slot.get("name", "")),
            role=str(slot.get("role", "")),
            required=bool(slot.get("required", True)),
        )


@dataclass(frozen=True)
class DisplayPart:
    text: str
    origin: Origin
    name: str
    avoided: bool


@dataclass(frozen=True)
class TemplateCheck:
    """What a valid template declares: its variables and the slots it mentions, in order."""

    variables: tuple[str, ...]
    references: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class RenderedPrompt:
    kind: str
    text: str  # exactly what is sent to the model
    segments: tuple[Segment, ...]
    variables: tuple[str, ...]
    # Slot names in the order their images are sent; `{ref:x}` reads "image <index + 1>".
    reference_order: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    avoided_words: tuple[AvoidedWord, ...] = ()
    unused_words: tuple[str, ...] = ()

    @property
    def can_dispatch(self) -> bool:
        return not self.avoided_words

    @property
    def brand_added(self) -> bool:
        return any(s.origin == "brand" for s in self.segments)

    @property
    def dispatch_problems(self) -> tuple[Problem, ...]:
        return tuple(
            Problem("avoided_word", a.message, a.word) for a in self.avoided_words
        )

    def ensure_dispatchable(self) -> None:
        """Raise PromptError when the prompt must not be sent (it contains a word to avoid)."""
        if self.avoided_words:
            raise PromptError(self.dispatch_problems)

    def display_parts(self) -> tuple[DisplayPart, ...]:
        """The segments, further cut where an avoided word starts or ends, for highlighting."""
        spans = sorted(span for a in self.avoided_words for span in a.spans)
        parts: list[DisplayPart] = []
        offset = 0
        for segment in self.segments:
            start, end = offset, offset + len(segment.text)
            cuts = sorted(
                {start, end, *(p for s in spans for p in s if start < p < end)}
            )
            for a, b in zip(cuts, cuts[1:], strict=False):
                avoided = any(s <= a and b <= e for s, e in spans)
                parts.append(
                    DisplayPart(self.text[a:b], segment.origin, segment.name, avoided)
                )
            offset = end
        return tuple(parts)


def check_template(
    *,
    kind: str,
    body: str,
    reference_slots: Sequence[ReferenceSlot | Mapping[str, Any] | str] = (),
) -> TemplateCheck:
    """Validate a template body on its own (no values). Raises PromptError."""
    parsed = parse(kind, body)
    slots = [ReferenceSlot.coerce(s) for s in reference_slots]
    names = [s.name for s in slots]
    problems = list(parsed.problems)
    for ref in parsed.references:
        if ref not in names:
            problems.append(unknown_ref(ref, names))
    if problems:
        raise PromptError(problems)
    warnings = list(parsed.warnings)
    for slot in slots:
        if slot.name not in parsed.references:
            warnings.append(
                f"Reference slot “{slot.name}” is never mentioned: write {{ref:{slot.name}}} where it belongs."
            )
    return TemplateCheck(
        variables=parsed.variables,
        references=parsed.references,
        warnings=tuple(warnings),
    )


def render_prompt(
    *,
    kind: str,
    body: str,
    values: Mapping[str, str],
    brand: BrandKit | None = None,
    reference_slots: Sequence[ReferenceSlot | Mapping[str, Any] | str] = (),
    filled_slots: Collection[str] | None = None,
    merge_brand: bool = True,
) -> RenderedPrompt:
    """Render a template into the exact prompt text for the model. Raises PromptError.

    `reference_slots` are the template's declared slots in order; `filled_slots` names those that
    have an image in this request (None: all of them). With a `brand`, its words are always
    checked; `merge_brand=False` leaves its palette and typography out of the text.
    Deterministic: same inputs, same bytes.
    """
    parsed = parse(kind, body)
    problems = list(parsed.problems)

    # Values: every variable needs a non-blank text value, and nothing else may be given.
    for name in parsed.variables:
        if name not in values:
            problems.append(
                Problem("missing_value", f"Missing value for {{{name}}}.", name)
            )
        elif not isinstance(values[name], str):
            problems.append(
                Problem(
                    "invalid_value", f"The value for {{{name}}} must be text.", name
                )
            )
        elif not values[name].strip():
            problems.append(
                Problem("empty_value", f"The value for {{{name}}} is empty.", name)
            )
    # Without a readable JSON document its variables are unknown: don't call every value extra.
    unknown = (
        set()
        if kind == JSON and parsed.root is None
        else set(values) - set(parsed.variables)
    )
    for name in sorted(unknown):
        problems.append(
            Problem(
                "unknown_value",
                f"Unknown variable “{name}”: the template has no {{{name}}}.",
                name,
            )
        )

    # References: number the filled slots in declared order.
    slots = [ReferenceSlot.coerce(s) for s in reference_slots]
    names = [s.name for s in slots]
    filled = (
        names if filled_slots is None else [n for n in names if n in set(filled_slots)]
    )
    if filled_slots is not None:
        for name in sorted(set(filled_slots) - set(names)):
            problems.append(
                Problem(
                    "unknown_reference",
                    f"An image was given for “{name}”, which is not a slot of this template.",
                    name,
                )
            )
        for slot in slots:
            if slot.required and slot.name not in filled:
                problems.append(
                    Problem(
                        "missing_reference",
                        f"Reference slot “{slot.name}” is required but has no image.",
                        slot.name,
                    )
                )
    for ref in parsed.references:
        if ref not in names:
            problems.append(unknown_ref(ref, names))
        elif ref not in filled:
            problems.append(
                Problem(
                    "unfilled_reference",
                    f"The prompt mentions {{ref:{ref}}}, but slot “{ref}” has no image.",
                    ref,
                )
            )
    if problems:
        raise PromptError(problems)

    numbers = {name: index for index, name in enumerate(filled, start=1)}

    def resolve(tokens: Sequence[Token]) -> list[Segment]:
        out = []
        for token in tokens:
            if token.kind == "text":
                out.append(Segment(token.value, "template"))
            elif token.kind == "var":
                out.append(Segment(values[token.value], "variable", token.value))
            else:
                out.append(
                    Segment(f"image {numbers[token.value]}", "reference", token.value)
                )
        return out

    warnings = list(parsed.warnings)
    if parsed.root is None:
        segments = resolve(parsed.tokens)
        if brand is not None and merge_brand:
            segments += text_brand_clause(brand, "".join(s.text for s in segments))
    else:
        segments = emit(parsed.root, resolve)
        if (
            brand is not None
            and merge_brand
            and merge_json_brand(
                parsed.root, brand, "".join(s.text for s in segments), warnings
            )
        ):
            segments = emit(parsed.root, resolve)
    for name in filled:
        if name not in parsed.references:
            warnings.append(
                f"Image {numbers[name]} (slot “{name}”) is never mentioned in the prompt."
            )
    if brand is not None and merge_brand and len(brand.palette) > PALETTE_ADVICE_MAX:
        warnings.append(
            f"The brand palette has {len(brand.palette)} colours; FLUX.2 follows 3–5 colours best."
        )

    merged = coalesce(segments)
    text = "".join(s.text for s in merged)
    avoided, unused = check_words(
        text, merged, brand, json_text=parsed.root is not None
    )
    return RenderedPrompt(
        kind=kind,
        text=text,
        segments=merged,
        variables=parsed.variables,
        reference_order=tuple(filled),
        warnings=tuple(warnings),
        avoided_words=avoided,
        unused_words=unused,
    )
