"""Words to use and avoid: found in the final text, whole word and case-insensitive."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from campaigns.prompting.segments import Segment

if TYPE_CHECKING:
    from campaigns.prompting.brand_kit import BrandKit

_JSON_ESCAPE_RE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|.)")


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


def _word_re(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def check_words(
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
