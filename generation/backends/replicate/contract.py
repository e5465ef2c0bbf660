"""What Replicate documents for Black Forest Labs' FLUX.2 models (docs/providers.md §3): hosts,
models and their inputs, size rules, parameter rules and the prices the estimates use."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from generation.backends.base import (
    MEGAPIXEL,
    GenerationRequest,
    MegapixelPrice,
    ModelSpec,
    ParamRule,
    RuleViolation,
)

ENV_API_KEY = "REPLICATE_API_TOKEN"  # the setting named in "not configured" errors
DEFAULT_BASE_URL = "https://api.replicate.com"
OWNER = "black-forest-labs"
API_HOSTS: tuple[str, ...] = ("api.replicate.com",)
# ".x" matches x itself and its subdomains: replicate.delivery, pbxt.replicate.delivery...
DELIVERY_HOSTS: tuple[str, ...] = (".replicate.delivery",)
# Seconds between webhook-timestamp and our clock: standardwebhooks' own (fixed) tolerance.
WEBHOOK_TOLERANCE = 300

# "max image 2048×2048", in ModelSpec's 10^6-pixel units.
MAX_MEGAPIXELS = 4 * MEGAPIXEL / 1_000_000
# klein: (width, height) -> the inputs that produce exactly that size (see the module docstring).
KLEIN_SIZES: dict[tuple[int, int], dict[str, Any]] = {
    (1024, 1024): {"aspect_ratio": "1:1"}
}
MODERATION_WORDS = (
    "nsfw",
    "safety",
    "moderat",
    "content policy",
    "flagged",
    "sensitive",
)


Price = MegapixelPrice  # USD


@dataclass(frozen=True)
class ReplicateModel:
    spec: ModelSpec
    name: str  # black-forest-labs/<name>
    images_field: str  # "input_images" or "images"
    custom_size: bool  # aspect_ratio "custom" + width/height; else KLEIN_SIZES only
    price: Price


_FORMATS = ParamRule("choice", choices=("jpeg", "png", "webp"))
_PRO_RULES = {"safety_tolerance": ParamRule("int", 1, 5), "output_format": _FORMATS}
_FLEX_RULES = {
    **_PRO_RULES,
    "steps": ParamRule("int", 1, 50),
    "guidance": ParamRule("float", 1.5, 10),
    "prompt_upsampling": ParamRule("bool"),
}
_OPEN_RULES = {"output_format": _FORMATS}


def _model(
    model: str,
    refs: int,
    step: int,
    rules: Mapping[str, ParamRule],
    price: tuple[str, str, str],
    *,
    max_side: int = 2048,
    images_field: str = "input_images",
    custom_size: bool = True,
) -> ReplicateModel:
    spec = ModelSpec(
        model=model,
        provider_model=f"{OWNER}/{model}",
        max_references=refs,
        max_megapixels=MAX_MEGAPIXELS,
        min_side=256 if custom_size else 1024,
        max_side=max_side if custom_size else 1024,
        dimension_step=step,
        params=frozenset(rules),
        param_rules=rules,
    )
    return ReplicateModel(
        spec, model, images_field, custom_size, Price(*(Decimal(p) for p in price))
    )


# docs/providers.md §3.1 (models), 3.3 (inputs, limits); prices per the module docstring.
MODELS: dict[str, ReplicateModel] = {
    m.spec.model: m
    for m in (
        _model("flux-2-pro", 8, 32, _PRO_RULES, ("0.03", "0.015", "0.015")),
        _model("flux-2-max", 8, 16, _PRO_RULES, ("0.07", "0.03", "0.03")),
        _model("flux-2-flex", 10, 32, _FLEX_RULES, ("0.05", "0.05", "0.05")),
        _model(
            "flux-2-dev", 4, 32, _OPEN_RULES, ("0.012", "0.012", "0.012"), max_side=1440
        ),
        _model(
            "flux-2-klein-4b",
            5,
            16,
            _OPEN_RULES,
            ("0.014", "0.001", "0.001"),
            images_field="images",
            custom_size=False,
        ),
        _model(
            "flux-2-klein-9b",
            5,
            16,
            _OPEN_RULES,
            ("0.015", "0.002", "0.002"),
            images_field="images",
            custom_size=False,
        ),
    )
}


def base_url_of(value: str) -> str:
    """The API root without a trailing "/v1" (both spellings are seen in configuration)."""
    value = (value or DEFAULT_BASE_URL).strip().rstrip("/")
    return value[: -len("/v1")] if value.endswith("/v1") else value


def _nearest(value: int, step: int, low: int, high: int) -> str:
    below, above = value // step * step, -(-value // step) * step
    options = [str(v) for v in dict.fromkeys((below, above)) if low <= v <= high]
    return " or ".join(options) or "another size"


def size_problem(
    model: ReplicateModel, width: int, height: int
) -> RuleViolation | None:
    """Why Replicate would not produce exactly `width`×`height` (None when it would)."""
    spec = model.spec
    if not model.custom_size:
        if (width, height) in KLEIN_SIZES:
            return None
        sizes = ", ".join(f"{w}×{h}" for w, h in KLEIN_SIZES)
        return RuleViolation(
            "dimensions",
            f"{spec.model} on Replicate takes an aspect ratio and a megapixel count, not pixels, "
            f"and rounds them its own way; the only size it is known to produce exactly is {sizes}, "
            f"so {width}×{height} is refused. Use another backend for this size.",
            details={"sizes": sorted(KLEIN_SIZES)},
        )
    for side_name, side in (("width", width), ("height", height)):
        if not spec.min_side <= side <= spec.max_side:
            return RuleViolation(
                "dimensions",
                f"{side_name} {side} is outside {spec.min_side}–{spec.max_side} px for "
                f"{spec.model} on Replicate.",
            )
        if side % spec.dimension_step:
            nearest = _nearest(side, spec.dimension_step, spec.min_side, spec.max_side)
            return RuleViolation(
                "dimension_step",
                f"{side_name} {side} is not a multiple of {spec.dimension_step}: Replicate would "
                f"round it and the image would not have the requested size, so it is refused "
                f"({spec.model}; use {nearest}).",
                details={"step": spec.dimension_step},
            )
    return None


def data_uri(content: bytes, content_type: str) -> str:
    encoded = base64.b64encode(content).decode("ascii")
    return f"data:{content_type or 'application/octet-stream'};base64,{encoded}"


def estimate(model: ReplicateModel, request: GenerationRequest) -> Decimal:
    inputs = ((ref.width, ref.height) for ref in request.references)
    return model.price.cost((request.width, request.height), inputs)
