"""What the preview backend serves: every studio model, at BFL's size limits, free."""

from __future__ import annotations

from generation.backends.base import (
    ModelSpec,
    ParamRule,
)

BANNER = "PREVIEW — not FLUX.2"
MEGAPIXEL = 1024 * 1024
MAX_MEGAPIXELS = 4 * MEGAPIXEL / 1_000_000  # 4 MP as BFL counts it: 2048×2048
STUDIO_MODELS = (
    "flux-2-pro",
    "flux-2-pro-preview",
    "flux-2-max",
    "flux-2-flex",
    "flux-2-dev",
    "flux-2-klein-4b",
    "flux-2-klein-9b",
    "flux-2-klein-9b-preview",
)
# Every parameter some model takes, with the providers' ranges, so a draft is refused exactly
# where a real backend would refuse the values (the preview itself ignores them).
PARAM_RULES = {
    "safety_tolerance": ParamRule("int", 0, 5),
    "output_format": ParamRule("choice", choices=("jpeg", "png", "webp")),
    "steps": ParamRule("int", 1, 50),
    "guidance": ParamRule("float", 1.5, 10),
    "prompt_upsampling": ParamRule("bool"),
}
MODELS: dict[str, ModelSpec] = {
    model: ModelSpec(
        model=model,
        provider_model=model,
        max_references=8,
        max_megapixels=MAX_MEGAPIXELS,
        min_side=64,
        max_side=4096,
        dimension_step=16,
        params=frozenset(PARAM_RULES),
        param_rules=PARAM_RULES,
    )
    for model in STUDIO_MODELS
}
