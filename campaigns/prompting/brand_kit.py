"""The brand kit as rendering sees it, and how its palette and typography join a prompt."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from campaigns.prompting.parsing import Arr, BrandValue, Obj, Str
from campaigns.prompting.segments import Segment

if TYPE_CHECKING:
    from campaigns.models import Brand

HEX_RE = re.compile(r"\A#?([0-9A-Fa-f]{6})\Z")
COLOUR_KEYS = ("colors", "palette", "color_palette", "colours")
TYPOGRAPHY_KEY = "typography"
BRAND_SEPARATOR = "\n\n"
# FLUX.2 follows a handful of colours well; more dilutes each one (BFL prompting guide: 3-5).
PALETTE_ADVICE_MAX = 5


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
                HEX_RE.match(str(colour.get("hex", "")).strip())
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
            words_to_use=clean_words(brand.words_to_use),
            words_to_avoid=clean_words(brand.words_to_avoid),
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


def clean_words(words: Any) -> tuple[str, ...]:
    cleaned = (str(w).strip() for w in (words or []) if str(w).strip())
    return tuple(dict.fromkeys(cleaned))


def new_colours(brand: BrandKit, text: str) -> list[BrandColour]:
    lowered = text.lower()
    return [c for c in brand.palette if c.hex.lower() not in lowered]


def text_brand_clause(brand: BrandKit, text: str) -> list[Segment]:
    parts: list[Segment] = []
    if colours := new_colours(brand, text):
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


def merge_json_brand(
    root: Obj, brand: BrandKit, text: str, warnings: list[str]
) -> bool:
    """Add the brand's colours and typography to the document tree; True when anything changed."""
    changed = False
    keys = {key: index for index, (key, _, _) in enumerate(root.entries)}
    if colours := new_colours(brand, text):
        key = next((k for k in COLOUR_KEYS if k in keys), None)
        if key is None:
            root.entries.append(
                ("colors", BrandValue([c.flux for c in colours], "palette"), True)
            )
            changed = True
        else:
            changed |= _merge_colours(
                root.entries[keys[key]][1], key, colours, warnings
            )
    if typography := brand.typography:
        if TYPOGRAPHY_KEY not in keys:
            root.entries.append(
                (TYPOGRAPHY_KEY, BrandValue(typography, "typography"), True)
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
    if isinstance(node, Arr):
        # A list of {"name", "hex"} objects gets objects; any other list gets "#HEX (Name)" strings.
        as_objects = bool(node.items) and all(
            isinstance(item, Obj) and any(k == "hex" for k, _, _ in item.entries)
            for item, _ in node.items
        )
        for colour in colours:
            value: Any = (
                {"name": colour.name, "hex": colour.hex} if as_objects else colour.flux
            )
            node.items.append((BrandValue(value, "palette"), True))
        return True
    if isinstance(node, Obj):
        taken = {k for k, _, _ in node.entries}
        for colour in colours:
            name = (
                colour.name if colour.name and colour.name not in taken else colour.hex
            )
            if name not in taken:
                node.entries.append((name, BrandValue(colour.hex, "palette"), True))
                taken.add(name)
        return True
    return _merge_text(
        node, key, ", ".join(c.flux for c in colours), "palette", warnings
    )


def _merge_text(node: Any, key: str, text: str, name: str, warnings: list[str]) -> bool:
    if isinstance(node, Str):
        has_content = bool(node.tokens) or bool(node.extra)
        node.extra.append(Segment(("; " if has_content else "") + text, "brand", name))
        return True
    if isinstance(node, Arr):
        node.items.append((BrandValue(text, name), True))
        return True
    if isinstance(node, Obj) and "brand" not in {k for k, _, _ in node.entries}:
        node.entries.append(("brand", BrandValue(text, name), True))
        return True
    warnings.append(
        f"The brand's {name} was not merged: “{key}” holds a value it cannot be added to."
    )
    return False
