"""What fal's queue API documents (docs/providers.md §2): its hosts, the FLUX.2 endpoints and
their inputs, parameter rules, prices, and the shape of its queue URLs."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote, unquote_to_bytes, urlsplit, urlunsplit

from generation.backends.base import (
    MEGAPIXEL,
    BackendError,
    ErrorClass,
    GenerationRequest,
    MegapixelPrice,
    ModelSpec,
    ParamRule,
)

ENV_API_KEY = "FAL_KEY"  # the setting named in "not configured" errors
DEFAULT_BASE_URL = "https://queue.fal.run"
# Hosts fal answers from (queue) and delivers results from (docs/providers.md §2.3, 2.5).
API_HOSTS: tuple[str, ...] = (".fal.run",)
DELIVERY_HOSTS: tuple[str, ...] = (".fal.media",)
# Webhook signing keys (docs/providers.md §2.7; the exact host is unconfirmed, rest.fal.ai is also seen).
JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
JWKS_HOSTS: tuple[str, ...] = (".fal.ai",)
JWKS_TTL = 24 * 3600.0

# "4 MP", i.e. 2048×2048, in ModelSpec's 10^6-pixel units.
MAX_MEGAPIXELS = 4 * MEGAPIXEL / 1_000_000
MODERATION_TYPES = frozenset({"content_policy_violation"})
MODERATION_WORDS = (
    "nsfw",
    "content policy",
    "content_policy",
    "moderat",
    "safety checker",
)


Price = MegapixelPrice  # USD


@dataclass(frozen=True)
class FalModel:
    spec: ModelSpec
    endpoint: str  # text-to-image; "<endpoint>/edit" takes references
    # Which fields exist: "bfl" (pro/max, zero-config), "flex", "dev" or "klein".
    family: str
    price: Price


# Studio parameter -> fal field (docs/providers.md §2.4).
FIELD_NAMES = {
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "prompt_upsampling": "enable_prompt_expansion",
    "safety_tolerance": "safety_tolerance",
    "output_format": "output_format",
}
# fal takes safety_tolerance "1"…"5" (a string); BFL's 0 does not exist there.
_SAFETY = ParamRule("int", 1, 5)
_BFL_RULES = {
    "safety_tolerance": _SAFETY,
    "output_format": ParamRule("choice", choices=("jpeg", "png")),
}
_FLEX_RULES = {
    **_BFL_RULES,
    "steps": ParamRule("int", 2, 50),
    "guidance": ParamRule("float", 1.5, 10),
    "prompt_upsampling": ParamRule("bool"),
}
_OPEN_FORMATS = ParamRule("choice", choices=("jpeg", "png", "webp"))
_DEV_RULES = {
    "steps": ParamRule("int", 4, 50),
    "guidance": ParamRule("float", 0, 20),
    "prompt_upsampling": ParamRule("bool"),
    "output_format": _OPEN_FORMATS,
}
# fal's [klein] 4B page gives 4–8 steps (distilled); docs/providers.md gives only the default, 4.
_KLEIN_RULES = {"steps": ParamRule("int", 4, 8), "output_format": _OPEN_FORMATS}


def _model(
    model: str,
    endpoint: str,
    family: str,
    max_references: int,
    rules: Mapping[str, ParamRule],
    price: tuple[str, str, str],
    *,
    min_side: int = 64,
) -> FalModel:
    spec = ModelSpec(
        model=model,
        provider_model=endpoint,
        max_references=max_references,
        max_megapixels=MAX_MEGAPIXELS,
        min_side=min_side,
        max_side=2048 if min_side == 512 else 4096,
        dimension_step=16,
        params=frozenset(rules),
        param_rules=rules,
    )
    return FalModel(spec, endpoint, family, Price(*(Decimal(p) for p in price)))


# docs/providers.md §2.1 (ids), 2.4 (fields, limits), 2.8 (prices). pro/max/flex are BFL-hosted: BFL's
# limits apply (8 references assumed, docs/providers.md §8.5; min side 64). dev and klein run on fal:
# 512–2048 px per side (documented for dev, assumed for klein) and 4 references ("first 4 used";
# we refuse a fifth rather than have it silently dropped).
MODELS: dict[str, FalModel] = {
    m.spec.model: m
    for m in (
        _model(
            "flux-2-pro",
            "fal-ai/flux-2-pro",
            "bfl",
            8,
            _BFL_RULES,
            ("0.03", "0.015", "0.015"),
        ),
        _model(
            "flux-2-max",
            "fal-ai/flux-2-max",
            "bfl",
            8,
            _BFL_RULES,
            ("0.07", "0.03", "0.03"),
        ),
        _model(
            "flux-2-flex",
            "fal-ai/flux-2-flex",
            "flex",
            8,
            _FLEX_RULES,
            ("0.05", "0.05", "0.05"),
        ),
        _model(
            "flux-2-dev",
            "fal-ai/flux-2",
            "dev",
            4,
            _DEV_RULES,
            ("0.012", "0.012", "0.012"),
            min_side=512,
        ),
        _model(
            "flux-2-klein-4b",
            "fal-ai/flux-2/klein/4b",
            "klein",
            4,
            _KLEIN_RULES,
            ("0.014", "0.001", "0.001"),
            min_side=512,
        ),
        _model(
            "flux-2-klein-9b",
            "fal-ai/flux-2/klein/9b",
            "klein",
            4,
            _KLEIN_RULES,
            ("0.015", "0.002", "0.002"),
            min_side=512,
        ),
    )
}


def endpoint_for(request: GenerationRequest) -> str:
    """The fal model id to submit to: the `/edit` variant when there are references."""
    endpoint = MODELS[request.model].endpoint
    return f"{endpoint}/edit" if request.references else endpoint


def app_root(endpoint: str) -> str:
    """`owner/app` of a model id: status, result and cancel live there, without the subpath."""
    return "/".join(endpoint.split("/")[:2])


def queue_urls(base_url: str, endpoint: str, request_id: str) -> dict[str, str]:
    """The documented URLs of a request (docs/providers.md §2.3), for answers that omit them."""
    root = f"{base_url}/{app_root(endpoint)}/requests/{quote(request_id, safe='')}"
    return {
        "status_url": f"{root}/status",
        "response_url": root,
        "cancel_url": f"{root}/cancel",
    }


def sibling_url(status_url: str, leaf: str) -> str:
    """`…/requests/{id}/status` -> `…/requests/{id}` (leaf "") or `…/requests/{id}/cancel`."""
    parts = urlsplit(status_url)
    path = parts.path.rstrip("/")
    if path.endswith("/status"):
        path = path[: -len("/status")]
    path = f"{path}/{leaf}" if leaf else path
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def data_uri(content: bytes, content_type: str) -> str:
    return f"data:{content_type or 'application/octet-stream'};base64,{base64.b64encode(content).decode('ascii')}"


def decode_data_uri(uri: str) -> tuple[bytes, str]:
    """(bytes, media type) of a `data:` URI; raises BAD_RESULT when it is not one."""
    header, sep, payload = uri.partition(",")
    if not sep or not header.lower().startswith("data:"):
        raise BackendError(
            ErrorClass.BAD_RESULT, "result: malformed data URI.", retryable=False
        )
    meta = header[5:].split(";")
    try:
        data = (
            base64.b64decode(payload, validate=True)
            if "base64" in meta[1:]
            else unquote_to_bytes(payload)
        )
    except (binascii.Error, ValueError) as exc:
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"result: undecodable data URI ({exc}).",
            retryable=False,
        ) from exc
    return data, meta[0] or "application/octet-stream"


def estimate(model: FalModel, request: GenerationRequest) -> Decimal:
    """USD = first MP + (output MP − 1) × extra + Σ input MP × input price, each image rounded up."""
    inputs = ((ref.width, ref.height) for ref in request.references)
    return model.price.cost((request.width, request.height), inputs)
