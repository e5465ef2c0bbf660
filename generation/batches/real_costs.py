"""What a batch of free preview drafts would cost on each real backend.

The offline preview backend charges nothing, so an estimate made only of drafts is a wall of
$0.00. This prices the same planned variants (model, size, references) with each real backend's
own price table (`Backend.estimate_cost`: BFL §1, fal §2, Replicate §3 (unconfirmed),
Cloudflare §4 of docs/providers.md); no backend needs to be configured to be priced, and
nothing is sent. Pure: no database or network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from generation.backends.base import (
    Backend,
    BackendError,
    GenerationRequest,
    ReferenceInput,
    RuleViolation,
)
from generation.batches.plan import PlannedVariant, fit_size

# The backends a batch of drafts is priced on, in the builder's order; self-hosted ones
# (ComfyUI, local diffusers) have no price per image and are said to run on your own hardware.
PRICED_BACKENDS = ("bfl", "fal", "replicate", "cloudflare")
SELF_HOSTED_BACKENDS = ("comfyui", "diffusers")


@dataclass
class BackendCost:
    backend: str
    label: str
    # Variants this backend could make, and their estimated total (USD).
    count: int = 0
    total: Decimal = Decimal(0)
    # Models of the batch it does not serve (display labels), and variants its rules refuse.
    unserved: list[str] = field(default_factory=list)
    refused: int = 0

    @property
    def complete(self) -> bool:
        return not self.unserved and not self.refused


def real_backend_costs(
    *,
    variants: Sequence[PlannedVariant],
    backends: Mapping[str, Backend],
    references: Callable[[PlannedVariant], tuple[ReferenceInput, ...]],
    model_labels: Mapping[str, str],
) -> list[BackendCost]:
    """Each backend's estimate for `variants`, made on it with the same model, size (fitted to its
    rules, as the batch would be), seed, prompt and references."""
    costs = []
    for name, backend in backends.items():
        cost = BackendCost(name, backend.label)
        models = backend.capabilities().models
        for variant in variants:
            spec = models.get(variant.target.model)
            if spec is None:
                label = model_labels.get(variant.target.model, variant.target.model)
                if label not in cost.unserved:
                    cost.unserved.append(label)
                continue
            width, height = (
                fit_size(variant.size.width, variant.size.height, spec)
                if variant.size.is_preset
                else (variant.size.width, variant.size.height)
            )
            request = GenerationRequest(
                model=variant.target.model,
                prompt=variant.prompt,
                width=width,
                height=height,
                seed=variant.seed,
                references=references(variant),
                params={k: v for k, v in variant.params.items() if k in spec.params},
            )
            try:
                backend.validate(request)
                price = backend.estimate_cost(request)
            except (RuleViolation, BackendError):
                cost.refused += 1
                continue
            cost.count += 1
            cost.total += price
        costs.append(cost)
    return costs
