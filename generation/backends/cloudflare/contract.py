"""What Cloudflare Workers AI documents for FLUX.2 (docs/providers.md §4): hosts, the hosted and
proxied models with their rules, and the prices (per 512×512 tile, or per megapixel)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from generation.backends.base import (
    MEGAPIXEL,
    MegapixelPrice,
    ModelSpec,
    ParamRule,
)
from generation.backends.bfl import PROVIDER_HOSTS

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
ENV_TOKEN = "CLOUDFLARE_API_TOKEN"
ENV_ACCOUNT = "CLOUDFLARE_ACCOUNT_ID"


MIN_SIDE = 256  # docs/providers.md §4.2: width/height 256–1920
MAX_SIDE = 1920
MAX_REFERENCES = 4  # input_image_0 … input_image_3
REFERENCE_MAX_SIDE = 512  # "512×512 each"
TILE = 512
DEV_DEFAULT_STEPS = 25  # the documented curl example and cost example
MAX_RESULT_BYTES = 64 * 1024 * 1024

# Hosts a proxied model's result URL may point at (BFL delivery, docs/providers.md §1.1), besides the
# configured base URL's host and any "allowed_hosts".
PROXIED_RESULT_HOSTS: tuple[str, ...] = PROVIDER_HOSTS

# Cloudflare documents no ranges for [dev]; these are BFL's FLUX.2 ranges (docs/providers.md §1.4).
_DEV_RULES = {
    "steps": ParamRule("int", 1, 50),
    "guidance": ParamRule("float", 1.5, 10),
}
# docs/providers.md §4.4: "parameters mirror BFL" (safety_tolerance 0–5, output_format jpeg/png/webp,
# guidance 1.5–10); steps and prompt_upsampling are [flex]'s own (docs/providers.md §1.4).
_PROXIED_COMMON_RULES = {
    "safety_tolerance": ParamRule("int", 0, 5),
    "output_format": ParamRule("choice", choices=("jpeg", "png", "webp")),
}
_PROXIED_FLEX_RULES = {
    **_PROXIED_COMMON_RULES,
    "steps": ParamRule("int", 1, 50),
    "guidance": ParamRule("float", 1.5, 10),
    "prompt_upsampling": ParamRule("bool"),
}


def _hosted(
    model: str, provider_model: str, rules: Mapping[str, ParamRule]
) -> ModelSpec:
    return ModelSpec(
        model=model,
        provider_model=provider_model,
        max_references=MAX_REFERENCES,
        # The per-side limit is the only limit.
        max_megapixels=MAX_SIDE * MAX_SIDE / 1_000_000,
        min_side=MIN_SIDE,
        max_side=MAX_SIDE,
        dimension_step=16,
        params=frozenset(rules),
        param_rules=rules,
    )


def _proxied(model: str, rules: Mapping[str, ParamRule]) -> ModelSpec:
    # BFL's own limits (docs/providers.md §1.8): min 64, multiples of 16, 4 MP of 1024×1024 px.
    return ModelSpec(
        model=model,
        provider_model=f"black-forest-labs/{model}",
        max_references=0,
        max_megapixels=4 * MEGAPIXEL / 1_000_000,
        min_side=64,
        max_side=4096,
        dimension_step=16,
        params=frozenset(rules),
        param_rules=rules,
    )


MODELS: dict[str, ModelSpec] = {
    spec.model: spec
    for spec in (
        _hosted("flux-2-dev", "@cf/black-forest-labs/flux-2-dev", _DEV_RULES),
        _hosted("flux-2-klein-4b", "@cf/black-forest-labs/flux-2-klein-4b", {}),
        _hosted("flux-2-klein-9b", "@cf/black-forest-labs/flux-2-klein-9b", {}),
        _proxied("flux-2-flex", _PROXIED_FLEX_RULES),
        _proxied("flux-2-pro-preview", _PROXIED_COMMON_RULES),
    )
}


def is_proxied(spec: ModelSpec) -> bool:
    return not spec.provider_model.startswith("@cf/")


# --- Pricing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TilePrice:
    """USD per 512×512 tile, input and output; `per_step` multiplies both by the step count."""

    input: Decimal
    output: Decimal
    per_step: bool


PRICES: dict[str, TilePrice | MegapixelPrice] = {
    "flux-2-dev": TilePrice(Decimal("0.00021"), Decimal("0.00041"), per_step=True),
    "flux-2-klein-4b": TilePrice(
        Decimal("0.000059"), Decimal("0.000287"), per_step=False
    ),
    # Not in docs/providers.md: Cloudflare's pricing page (stored copy, 2026-08); see the module docstring.
    "flux-2-klein-9b": MegapixelPrice(
        Decimal("0.015"), Decimal("0.002"), Decimal("0.002")
    ),
    # "Pricing only in the dashboard" (docs/providers.md §4.4): BFL's list prices (docs/providers.md §1.12).
    "flux-2-flex": MegapixelPrice(Decimal("0.05"), Decimal("0.05"), Decimal("0.05")),
    "flux-2-pro-preview": MegapixelPrice(
        Decimal("0.03"), Decimal("0.015"), Decimal("0.015")
    ),
}


def tiles(width: int, height: int) -> int:
    """512×512 tiles covering width×height, partial tiles counted whole."""
    return math.ceil(width / TILE) * math.ceil(height / TILE)


def fitted_size(
    width: int, height: int, limit: int = REFERENCE_MAX_SIDE
) -> tuple[int, int]:
    """The size a reference is sent at: unchanged when it fits `limit`×`limit`, else scaled down."""
    if width <= limit and height <= limit:
        return width, height
    scale = limit / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))
