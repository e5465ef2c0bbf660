"""Template bodies parsed into placeholders: text tokens, or a JSON tree whose strings hold tokens.

See campaigns/prompting/__init__.py for the syntax. Every error is collected, with its position.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from campaigns.prompting.problems import Problem
from campaigns.prompting.segments import Segment
from studio.input_rules import JSONLimitError, check_json_text, has_nul

TEXT = "text"
JSON = "json"
KINDS = (TEXT, JSON)

# One optional dotted part, for namespaced values such as a catalog product's {product.colour}.
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?"
NAME_RE = re.compile(rf"\A{IDENTIFIER}\Z")

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
# The most JSON text parsed for one structured prompt: above the saved body's own limit
# (prompt_templates.MAX_BODY_CHARS), since stored bodies are pretty-printed.
MAX_JSON_BODY_CHARS = 100_000


def template_variables(body: str, kind: str) -> list[str]:
    """The variables of a body in order of first appearance (best effort on an invalid body)."""
    return list(parse(kind, body).variables)


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


@dataclass(frozen=True)
class Token:
    kind: Literal["text", "var", "ref"]
    value: str  # literal text (braces unescaped), variable name or slot name


@dataclass
class Str:
    tokens: list[Token]
    extra: list[Segment] = field(
        default_factory=list
    )  # brand text appended to this string


@dataclass
class Obj:
    entries: list[tuple[str, Any, bool]]  # (key, node, added by the brand kit)


@dataclass
class Arr:
    items: list[tuple[Any, bool]]  # (node, added by the brand kit)


@dataclass
class Raw:
    value: Any  # number, boolean or null


@dataclass
class BrandValue:
    value: Any  # plain JSON value added by the brand kit
    name: str


@dataclass
class Parsed:
    tokens: list[Token] = field(default_factory=list)  # text kind
    root: Obj | None = None  # json kind
    variables: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse(kind: str, body: str) -> Parsed:
    parsed = Parsed()
    all_tokens: list[Token] = []
    if kind == TEXT:
        parsed.tokens, errors = tokenize(body)
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


def tokenize(source: str) -> tuple[list[Token], list[tuple[str, int, str]]]:
    """Split into literal text, variables and references; errors are (code, offset, message)."""
    tokens: list[Token] = []
    errors: list[tuple[str, int, str]] = []
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            tokens.append(Token("text", "".join(buffer)))
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
                tokens.append(Token("var", inner))
            elif inner.startswith("ref:") and NAME_RE.match(inner[4:]):
                flush()
                tokens.append(Token("ref", inner[4:]))
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


def _build(value: Any, path: str, problems: list[Problem], tokens: list[Token]) -> Any:
    if isinstance(value, dict):
        entries = []
        for key, child in value.items():
            key_tokens, _ = tokenize(key)
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
        return Obj(entries)
    if isinstance(value, list):
        return Arr(
            [
                (_build(child, f"{path}[{i}]", problems, tokens), False)
                for i, child in enumerate(value)
            ]
        )
    if isinstance(value, str):
        string_tokens, errors = tokenize(value)
        for code, offset, message in errors:
            problems.append(
                Problem(code, f"In {path}, character {offset + 1}: {message}")
            )
        tokens.extend(string_tokens)
        return Str(string_tokens)
    return Raw(value)


def _child_path(path: str, key: str) -> str:
    if NAME_RE.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def unknown_ref(ref: str, names: Sequence[str]) -> Problem:
    known = ", ".join(names) if names else "none declared"
    return Problem(
        "unknown_reference",
        f"{{ref:{ref}}} names no reference slot of this template (slots: {known}).",
        ref,
    )
