"""Export presets: the sizes a pack renders each asset to.

A brand's presets are the channel formats it picked (campaigns/channels.py) plus sizes of its
own (BrandExportProfile). A brand with no export settings gets the issue's defaults below. On the
command line a preset is named by its key, by a short alias ("square", "story", "16x9") or by a
plain size ("1600x500").
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from django.utils.text import slugify

from campaigns.channels import CHANNELS_BY_KEY
from campaigns.models import Brand

# Square feed, portrait feed, story, landscape/link, 16:9 (the web hero), email header.
DEFAULT_CHANNEL_KEYS = (
    "instagram-square",
    "instagram-portrait",
    "instagram-story",
    "facebook-feed",
    "web-hero",
    "email-header",
)
ALIASES = {
    "square": "instagram-square",
    "feed": "instagram-square",
    "portrait": "instagram-portrait",
    "story": "instagram-story",
    "stories": "instagram-story",
    "reels": "instagram-story",
    "landscape": "facebook-feed",
    "link": "facebook-feed",
    "16x9": "web-hero",
    "16:9": "web-hero",
    "widescreen": "web-hero",
    "hero": "web-hero",
    "email": "email-header",
}
MAX_SIDE = 8192
_SIZE = re.compile(r"^\s*(\d{2,5})\s*[x×*]\s*(\d{2,5})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    width: int
    height: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preset:
        return cls(
            str(data["key"]),
            str(data["label"]),
            int(data["width"]),
            int(data["height"]),
        )


def channel_preset(key: str) -> Preset:
    channel = CHANNELS_BY_KEY[key]
    return Preset(channel.key, channel.label, channel.width, channel.height)


def parse_size(text: str) -> tuple[int, int] | None:
    match = _SIZE.match(text)
    if not match:
        return None
    width, height = int(match[1]), int(match[2])
    if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE):
        return None
    return width, height


def custom_preset(data: dict[str, Any]) -> Preset:
    return Preset(
        slugify(str(data["key"])),
        str(data.get("label") or data["key"]),
        int(data["width"]),
        int(data["height"]),
    )


def brand_presets(brand: Brand | None) -> list[Preset]:
    """The brand's presets in order: its channel formats, then its own sizes."""
    profile = _profile(brand)
    if profile is None:
        keys = [
            k for k in (brand.default_formats if brand else []) if k in CHANNELS_BY_KEY
        ]
        # A kit's default formats come first, then the defaults it lacks.
        keys += [k for k in DEFAULT_CHANNEL_KEYS if k not in keys]
        return [channel_preset(k) for k in keys]
    custom = [custom_preset(p) for p in profile.custom_presets]
    overridden = {p.key for p in custom}
    presets = [
        channel_preset(k)
        for k in profile.channel_keys
        if k in CHANNELS_BY_KEY and k not in overridden
    ]
    return presets + custom


def resolve_presets(brand: Brand | None, names: list[str]) -> list[Preset]:
    """Presets named on the command line or in the form; ValueError names the unknown one."""
    if not names:
        return brand_presets(brand)
    own = {p.key: p for p in brand_presets(brand)}
    chosen: dict[str, Preset] = {}
    for raw in names:
        name = raw.strip().lower()
        preset = own.get(name) or own.get(ALIASES.get(name, ""))
        if preset is None and ALIASES.get(name, name) in CHANNELS_BY_KEY:
            preset = channel_preset(ALIASES.get(name, name))
        if preset is None and (size := parse_size(name)):
            preset = Preset(f"{size[0]}x{size[1]}", f"{size[0]}×{size[1]}", *size)
        if preset is None:
            known = ", ".join(sorted({*own, *CHANNELS_BY_KEY}))
            raise ValueError(
                f"Unknown preset {raw!r}: use one of {known}, an alias "
                f"({', '.join(sorted(ALIASES))}) or a size like 1600x500."
            )
        chosen.setdefault(preset.key, preset)
    return list(chosen.values())


def _profile(brand: Brand | None) -> Any:
    if brand is None or brand.pk is None:
        return None
    from exports.models import BrandExportProfile

    return BrandExportProfile.objects.filter(brand=brand).first()


def embeds_prompt(brand: Brand | None) -> bool:
    profile = _profile(brand)
    return True if profile is None else profile.embed_prompt
