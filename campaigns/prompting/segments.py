"""Runs of a rendered prompt, each tagged with where it came from (the preview colours by it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Origin = Literal["template", "variable", "reference", "brand"]


@dataclass(frozen=True)
class Segment:
    """A run of the final text and where it came from; the segments concatenate to the text."""

    text: str
    origin: Origin
    # The variable or slot name for variable/reference segments; "palette"/"typography" for brand.
    name: str = ""


def coalesce(segments: Iterable[Segment]) -> tuple[Segment, ...]:
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
