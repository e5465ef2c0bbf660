"""A JSON prompt tree written out as canonical JSON text, in origin-tagged segments."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from campaigns.prompting.parsing import Arr, BrandValue, Obj, Str, Token
from campaigns.prompting.segments import Segment


def emit(
    node: Any, resolve: Callable[[Sequence[Token]], list[Segment]], brand: bool = False
) -> list[Segment]:
    """Canonical JSON (json.dumps(..., ensure_ascii=False)) as origin-tagged segments."""
    out: list[Segment] = []

    def put(text: str, added: bool, name: str = "") -> None:
        out.append(Segment(text, "brand", name) if added else Segment(text, "template"))

    def walk(node: Any, added: bool) -> None:
        if isinstance(node, BrandValue):
            put(_dumps(node.value), True, node.name)
        elif isinstance(node, Obj):
            put("{", added)
            for index, (key, child, child_added) in enumerate(node.entries):
                inner = added or child_added
                put(
                    (", " if index else "") + _dumps(key) + ": ",
                    inner,
                    child.name if isinstance(child, BrandValue) else "",
                )
                walk(child, inner)
            put("}", added)
        elif isinstance(node, Arr):
            put("[", added)
            for index, (child, child_added) in enumerate(node.items):
                inner = added or child_added
                if index:
                    put(
                        ", ", inner, child.name if isinstance(child, BrandValue) else ""
                    )
                walk(child, inner)
            put("]", added)
        elif isinstance(node, Str):
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
