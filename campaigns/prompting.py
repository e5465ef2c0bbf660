"""Prompt templates rendered into the exact prompt sent to FLUX.2. Pure: no database, clock or I/O.

`render_prompt()` is the one function that turns a template version, variable values, the
template's reference slots and a brand kit into the prompt text a backend sends. The same inputs
always give the same output, byte for byte, so a batch can render every variant up front and the
gallery can show "the exact request sent".

Placeholder syntax (both kinds)
- `{name}`      a variable; ASCII letters, digits and `_`, not starting with a digit.
- `{ref:slot}`  the reference image filling slot `slot`, written "image N": N is the 1-based
                position of the slot among the slots that have an image, in the order the
                template declares them (all slots when `filled_slots` is None). FLUX.2 points at
                references by index ("the jacket from image 2"). `RenderedPrompt.reference_order`
                is the order the images must be sent in.
- `{{` and `}}` literal braces. Any other brace is an error, reported with its position.
Values are inserted as written: braces inside a value are not interpreted.

Kinds
- `text`: the body is prose. The output is the body with placeholders replaced.
- `json`: a structured prompt. The body must be a JSON object (duplicate keys are an error).
  Placeholders work in any string value, not in keys. The output is canonical JSON text:
  `json.dumps(document, ensure_ascii=False)` with keys in authored order (one line, default
  separators), so `text == json.dumps(json.loads(text), ensure_ascii=False)` always holds.
  Top-level keys outside `KNOWN_JSON_KEYS` give a warning, not an error: FLUX.2 reads any JSON.

Brand kit, merged visibly (`merge_brand=False` leaves it out of the text; `brand=None` skips it all)
- text: a separate clause is appended after a blank line:
  "Brand palette: #1A1A2E (Midnight), #FF6B6B (Coral). Typography: <hints>; fonts: Inter (headlines)."
- json: colours are merged into the first of `colors`, `palette`, `color_palette`, `colours`
  (appended to a list, added to an object as name -> hex, appended to a string), or a new `colors`
  list is added; typography goes into `typography` (new key, or appended/added to an existing one).
- Colours are written the FLUX.2 way, "#RRGGBB (Name)", in palette order. A colour whose hex is
  already in the prompt is not repeated. Every added character is a `brand` segment.
- Tone of voice is copywriting guidance and is not added to image prompts.

Words to avoid: FLUX.2 has no negative prompts, and writing "no cheap look" tends to draw the very
thing named. So nothing is appended; instead every avoided word or phrase found in the final text
(whole word, case-insensitive) is reported in `RenderedPrompt.avoided_words`. Rendering still
succeeds (the preview shows the word highlighted), but `can_dispatch` is False and
`ensure_dispatchable()` raises `PromptError`: a batch must refuse to send such a prompt.
Words to use that do not appear are listed in `unused_words` (a hint only).

Errors: everything wrong with a render is collected into one `PromptError` whose `problems` name
each missing or empty value, each unknown (extra) value, each unbalanced brace or malformed
placeholder, invalid JSON with line and column, and each unknown or unfilled reference slot.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from studio.input_rules import JSONLimitError, check_json_text, has_nul

if TYPE_CHECKING:
    from campaigns.models import Brand

TEXT = "text"
JSON = "json"
KINDS = (TEXT, JSON)

# One optional dotted part, for namespaced values such as a catalog product's {product.colour}.
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?"
NAME_RE = re.compile(rf"\A{IDENTIFIER}\Z")
_HEX_RE = re.compile(r"\A#?([0-9A-Fa-f]{6})\Z")

# The structured-prompt vocabulary of BFL's prompting guide, plus what marketing templates use.
KNOWN_JSON_KEYS = frozenset(
    {
        "scene",
        "subjects",
        "style",
        "colors",
        "palette",
        "color_palette",
        "colours",
        "lighting",
        "mood",
        "background",
        "composition",
        "camera",
        "technical",
        "text_elements",
        "text",
        "typography",
        "layout",
        "effects",
        "details",
    }
)
COLOUR_KEYS = ("colors", "palette", "color_palette", "colours")
TYPOGRAPHY_KEY = "typography"
BRAND_SEPARATOR = "\n\n"
# The most JSON text parsed for one structured prompt: above the saved body's own limit
# (prompt_templates.MAX_BODY_CHARS), since stored bodies are pretty-printed.
MAX_JSON_BODY_CHARS = 100_000
# FLUX.2 follows a handful of colours well; more dilutes each one (BFL prompting guide: 3-5).
PALETTE_ADVICE_MAX = 5

Origin = Literal["template", "variable", "reference", "brand"]


# --- Public data types -------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A run of the final text and where it came from; the segments concatenate to the text."""

    text: str
    origin: Origin
    # The variable or slot name for variable/reference segments; "palette"/"typography" for brand.
    name: str = ""


@dataclass(frozen=True)
class Problem:
    code: str  # missing_value, empty_value, invalid_value, unknown_value, unbalanced_brace, ...
    message: str
    name: str = ""  # the variable, slot or word concerned, when there is one

    def __str__(self) -> str:
        return self.message


class PromptError(ValueError):
    """Everything that keeps a template from rendering (or a prompt from being sent), at once."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(" ".join(p.message for p in self.problems))

    @property
    def messages(self) -> list[str]:
        return [p.message for p in self.problems]


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
class BrandColour:
    hex: str  # "#RRGGBB", upper case
    name: str = ""

    @property
    def flux(self) -> str:
        """The FLUX.2 way of naming a colour: the hex code with its name."""
        return f"{self.hex} ({self.name})" if self.name else self.hex


@dataclass(frozen=True)
class BrandFont:
    family: str
    usage: str = ""


@dataclass(frozen=True)
class BrandKit:
    """What of a brand kit rendering needs, detached from the database."""

    name: str = ""
    palette: tuple[BrandColour, ...] = ()
    fonts: tuple[BrandFont, ...] = ()
    typography_hints: str = ""
    words_to_use: tuple[str, ...] = ()
    words_to_avoid: tuple[str, ...] = ()

    @classmethod
    def from_brand(cls, brand: Brand) -> BrandKit:
        palette = []
        for colour in brand.palette or []:
            match = (
                _HEX_RE.match(str(colour.get("hex", "")).strip())
                if isinstance(colour, Mapping)
                else None
            )
            if match:
                palette.append(
                    BrandColour(
                        hex="#" + match.group(1).upper(),
                        name=str(colour.get("name", "")).strip(),
                    )
                )
        fonts = [
            BrandFont(
                family=str(f["family"]).strip(), usage=str(f.get("usage", "")).strip()
            )
            for f in brand.fonts or []
            if isinstance(f, Mapping) and str(f.get("family", "")).strip()
        ]
        return cls(
            name=brand.name,
            palette=tuple(palette),
            fonts=tuple(fonts),
            typography_hints=(brand.typography_hints or "").strip(),
            words_to_use=_clean_words(brand.words_to_use),
            words_to_avoid=_clean_words(brand.words_to_avoid),
        )

    @property
    def typography(self) -> str:
        """ "<hints>; fonts: Inter (headlines), Lora (body)", or "" when the kit says nothing."""
        parts = []
        if hints := self.typography_hints.strip().rstrip("."):
            parts.append(hints)
        if self.fonts:
            parts.append(
                "fonts: "
                + ", ".join(
                    f"{f.family} ({f.usage})" if f.usage else f.family
                    for f in self.fonts
                )
            )
        return "; ".join(parts)


@dataclass(frozen=True)
class AvoidedWord:
    word: str  # as the brand kit lists it
    found: tuple[
        str, ...
    ]  # where it appears: "the template text", "the value of {surface}", ...
    spans: tuple[tuple[int, int], ...]  # [start, end) offsets in RenderedPrompt.text

    @property
    def message(self) -> str:
        return f"“{self.word}” is on the brand's words to avoid and appears in {_join(self.found)}."


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


# --- Public functions --------------------------------------------------------------------------


def template_variables(body: str, kind: str) -> list[str]:
    """The variables of a body in order of first appearance (best effort on an invalid body)."""
    return list(_parse(kind, body).variables)


def check_template(
    *,
    kind: str,
    body: str,
    reference_slots: Sequence[ReferenceSlot | Mapping[str, Any] | str] = (),
) -> TemplateCheck:
    """Validate a template body on its own (no values). Raises PromptError."""
    parsed = _parse(kind, body)
    slots = [ReferenceSlot.coerce(s) for s in reference_slots]
    names = [s.name for s in slots]
    problems = list(parsed.problems)
    for ref in parsed.references:
        if ref not in names:
            problems.append(_unknown_ref(ref, names))
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
    parsed = _parse(kind, body)
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
            problems.append(_unknown_ref(ref, names))
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

    def resolve(tokens: Sequence[_Token]) -> list[Segment]:
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
            segments += _text_brand_clause(brand, "".join(s.text for s in segments))
    else:
        segments = _emit(parsed.root, resolve)
        if (
            brand is not None
            and merge_brand
            and _merge_json_brand(
                parsed.root, brand, "".join(s.text for s in segments), warnings
            )
        ):
            segments = _emit(parsed.root, resolve)
    for name in filled:
        if name not in parsed.references:
            warnings.append(
                f"Image {numbers[name]} (slot “{name}”) is never mentioned in the prompt."
            )
    if brand is not None and merge_brand and len(brand.palette) > PALETTE_ADVICE_MAX:
        warnings.append(
            f"The brand palette has {len(brand.palette)} colours; FLUX.2 follows 3–5 colours best."
        )

    merged = _coalesce(segments)
    text = "".join(s.text for s in merged)
    avoided, unused = _check_words(
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


def placeholder_parts(body: str) -> list[tuple[str, str]]:
    """Split a stored body for display: ("text" | "var" | "ref", text). Lenient, never raises.

    Works on both kinds' stored text because pretty-printed JSON never puts two braces side by side.
    """
    parts: list[tuple[str, str]] = []
    last = 0
    for match in _DISPLAY_RE.finditer(body):
        if match.group(0) in ("{{", "}}"):
            continue
        if match.start() > last:
            parts.append(("text", body[last : match.start()]))
        parts.append(("ref" if match.group(1) else "var", match.group(0)))
        last = match.end()
    if last < len(body):
        parts.append(("text", body[last:]))
    return parts


_DISPLAY_RE = re.compile(rf"\{{\{{|\}}\}}|\{{(ref:)?{IDENTIFIER}\}}")


# --- Parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: Literal["text", "var", "ref"]
    value: str  # literal text (braces unescaped), variable name or slot name


@dataclass
class _Str:
    tokens: list[_Token]
    extra: list[Segment] = field(
        default_factory=list
    )  # brand text appended to this string


@dataclass
class _Obj:
    entries: list[tuple[str, Any, bool]]  # (key, node, added by the brand kit)


@dataclass
class _Arr:
    items: list[tuple[Any, bool]]  # (node, added by the brand kit)


@dataclass
class _Raw:
    value: Any  # number, boolean or null


@dataclass
class _Brand:
    value: Any  # plain JSON value added by the brand kit
    name: str


@dataclass
class _Parsed:
    tokens: list[_Token] = field(default_factory=list)  # text kind
    root: _Obj | None = None  # json kind
    variables: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _parse(kind: str, body: str) -> _Parsed:
    parsed = _Parsed()
    all_tokens: list[_Token] = []
    if kind == TEXT:
        parsed.tokens, errors = _tokenize(body)
        all_tokens = parsed.tokens
        for code, offset, message in errors:
            line, column = _line_column(body, offset)
            parsed.problems.append(
                Problem(code, f"Line {line}, column {column}: {message}")
            )
        if not body.strip():
            parsed.problems.append(Problem("empty_body", "The prompt is empty."))
    elif kind == JSON:
        document = _load_json(body, parsed.problems)
        if document is not None:
            parsed.root = _build(document, "", parsed.problems, all_tokens)
            unknown = [key for key in document if key not in KNOWN_JSON_KEYS]
            if unknown:
                parsed.warnings.append(
                    "Unusual top-level key"
                    + ("s " if len(unknown) > 1 else " ")
                    + ", ".join(f"“{k}”" for k in unknown)
                    + ": FLUX.2 reads any JSON, but the usual keys are scene, subjects, style, colors, lighting, "
                    "composition, camera, text_elements and typography."
                )
    else:
        parsed.problems.append(
            Problem(
                "invalid_kind", f"Unknown prompt kind “{kind}”: use “text” or “json”."
            )
        )
    parsed.variables = tuple(
        dict.fromkeys(t.value for t in all_tokens if t.kind == "var")
    )
    parsed.references = tuple(
        dict.fromkeys(t.value for t in all_tokens if t.kind == "ref")
    )
    return parsed


def _tokenize(source: str) -> tuple[list[_Token], list[tuple[str, int, str]]]:
    """Split into literal text, variables and references; errors are (code, offset, message)."""
    tokens: list[_Token] = []
    errors: list[tuple[str, int, str]] = []
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            tokens.append(_Token("text", "".join(buffer)))
            buffer.clear()

    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "{":
            if source.startswith("{{", i):
                buffer.append("{")
                i += 2
                continue
            close = _next_brace(source, i + 1)
            if close == -1 or source[close] == "{":
                errors.append(
                    (
                        "unbalanced_brace",
                        i,
                        "“{” is never closed (write {{ for a literal brace).",
                    )
                )
                buffer.append("{")
                i += 1
                continue
            inner = source[i + 1 : close]
            if NAME_RE.match(inner):
                flush()
                tokens.append(_Token("var", inner))
            elif inner.startswith("ref:") and NAME_RE.match(inner[4:]):
                flush()
                tokens.append(_Token("ref", inner[4:]))
            else:
                shown = inner if len(inner) <= 30 else inner[:27] + "..."
                errors.append(
                    (
                        "invalid_placeholder",
                        i,
                        f"“{{{shown}}}” is not a placeholder: use {{name}} (letters, digits, _; {{product.name}}), "
                        "{ref:slot}, or {{ and }} for literal braces.",
                    )
                )
            i = close + 1
        elif char == "}":
            if source.startswith("}}", i):
                buffer.append("}")
                i += 2
                continue
            errors.append(
                (
                    "unbalanced_brace",
                    i,
                    "“}” has no matching “{” (write }} for a literal brace).",
                )
            )
            buffer.append("}")
            i += 1
        else:
            buffer.append(char)
            i += 1
    flush()
    return tokens, errors


def _next_brace(source: str, start: int) -> int:
    positions = [
        p for p in (source.find("{", start), source.find("}", start)) if p != -1
    ]
    return min(positions) if positions else -1


def _line_column(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def _load_json(body: str, problems: list[Problem]) -> dict[str, Any] | None:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    def finite(text: str) -> float:
        number = float(text)
        if not math.isfinite(number):
            raise ValueError(f"the number {text} is too large")
        return number

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        # Size and depth first (studio/input_rules.py): 1,000 nested "[" would otherwise
        # exhaust the recursion limit inside json.loads.
        check_json_text(body, max_chars=MAX_JSON_BODY_CHARS)
    except JSONLimitError as exc:
        problems.append(
            Problem(
                "invalid_json",
                f"The JSON is refused at line {exc.lineno}, column {exc.colno}: "
                f"{exc.reason}.",
            )
        )
        return None
    try:
        document = json.loads(
            body,
            object_pairs_hook=pairs,
            parse_float=finite,
            parse_constant=no_constants,
        )
    except json.JSONDecodeError as exc:
        problems.append(
            Problem(
                "invalid_json",
                f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.",
            )
        )
        return None
    except ValueError as exc:
        problems.append(Problem("invalid_json", f"Invalid JSON: {exc}."))
        return None
    for key in dict.fromkeys(duplicates):
        problems.append(
            Problem(
                "duplicate_key", f"Key “{key}” appears twice in the same object.", key
            )
        )
    if not isinstance(document, dict):
        problems.append(
            Problem(
                "not_an_object",
                "A structured prompt must be a JSON object: { ... } at the top level.",
            )
        )
        return None
    if has_nul(document):
        problems.append(
            Problem(
                "invalid_json",
                "The JSON contains a NUL character (\\u0000), which is not allowed.",
            )
        )
        return None
    return document


def _build(value: Any, path: str, problems: list[Problem], tokens: list[_Token]) -> Any:
    if isinstance(value, dict):
        entries = []
        for key, child in value.items():
            key_tokens, _ = _tokenize(key)
            if any(t.kind != "text" for t in key_tokens):
                problems.append(
                    Problem(
                        "placeholder_in_key",
                        f"Key “{key}”: placeholders work in string values, not in keys.",
                    )
                )
            entries.append(
                (key, _build(child, _child_path(path, key), problems, tokens), False)
            )
        return _Obj(entries)
    if isinstance(value, list):
        return _Arr(
            [
                (_build(child, f"{path}[{i}]", problems, tokens), False)
                for i, child in enumerate(value)
            ]
        )
    if isinstance(value, str):
        string_tokens, errors = _tokenize(value)
        for code, offset, message in errors:
            problems.append(
                Problem(code, f"In {path}, character {offset + 1}: {message}")
            )
        tokens.extend(string_tokens)
        return _Str(string_tokens)
    return _Raw(value)


def _child_path(path: str, key: str) -> str:
    if NAME_RE.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _unknown_ref(ref: str, names: Sequence[str]) -> Problem:
    known = ", ".join(names) if names else "none declared"
    return Problem(
        "unknown_reference",
        f"{{ref:{ref}}} names no reference slot of this template (slots: {known}).",
        ref,
    )


# --- Emitting ----------------------------------------------------------------------------------


def _emit(
    node: Any, resolve: Callable[[Sequence[_Token]], list[Segment]], brand: bool = False
) -> list[Segment]:
    """Canonical JSON (json.dumps(..., ensure_ascii=False)) as origin-tagged segments."""
    out: list[Segment] = []

    def put(text: str, added: bool, name: str = "") -> None:
        out.append(Segment(text, "brand", name) if added else Segment(text, "template"))

    def walk(node: Any, added: bool) -> None:
        if isinstance(node, _Brand):
            put(_dumps(node.value), True, node.name)
        elif isinstance(node, _Obj):
            put("{", added)
            for index, (key, child, child_added) in enumerate(node.entries):
                inner = added or child_added
                put(
                    (", " if index else "") + _dumps(key) + ": ",
                    inner,
                    child.name if isinstance(child, _Brand) else "",
                )
                walk(child, inner)
            put("}", added)
        elif isinstance(node, _Arr):
            put("[", added)
            for index, (child, child_added) in enumerate(node.items):
                inner = added or child_added
                if index:
                    put(", ", inner, child.name if isinstance(child, _Brand) else "")
                walk(child, inner)
            put("]", added)
        elif isinstance(node, _Str):
            put('"', added)
            for segment in [*resolve(node.tokens), *node.extra]:
                # Escaping is per character, so escaping each piece equals escaping the whole.
                escaped = _dumps(segment.text)[1:-1]
                out.append(
                    Segment(escaped, "brand", segment.name)
                    if added
                    else Segment(escaped, segment.origin, segment.name)
                )
            put('"', added)
        else:
            put(_dumps(node.value), added)

    walk(node, brand)
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _coalesce(segments: Iterable[Segment]) -> tuple[Segment, ...]:
    merged: list[Segment] = []
    for segment in segments:
        if not segment.text:
            continue
        if merged and (merged[-1].origin, merged[-1].name) == (
            segment.origin,
            segment.name,
        ):
            merged[-1] = Segment(
                merged[-1].text + segment.text, segment.origin, segment.name
            )
        else:
            merged.append(segment)
    return tuple(merged)


# --- Brand kit ---------------------------------------------------------------------------------


def _new_colours(brand: BrandKit, text: str) -> list[BrandColour]:
    lowered = text.lower()
    return [c for c in brand.palette if c.hex.lower() not in lowered]


def _text_brand_clause(brand: BrandKit, text: str) -> list[Segment]:
    parts: list[Segment] = []
    if colours := _new_colours(brand, text):
        parts.append(
            Segment(
                "Brand palette: " + ", ".join(c.flux for c in colours) + ".",
                "brand",
                "palette",
            )
        )
    if typography := brand.typography:
        parts.append(
            Segment(("Typography: " + typography + "."), "brand", "typography")
        )
    if not parts:
        return []
    clause = [Segment(BRAND_SEPARATOR, "brand")]
    for index, part in enumerate(parts):
        if index:
            clause.append(Segment(" ", "brand"))
        clause.append(part)
    return clause


def _merge_json_brand(
    root: _Obj, brand: BrandKit, text: str, warnings: list[str]
) -> bool:
    """Add the brand's colours and typography to the document tree; True when anything changed."""
    changed = False
    keys = {key: index for index, (key, _, _) in enumerate(root.entries)}
    if colours := _new_colours(brand, text):
        key = next((k for k in COLOUR_KEYS if k in keys), None)
        if key is None:
            root.entries.append(
                ("colors", _Brand([c.flux for c in colours], "palette"), True)
            )
            changed = True
        else:
            changed |= _merge_colours(
                root.entries[keys[key]][1], key, colours, warnings
            )
    if typography := brand.typography:
        if TYPOGRAPHY_KEY not in keys:
            root.entries.append(
                (TYPOGRAPHY_KEY, _Brand(typography, "typography"), True)
            )
            changed = True
        else:
            changed |= _merge_text(
                root.entries[keys[TYPOGRAPHY_KEY]][1],
                TYPOGRAPHY_KEY,
                typography,
                "typography",
                warnings,
            )
    return changed


def _merge_colours(
    node: Any, key: str, colours: list[BrandColour], warnings: list[str]
) -> bool:
    if isinstance(node, _Arr):
        # A list of {"name", "hex"} objects gets objects; any other list gets "#HEX (Name)" strings.
        as_objects = bool(node.items) and all(
            isinstance(item, _Obj) and any(k == "hex" for k, _, _ in item.entries)
            for item, _ in node.items
        )
        for colour in colours:
            value: Any = (
                {"name": colour.name, "hex": colour.hex} if as_objects else colour.flux
            )
            node.items.append((_Brand(value, "palette"), True))
        return True
    if isinstance(node, _Obj):
        taken = {k for k, _, _ in node.entries}
        for colour in colours:
            name = (
                colour.name if colour.name and colour.name not in taken else colour.hex
            )
            if name not in taken:
                node.entries.append((name, _Brand(colour.hex, "palette"), True))
                taken.add(name)
        return True
    return _merge_text(
        node, key, ", ".join(c.flux for c in colours), "palette", warnings
    )


def _merge_text(node: Any, key: str, text: str, name: str, warnings: list[str]) -> bool:
    if isinstance(node, _Str):
        has_content = bool(node.tokens) or bool(node.extra)
        node.extra.append(Segment(("; " if has_content else "") + text, "brand", name))
        return True
    if isinstance(node, _Arr):
        node.items.append((_Brand(text, name), True))
        return True
    if isinstance(node, _Obj) and "brand" not in {k for k, _, _ in node.entries}:
        node.entries.append(("brand", _Brand(text, name), True))
        return True
    warnings.append(
        f"The brand's {name} was not merged: “{key}” holds a value it cannot be added to."
    )
    return False


# --- Words to use and avoid --------------------------------------------------------------------

_JSON_ESCAPE_RE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|.)")


def _clean_words(words: Any) -> tuple[str, ...]:
    cleaned = (str(w).strip() for w in (words or []) if str(w).strip())
    return tuple(dict.fromkeys(cleaned))


def _word_re(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def _check_words(
    text: str, segments: Sequence[Segment], brand: BrandKit | None, *, json_text: bool
) -> tuple[tuple[AvoidedWord, ...], tuple[str, ...]]:
    if brand is None:
        return (), ()
    # In JSON text, "\ncheap" must still count as the word "cheap": blank out escape sequences
    # with spaces of the same length so offsets keep matching the real text.
    haystack = (
        _JSON_ESCAPE_RE.sub(lambda m: " " * len(m.group(0)), text)
        if json_text
        else text
    )
    bounds = []
    offset = 0
    for segment in segments:
        bounds.append((offset, offset + len(segment.text), segment))
        offset += len(segment.text)
    avoided = []
    for word in brand.words_to_avoid:
        spans = tuple(m.span() for m in _word_re(word).finditer(haystack))
        if spans:
            found = dict.fromkeys(
                _describe(seg)
                for s, e in spans
                for start, end, seg in bounds
                if start < e and s < end
            )
            avoided.append(AvoidedWord(word=word, found=tuple(found), spans=spans))
    unused = tuple(
        word for word in brand.words_to_use if not _word_re(word).search(haystack)
    )
    return tuple(avoided), unused


def _describe(segment: Segment) -> str:
    if segment.origin == "variable":
        return f"the value of {{{segment.name}}}"
    if segment.origin == "brand":
        return "the brand additions"
    if segment.origin == "reference":
        return "a reference"
    return "the template text"


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
