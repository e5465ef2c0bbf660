"""Rules every piece of user input obeys, in one place (docs/security.md).

- NUL characters: PostgreSQL text and jsonb cannot hold U+0000 (a query with one fails with a
  500) and SQLite stores it silently, so every text and every JSON document is refused with a form
  error when it holds one: `refuse_nul` / `has_nul`.
- JSON documents typed or uploaded by users (template bodies, parameters): at most
  MAX_JSON_DEPTH levels of nesting and a size cap, checked on the raw text before `json.loads`
  runs, so that 100,000 "[" cannot exhaust the recursion limit and a deep object never reaches
  SQLite's own 1,000-level JSON limit (an IntegrityError). Refusals name the line and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import ValidationError

NUL = "\x00"
NUL_MESSAGE = "{what} contains a NUL character (\\0), which is not allowed."
# Nesting levels of any JSON document a user sends; real prompts and parameters use 3 to 5.
MAX_JSON_DEPTH = 32


def has_nul(value: Any) -> bool:
    """Whether `value` (a string, or any JSON-like structure of them) holds a NUL character."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(item) for item in value)
    return False


def refuse_nul(value: Any, what: str = "This value") -> None:
    """The shared NUL rule: raise a ValidationError naming `what` when `value` holds a NUL."""
    if has_nul(value):
        raise ValidationError(NUL_MESSAGE.format(what=what), code="nul_character")


def refuse_nul_in(values: Iterable[Any], what: str = "This value") -> None:
    for value in values:
        refuse_nul(value, what)


class JSONLimitError(ValueError):
    """A JSON text over the size or depth limit; `lineno`/`colno` locate it (1-based)."""

    def __init__(self, reason: str, *, lineno: int, colno: int) -> None:
        super().__init__(f"line {lineno}, column {colno}: {reason}")
        self.reason, self.lineno, self.colno = reason, lineno, colno


def _position(text: str, index: int) -> tuple[int, int]:
    lineno = text.count("\n", 0, index) + 1
    return lineno, index - (text.rfind("\n", 0, index) + 1) + 1


def check_json_text(
    text: str, *, max_chars: int, max_depth: int = MAX_JSON_DEPTH
) -> None:
    """Refuse a JSON text longer than `max_chars` or nested deeper than `max_depth`.

    One pass over the characters, strings skipped (a "[" inside a string is text), so the check
    costs no recursion and stops at the first level too deep.
    """
    if len(text) > max_chars:
        lineno, colno = _position(text, max_chars)
        raise JSONLimitError(
            f"the JSON is {len(text):,} characters long; the limit is {max_chars:,}",
            lineno=lineno,
            colno=colno,
        )
    depth, in_string, escaped = 0, False, False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                lineno, colno = _position(text, index)
                raise JSONLimitError(
                    f"nested more than {max_depth} levels deep",
                    lineno=lineno,
                    colno=colno,
                )
        elif char in "]}":
            depth = max(0, depth - 1)


def loads_limited(
    text: str,
    *,
    max_chars: int,
    max_depth: int = MAX_JSON_DEPTH,
    what: str = "The JSON",
    loads: Callable[[str], Any] = json.loads,
) -> Any:
    """json.loads behind the size, depth and NUL rules; every refusal is a ValidationError
    whose message names the line (and column) and the reason."""
    try:
        check_json_text(text, max_chars=max_chars, max_depth=max_depth)
    except JSONLimitError as exc:
        raise ValidationError(
            f"{what}: refused at line {exc.lineno}, column {exc.colno}: {exc.reason}.",
            code="json_limit",
        ) from exc
    try:
        value = loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.",
            code="invalid_json",
        ) from exc
    except RecursionError as exc:  # defence in depth: the depth check runs first
        raise ValidationError(
            f"{what} is nested too deeply.", code="json_limit"
        ) from exc
    refuse_nul(value, what)
    return value
