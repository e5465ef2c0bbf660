"""The models a ComfyUI server serves and the workflow graphs the studio queues: loading the shipped
(or the operator's) API-format JSON and filling in prompt, size, seed, references and parameters
(docs/providers.md §5)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from generation.backends.base import (
    BackendError,
    ErrorClass,
    ModelSpec,
    ParamRule,
)

ENV_URL = "COMFYUI_URL"  # the setting named in "not configured" errors
WORKFLOW_DIR = Path(__file__).resolve().parent / "workflows"
UPLOAD_SUBFOLDER = "flux-studio"
MEGAPIXEL = 1024 * 1024
MAX_RESULT_BYTES = 128 * 1024 * 1024
SEED_LIMIT = 2**53  # exact in JSON numbers everywhere

# Step and guidance ranges are ours (docs/providers.md gives only defaults: 20 steps, guidance 4);
# they keep a self-hosted GPU from being tied up by a typo.
_DEV_RULES = {"steps": ParamRule("int", 1, 100), "guidance": ParamRule("float", 0, 100)}
_KLEIN_RULES = {"steps": ParamRule("int", 1, 50)}


def _spec(
    model: str, workflow: str, max_references: int, rules: Mapping[str, ParamRule]
) -> ModelSpec:
    return ModelSpec(
        model=model,
        provider_model=workflow,  # the workflow file that serves it
        max_references=max_references,
        max_megapixels=4 * MEGAPIXEL / 1_000_000,  # FLUX.2's 4 MP output limit
        min_side=64,
        max_side=4096,
        dimension_step=16,  # EmptyFlux2LatentImage step
        params=frozenset(rules),
        param_rules=rules,
    )


MODELS: dict[str, ModelSpec] = {
    spec.model: spec
    for spec in (
        # "BFL recommends <= 6 for [dev]" (docs/providers.md §0 and 1.8).
        _spec("flux-2-dev", "flux2_dev.json", 6, _DEV_RULES),
        # Community workflow (docs/providers.md §5.3, unconfirmed); BFL's [klein] limit of 4 references.
        _spec("flux-2-klein-9b", "flux2_klein.json", 4, _KLEIN_RULES),
    )
}


# --- The workflow graph -------------------------------------------------------------------------


class WorkflowError(BackendError):
    """A workflow file does not have the nodes the backend fills in."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorClass.INVALID_REQUEST, message, retryable=False)


def load_workflow(name: str, directory: Path | None = None) -> dict[str, Any]:
    """A workflow from `directory` when it has one by that name, else the shipped one."""
    path = (
        (directory / name)
        if directory is not None and (directory / name).is_file()
        else WORKFLOW_DIR / name
    )
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WorkflowError(f"cannot read the ComfyUI workflow {path}: {exc}") from exc
    if not isinstance(graph, dict) or not all(
        isinstance(n, dict) and "class_type" in n for n in graph.values()
    ):
        raise WorkflowError(f"{path} is not an API-format ComfyUI graph.")
    return graph


def _only(graph: Mapping[str, Any], *class_types: str) -> str:
    found = [
        node_id
        for node_id, node in graph.items()
        if node.get("class_type") in class_types
    ]
    if len(found) != 1:
        raise WorkflowError(
            f"the workflow needs exactly one {' or '.join(class_types)} node (found {len(found)})."
        )
    return found[0]


def _next_id(graph: Mapping[str, Any]) -> int:
    return max((int(k) for k in graph if k.isdigit()), default=0) + 1


def build_graph(
    template: Mapping[str, Any],
    *,
    prompt: str,
    seed: int,
    width: int,
    height: int,
    steps: int | None = None,
    guidance: float | None = None,
    reference_images: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The graph to queue: the template with the request filled in and one reference chain per image.

    `reference_images` are LoadImage values (uploaded names, "subfolder/name").
    """
    graph = copy.deepcopy(dict(template))
    graph[_only(graph, "CLIPTextEncode")]["inputs"]["text"] = prompt
    graph[_only(graph, "RandomNoise")]["inputs"]["noise_seed"] = seed
    latent = graph[_only(graph, "EmptyFlux2LatentImage")]["inputs"]
    latent.update(width=width, height=height, batch_size=1)
    scheduler = graph[_only(graph, "Flux2Scheduler")]["inputs"]
    # The scheduler's shift depends on the size: it must get the latent's.
    scheduler.update(width=width, height=height)
    if steps is not None:
        scheduler["steps"] = steps
    if guidance is not None:
        graph[_only(graph, "FluxGuidance")]["inputs"]["guidance"] = guidance
    vae = _only(graph, "VAELoader")
    _only(graph, "SaveImage")
    guider_id = _only(graph, "BasicGuider", "CFGGuider")
    guider = graph[guider_id]["inputs"]
    slot = (
        "conditioning"
        if graph[guider_id]["class_type"] == "BasicGuider"
        else "positive"
    )
    conditioning = guider[slot]
    next_id = _next_id(graph)
    for index, image in enumerate(reference_images, start=1):
        load, scale, encode, reference = (str(next_id + k) for k in range(4))
        next_id += 4
        graph[load] = {
            "class_type": "LoadImage",
            "inputs": {"image": image},
            "_meta": {"title": f"Reference {index}"},
        }
        graph[scale] = {
            "class_type": "ImageScaleToTotalPixels",
            "inputs": {
                "upscale_method": "lanczos",
                "megapixels": 1,
                "image": [load, 0],
            },
        }
        graph[encode] = {
            "class_type": "VAEEncode",
            "inputs": {"pixels": [scale, 0], "vae": [vae, 0]},
        }
        graph[reference] = {
            "class_type": "ReferenceLatent",
            "inputs": {"conditioning": conditioning, "latent": [encode, 0]},
        }
        conditioning = [reference, 0]
    guider[slot] = conditioning
    return graph


def graph_seed(graph: Any) -> int | None:
    """The RandomNoise seed of a queued graph (as history returns it)."""
    if not isinstance(graph, dict):
        return None
    for node in graph.values():
        if isinstance(node, dict) and node.get("class_type") == "RandomNoise":
            seed = (node.get("inputs") or {}).get("noise_seed")
            return (
                seed if isinstance(seed, int) and not isinstance(seed, bool) else None
            )
    return None
