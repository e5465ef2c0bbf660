"""The side-by-side comparison of 2 to 4 assets: their prompts word by word, and every request
field with the ones that differ marked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from campaigns.textdiff import word_diff
from generation.gallery.queries import card_queryset
from generation.gallery.titles import titled
from generation.models import Asset, Generation
from studio.models import Workspace

COMPARE_MIN, COMPARE_MAX = 2, 4


def readable_prompt(prompt: str) -> str:
    """A JSON prompt pretty-printed (two-space indent); a text prompt as sent."""
    text = prompt.strip()
    if text.startswith("{"):
        try:
            return json.dumps(json.loads(text), ensure_ascii=False, indent=2)
        except ValueError:
            pass
    return prompt


@dataclass(frozen=True)
class CompareRow:
    label: str
    values: list[str]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1

    @property
    def cells(self) -> list[tuple[str, bool]]:
        """(value, differs from the first column) per column."""
        return [(v, i > 0 and v != self.values[0]) for i, v in enumerate(self.values)]


@dataclass(frozen=True)
class Comparison:
    assets: list[Asset]
    prompts: list[list[tuple[str, str]]]
    rows: list[CompareRow]
    scale: float  # CSS pixels per image pixel, the same for every image

    @property
    def columns(self) -> list[dict[str, Any]]:
        """Per image: its letter, and its display size at the common scale."""
        return [
            {
                "asset": a,
                "letter": "ABCD"[i],
                "width": max(1, round(a.width * self.scale)),
                "height": max(1, round(a.height * self.scale)),
                "prompt": self.prompts[i],
            }
            for i, a in enumerate(self.assets)
        ]

    @property
    def letters(self) -> str:
        return "ABCD"[: len(self.assets)]


def compare_assets(*, workspace: Workspace, codes: Sequence[str]) -> Comparison:
    """Load 2–4 assets of the workspace in the order given (missing ones: LookupError)."""
    unique = list(dict.fromkeys(codes))
    found = {
        str(a.code): a
        for a in card_queryset(Asset.objects.filter(workspace=workspace)).filter(
            code__in=unique
        )
    }
    if len(found) != len(unique):
        raise LookupError("Some of these images are not in this workspace.")
    assets = [found[code] for code in unique]
    titled(assets)
    prompts = [readable_prompt(a.generation.prompt) for a in assets]
    diffs = [[("same", prompts[0])]] + [word_diff(prompts[0], p) for p in prompts[1:]]
    gens: list[Generation] = [a.generation for a in assets]
    names: list[str] = []
    for g in gens:
        for name in getattr(g, "variables", None) or {}:
            if name not in names:
                names.append(name)
    rows = [
        CompareRow("Model", [g.model for g in gens]),
        CompareRow("Backend", [g.backend for g in gens]),
        CompareRow("Seed", [_text(g.seed) for g in gens]),
        CompareRow("Size", [f"{g.width}×{g.height}" for g in gens]),
        CompareRow(
            "Template",
            [
                f"{g.template_version.template.name} v{g.template_version.number}"
                if g.template_version
                else "—"
                for g in gens
            ],
        ),
        *[
            CompareRow(
                f"{{{name}}}",
                [_text((getattr(g, "variables", None) or {}).get(name)) for g in gens],
            )
            for name in names
        ],
        CompareRow(
            "References",
            [
                ", ".join(
                    f"{r.get('role', '?')}: {str(r.get('code') or r.get('name') or r.get('file', ''))[:8]}"
                    for r in g.references
                )
                or "—"
                for g in gens
            ],
        ),
        CompareRow(
            "Parameters",
            [json.dumps(g.params, sort_keys=True) if g.params else "—" for g in gens],
        ),
        CompareRow("Status", [a.get_review_status_display() for a in assets]),
        CompareRow("Cost", [f"${a.cost:.4f}" for a in assets]),
    ]
    # Same scale for all: the tallest image 560 px high, and all side by side within ~1200 px.
    tallest = max(a.height for a in assets)
    total_width = sum(a.width for a in assets)
    scale = min(1.0, 560 / tallest, 1200 / total_width)
    return Comparison(assets=assets, prompts=diffs, rows=rows, scale=scale)


def _text(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)
