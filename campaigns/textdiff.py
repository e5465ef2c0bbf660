"""Text diffs the studio shows: line by line, and word by word within a changed line.

Template versions are compared line by line (a unified diff, campaigns/prompt_templates.py), and
a changed line also carries its word-level changes, so a one-word edit in a one-line prompt shows
that word, not the whole line removed and added. The compare page diffs whole prompts word by
word (generation/gallery/queries.py). Pure: no database.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

# Words (and runs of punctuation) with the spaces after them, so a changed phrase reads as one
# deletion and one insertion instead of word/space/word fragments.
_TOKEN = re.compile(r"\w+\s*|[^\w\s]+\s*|\s+")
# Within one line: words, single punctuation marks and runs of spaces, each a token of its own.
_FINE_TOKEN = re.compile(r"\w+|[^\w\s]|\s+")
# Two lines sharing less than this (SequenceMatcher ratio over their words) are not one line
# edited but one replaced by another: marking words would mark nearly all of it.
SIMILAR_LINES = 0.4

# (changed, text): a run of one side of a changed line; a side's runs join back to its line.
Part = tuple[bool, str]


def word_diff(base: str, other: str) -> list[tuple[str, str]]:
    """`other` against `base`, word by word: ("same" | "add" | "del", text) runs."""
    a, b = _TOKEN.findall(base), _TOKEN.findall(other)
    out: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(("same", "".join(b[j1:j2])))
            continue
        if op in ("delete", "replace") and "".join(a[i1:i2]).strip():
            out.append(("del", "".join(a[i1:i2])))
        if op in ("insert", "replace"):
            out.append(("add", "".join(b[j1:j2])))
    return out


def word_changes(
    old: str, new: str
) -> tuple[tuple[Part, ...], tuple[Part, ...]] | None:
    """The old and the new line cut into (changed, text) runs; None when they share too little.

    Words, single punctuation marks and spaces are compared apart, so "{surface}" becoming
    "{surface}, golden hour" marks ", golden hour" alone; a space between two changed words
    joins them into one mark.
    """
    a, b = _FINE_TOKEN.findall(old), _FINE_TOKEN.findall(new)
    words = difflib.SequenceMatcher(
        a=[t for t in a if not t.isspace()],
        b=[t for t in b if not t.isspace()],
        autojunk=False,
    )
    if words.ratio() < SIMILAR_LINES:
        return None
    before: list[Part] = []
    after: list[Part] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        before.append((op != "equal", "".join(a[i1:i2])))
        after.append((op != "equal", "".join(b[j1:j2])))
    return _tidy(before), _tidy(after)


def _tidy(parts: list[Part]) -> tuple[Part, ...]:
    """Drop empty runs, fold a space between two changes into them, join neighbours alike."""
    parts = [part for part in parts if part[1]]
    for i in range(1, len(parts) - 1):
        changed, text = parts[i]
        if not changed and text.isspace() and parts[i - 1][0] and parts[i + 1][0]:
            parts[i] = (True, text)
    out: list[Part] = []
    for changed, text in parts:
        if out and out[-1][0] == changed:
            out[-1] = (changed, out[-1][1] + text)
        else:
            out.append((changed, text))
    return tuple(out)


@dataclass(frozen=True)
class DiffLine:
    kind: Literal["hunk", "add", "del", "context"]
    text: str
    old_line: int | None = None
    new_line: int | None = None
    # For a changed line paired with its counterpart: its text as (changed, text) runs.
    parts: tuple[Part, ...] = ()

    @property
    def marker(self) -> str:
        return {"add": "+", "del": "-", "context": " ", "hunk": ""}[self.kind]


def unified_lines(a: list[str], b: list[str], context: int) -> list[DiffLine]:
    """A unified diff of two lists of lines (difflib), with word-level changes on changed lines.

    In a block where lines were replaced, the n-th removed line is paired with the n-th added one
    (the usual case: the same line, edited); pairs that share too few words get no word marks.
    """
    out: list[DiffLine] = []
    for group in difflib.SequenceMatcher(
        None, a, b, autojunk=False
    ).get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        out.append(
            DiffLine(
                "hunk",
                f"@@ {_range(first[1], last[2])} {_range(first[3], last[4], '+')} @@",
            )
        )
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [
                    DiffLine("context", a[i], i + 1, j1 + i - i1 + 1)
                    for i in range(i1, i2)
                ]
                continue
            pairs: dict[int, tuple[tuple[Part, ...], tuple[Part, ...]]] = {}
            if tag == "replace":
                for k in range(min(i2 - i1, j2 - j1)):
                    if changes := word_changes(a[i1 + k], b[j1 + k]):
                        pairs[k] = changes
            if tag in ("replace", "delete"):
                out += [
                    DiffLine("del", a[i], old_line=i + 1, parts=_side(pairs, i - i1, 0))
                    for i in range(i1, i2)
                ]
            if tag in ("replace", "insert"):
                out += [
                    DiffLine("add", b[j], new_line=j + 1, parts=_side(pairs, j - j1, 1))
                    for j in range(j1, j2)
                ]
    return out


def _side(
    pairs: dict[int, tuple[tuple[Part, ...], tuple[Part, ...]]], k: int, side: int
) -> tuple[Part, ...]:
    return pairs[k][side] if k in pairs else ()


def _range(start: int, stop: int, sign: str = "-") -> str:
    # The unified diff header convention: "-3,4" (from line 3, 4 lines); an empty range is "-2,0".
    length = stop - start
    first = start + 1 if length else start
    return f"{sign}{first}" if length == 1 else f"{sign}{first},{length}"
