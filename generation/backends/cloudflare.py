"""The Cloudflare Workers AI backend (docs/providers.md §4).

Protocol in short: `POST {base}/accounts/{account_id}/ai/run/@cf/black-forest-labs/flux-2-dev` with
`Authorization: Bearer <token>` and a **multipart/form-data** body (even for a prompt-only call)
answers synchronously with the image as base64, wrapped in Cloudflare's v4 envelope
`{"result": {"image": "..."}, "success": true, "errors": [], "messages": []}`. Errors come back in the
same envelope with `"success": false, "errors": [{"code": ..., "message": ...}]`. There is no task id,
no polling, no webhook and no cancel: `submit()` returns the finished image.

BFL models that Cloudflare proxies (`black-forest-labs/flux-2-flex`, `…/flux-2-pro-preview`,
docs/providers.md §4.4) take another shape: `POST {base}/accounts/{account_id}/ai/run` with JSON
`{"model": ..., "input": {...}}`, answering `{"state": "Completed", "result": {"image": "<URL>"}}`.
The image is a URL there, downloaded by `fetch()` from BFL's delivery hosts.

Configuration (`BackendConfig`; without a workspace account, from the settings in brackets):
    api_key     the API token (CLOUDFLARE_API_TOKEN)
    base_url    default https://api.cloudflare.com/client/v4 (CLOUDFLARE_API_URL)
    extra       "account_id" (CLOUDFLARE_ACCOUNT_ID);
                "allowed_hosts": comma-separated extra hosts trusted for proxied-model result
                    downloads (".domain" matches subdomains); the base URL's host is always trusted;
                "connect_timeout", "read_timeout" (seconds; generation happens inside the call,
                    so the read timeout is long), "fetch_timeout".

Decisions worth knowing:
    - References larger than 512×512 are downscaled to fit (aspect kept, PNG) rather than refused:
      docs/providers.md gives 512×512 per `input_image_N`, the studio's cleaned references are usually
      larger, and refusing would make every edit impossible here. FLUX.2 encodes references at
      reduced resolution anyway; other backends still get the full-size file.
    - Sizes: 256–1920 px per side (docs/providers.md). docs/providers.md gives no dimension step for
      Cloudflare; we require multiples of 16 like every other FLUX.2 door (the latent grid is 16 px),
      so a request is never silently resized.
    - [dev] always gets an explicit `steps` (25, the documented example, when the request has none):
      Cloudflare bills [dev] per step, so the estimate must know the step count that is sent.
      [klein] takes no `steps` (fixed at 4, "steps ignored") and no `guidance` (distilled models).
    - Pricing (USD): [dev] $0.00021 per input 512×512 tile per step + $0.00041 per output tile per
      step; [klein] 4B $0.000059 per input tile + $0.000287 per output tile (docs/providers.md §4.1).
      Tiles are counted as ceil(w/512) × ceil(h/512), an upper bound (Cloudflare does not say how
      partial tiles are counted). [klein] 9B is not priced in docs/providers.md; Cloudflare's pricing page
      (stored copy, 2026-08) gives BFL's 9B list price, $0.015 first MP + $0.002 per further MP +
      $0.002 per input MP, which we use (MP = 1024×1024 px, rounded up per image, as in bfl.py).
      Proxied models are priced "only in the dashboard"; we use BFL's list prices (docs/providers.md
      1.12) as the estimate. Cloudflare reports no cost per call, so the estimate is all we know.
    - Proxied models take references as URLs only; ours are private files, so they serve text to
      image only (max_references 0).
    - Error mapping: 401/403 (and Cloudflare code 10000) auth; 402 and "free allocation"
      exhaustion (code 4006, seen in the wild, unconfirmed) quota; 429 rate limited with
      Retry-After; 5xx retryable; other 4xx invalid request with Cloudflare's message. Workers AI
      documents no moderation error for FLUX.2: a 4xx whose message speaks of NSFW/moderation/safety
      is classed as moderated (our assumption, unconfirmed).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from PIL import Image

from generation.backends.base import (
    MEGAPIXEL,
    Backend,
    BackendConfig,
    BackendError,
    Capabilities,
    ErrorClass,
    GenerationRequest,
    MegapixelPrice,
    ModelSpec,
    ParamRule,
    PollResult,
    ProviderState,
    ReferenceInput,
    RuleViolation,
    Submission,
    check_prompt_and_seed,
)
from generation.backends.bfl import PROVIDER_HOSTS
from generation.backends.download import HostPolicy, download_image, verify_image
from generation.backends.transport import (
    json_object,
    json_or_none,
    parse_retry_after,
    send,
    status_class,
    status_error,
    timeouts,
)

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
ENV_TOKEN = "CLOUDFLARE_API_TOKEN"
ENV_ACCOUNT = "CLOUDFLARE_ACCOUNT_ID"
ENV_URL = "CLOUDFLARE_API_URL"

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


# --- HTTP errors -------------------------------------------------------------------------------


def envelope_errors(body: Any) -> list[dict[str, Any]]:
    """The `errors` list of a Cloudflare v4 envelope, as dicts with `code` and `message`."""
    if not isinstance(body, dict):
        return []
    errors = body.get("errors")
    if not isinstance(errors, list):
        return []
    found = []
    for item in errors:
        if isinstance(item, dict):
            found.append(
                {
                    "code": item.get("code"),
                    "message": str(item.get("message") or "").strip(),
                }
            )
        elif item:
            found.append({"code": None, "message": str(item)})
    return found


def _error_text(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{e['message'] or 'error'} (code {e['code']})"
        if e["code"] is not None
        else e["message"]
        for e in errors
    )


_MODERATION_MARKERS = ("nsfw", "moderat", "content policy", "safety", "inappropriate")
_QUOTA_MARKERS = ("free allocation", "insufficient", "billing", "payment")
AUTH_CODES = {10000, 10001}  # Cloudflare API "Authentication error"
QUOTA_CODES = {4006}  # Workers AI "used up your daily free allocation" (unconfirmed)


def http_error(response: httpx.Response, what: str) -> BackendError:
    """Map a Cloudflare error answer (any status, `success: false`) onto our error classes."""
    code = response.status_code
    body = json_or_none(response)
    errors = envelope_errors(body)
    message = (
        _error_text(errors)
        or " ".join(response.text[:300].split())
        or response.reason_phrase
    )
    lowered = message.lower()
    codes = {e["code"] for e in errors}
    details: dict[str, Any] = (
        {"errors": errors} if errors else {"body": response.text[:1000]}
    )
    if ray := response.headers.get("cf-ray"):
        details["cf_ray"] = ray
    text = f"{what}: HTTP {code}: {message}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if code in (401, 403) or codes & AUTH_CODES:
        cls = ErrorClass.AUTH
    elif (
        code == 402 or codes & QUOTA_CODES or any(m in lowered for m in _QUOTA_MARKERS)
    ):
        cls = ErrorClass.QUOTA
    elif code in (408, 429) or code >= 500:
        cls = status_class(code)
    elif any(m in lowered for m in _MODERATION_MARKERS):
        cls = ErrorClass.MODERATED
    elif (
        code < 400
    ):  # `success: false` under a 2xx status: not a verdict on the request
        cls, retry_after = ErrorClass.PROVIDER_ERROR, None
    else:
        cls = ErrorClass.INVALID_REQUEST
        if code == 404:
            text += " (check CLOUDFLARE_ACCOUNT_ID and the model id)"
    return status_error(
        code, text, error_class=cls, retry_after=retry_after, details=details
    )


def _b64_image(encoded: str, what: str) -> bytes:
    """Decode a base64 image (a `data:` URI prefix is tolerated)."""
    if encoded.startswith("data:"):
        encoded = encoded.split(",", 1)[-1]
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"{what}: result.image is not valid base64.",
            retryable=True,
        ) from exc


def prepare_reference(ref: ReferenceInput) -> tuple[bytes, str, int, int]:
    """The reference as sent: (bytes, content type, width, height), at most 512×512.

    Fitting references are sent untouched; larger ones are scaled down (aspect kept) to PNG.
    """
    try:
        with Image.open(io.BytesIO(ref.content)) as image:
            image.load()
            width, height = image.size
            target = fitted_size(width, height)
            if target == (width, height):
                mime = Image.MIME.get(image.format or "", "") or ref.content_type
                return ref.content, mime, width, height
            mode = (
                "RGBA"
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
                else "RGB"
            )
            scaled = image.convert(mode).resize(target, Image.Resampling.LANCZOS)
    except Exception as exc:  # Pillow raises many types for bad data
        raise BackendError(
            ErrorClass.INVALID_REQUEST,
            f"reference {ref.name or ref.role!r} is not a decodable image ({type(exc).__name__}).",
            retryable=False,
        ) from exc
    buffer = io.BytesIO()
    scaled.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue(), "image/png", target[0], target[1]


# --- The backend --------------------------------------------------------------------------------


class CloudflareBackend(Backend):
    name = "cloudflare"
    label = "Cloudflare Workers AI"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        extra = config.extra or {}
        self.api_token = config.api_key
        self.account_id = (extra.get("account_id") or "").strip()
        self.base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        # Hosts we configured ourselves (the base URL's, exact "allowed_hosts") may be plain
        # http (a local fake or gateway); BFL's need https.
        self.result_policy = HostPolicy.build(
            self.base_url,
            (extra.get("allowed_hosts") or "").split(","),
            PROXIED_RESULT_HOSTS,
        )
        self.timeout, self.fetch_timeout = timeouts(extra, read=180, write=60)

    # Capabilities, rules, price

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=MODELS, calls_back=False, can_cancel=False, synchronous=True
        )

    def is_configured(self) -> bool:
        return bool(self.api_token and self.account_id)

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        check_prompt_and_seed(request)

    def steps_for(self, request: GenerationRequest) -> int | None:
        """The step count sent (and billed) for [dev]; None for models with fixed steps."""
        if "steps" not in MODELS[request.model].params:
            return None
        steps = request.params.get("steps")
        return int(steps) if steps is not None else DEV_DEFAULT_STEPS

    def estimate_cost(self, request: GenerationRequest) -> Decimal:
        """USD from docs/providers.md §4.1 (and the sources named in the module docstring)."""
        price = PRICES.get(request.model)
        if price is None:
            raise RuleViolation(
                "model", f"{self.label} has no price for {request.model}."
            )
        if isinstance(price, TilePrice):
            out_tiles = tiles(request.width, request.height)
            in_tiles = sum(
                tiles(*fitted_size(ref.width, ref.height)) for ref in request.references
            )
            cost = in_tiles * price.input + out_tiles * price.output
            return cost * (self.steps_for(request) or 1) if price.per_step else cost
        inputs = (fitted_size(ref.width, ref.height) for ref in request.references)
        return price.cost((request.width, request.height), inputs)

    # Protocol

    def run_url(self, spec: ModelSpec) -> str:
        url = f"{self.base_url}/accounts/{self.account_id}/ai/run"
        return url if is_proxied(spec) else f"{url}/{spec.provider_model}"

    def build_form(
        self, request: GenerationRequest
    ) -> tuple[list[tuple[str, tuple[Any, ...]]], list[dict[str, Any]]]:
        """The multipart parts for a hosted (`@cf/`) model, and what was done to each reference.

        Every field is a file-style part so httpx sends multipart/form-data even without images.
        """
        spec = MODELS[request.model]
        fields: dict[str, Any] = {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
        }
        if (steps := self.steps_for(request)) is not None:
            fields["steps"] = steps
        if request.params.get("guidance") is not None:
            fields["guidance"] = float(request.params["guidance"])
        if request.seed is not None:
            fields["seed"] = request.seed
        parts: list[tuple[str, tuple[Any, ...]]] = [
            (name, (None, str(value))) for name, value in fields.items()
        ]
        sent = []
        for index, ref in enumerate(request.references[: spec.max_references]):
            data, mime, width, height = prepare_reference(ref)
            extension = {
                "image/png": "png",
                "image/jpeg": "jpg",
                "image/webp": "webp",
            }.get(mime, "img")
            parts.append(
                (
                    f"input_image_{index}",
                    (f"input_image_{index}.{extension}", data, mime),
                )
            )
            sent.append(
                {
                    "field": f"input_image_{index}",
                    "width": width,
                    "height": height,
                    "resized": (width, height) != (ref.width, ref.height),
                }
            )
        return parts, sent

    def build_proxied_body(self, request: GenerationRequest) -> dict[str, Any]:
        spec = MODELS[request.model]
        values: dict[str, Any] = {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
        }
        if request.seed is not None:
            values["seed"] = request.seed
        for name, value in request.params.items():
            if value is None:
                continue
            kind = spec.param_rules[name].kind
            values[name] = (
                int(value)
                if kind == "int"
                else float(value)
                if kind == "float"
                else value
            )
        return {"model": spec.provider_model, "input": values}

    def submit(self, request: GenerationRequest) -> Submission:
        self.validate(request)
        self._require_config()
        spec = MODELS[request.model]
        if is_proxied(spec):
            return self._submit_proxied(request, spec)
        parts, sent = self.build_form(request)
        response = self._post(self.run_url(spec), "submit", files=parts)
        task_id = response.headers.get("cf-ray") or uuid.uuid4().hex
        data, mime = self._image_from(response)
        result = PollResult(
            ProviderState.READY,
            progress=1.0,
            result_bytes=data,
            content_type=mime,
            seed=request.seed,
            raw={"references": sent, "steps": self.steps_for(request)},
        )
        return Submission(
            task_id=task_id,
            result=result,
            raw={"model": spec.provider_model, "references": sent},
        )

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        # Synchronous: the result came with submit(). A poll means the engine lost it.
        raise BackendError(
            ErrorClass.NOT_FOUND,
            "Cloudflare Workers AI answers synchronously; there is no task to poll.",
            retryable=False,
        )

    def fetch(self, result: PollResult) -> tuple[bytes, str]:
        if result.result_bytes is not None:
            return result.result_bytes, verify_image(result.result_bytes)
        if not result.result_url:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "fetch: the result has neither bytes nor a URL.",
                retryable=False,
            )
        return download_image(
            result.result_url,
            policy=self.result_policy,
            timeout=self.fetch_timeout,
            max_bytes=MAX_RESULT_BYTES,
        )

    def cancel(self, *, task_id: str, poll_url: str | None) -> bool:
        return False  # synchronous; nothing runs after submit() returns

    # Helpers

    def _require_config(self) -> None:
        if not self.api_token:
            raise BackendError(
                ErrorClass.AUTH, f"No Cloudflare API token is configured ({ENV_TOKEN})."
            )
        if not self.account_id:
            raise BackendError(
                ErrorClass.AUTH,
                f"No Cloudflare account id is configured ({ENV_ACCOUNT}).",
            )

    def _post(self, url: str, what: str, **kwargs: Any) -> httpx.Response:
        headers = {
            "authorization": f"Bearer {self.api_token}",
            "accept": "application/json",
        }
        return send(
            "POST",
            url,
            what,
            timeout=self.timeout,
            error_for=http_error,
            headers=headers,
            **kwargs,
        )

    def _json_object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        body = json_object(response, what)
        if body.get("success") is False:  # an error envelope with a 2xx status
            raise http_error(response, what)
        return body

    def _image_from(self, response: httpx.Response) -> tuple[bytes, str]:
        """The image from a hosted model's 200 answer: the enveloped base64, or raw image bytes."""
        content_type = (
            response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        )
        if content_type.startswith(
            "image/"
        ):  # tolerated: some Workers AI image models answer raw bytes
            return response.content, verify_image(response.content)
        body = self._json_object(response, "submit")
        # The v4 envelope is unconfirmed for this model: accept the bare output too.
        result = body.get("result", body)
        encoded = result.get("image") if isinstance(result, dict) else None
        if not isinstance(encoded, str) or not encoded:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "submit: the answer has no result.image.",
                retryable=True,
                details={"keys": sorted(body)},
            )
        data = _b64_image(encoded, "submit")
        return data, verify_image(data)

    def _submit_proxied(
        self, request: GenerationRequest, spec: ModelSpec
    ) -> Submission:
        response = self._post(
            self.run_url(spec), "submit", json=self.build_proxied_body(request)
        )
        body = self._json_object(response, "submit")
        state = str(body.get("state") or "").strip()
        result = body.get("result")
        image = result.get("image") if isinstance(result, dict) else None
        task_id = response.headers.get("cf-ray") or uuid.uuid4().hex
        raw = {key: body[key] for key in ("state", "gatewayMetadata") if key in body}
        if (
            state.lower() not in ("completed", "")
            or not isinstance(image, str)
            or not image
        ):
            lowered = json.dumps(body).lower()
            moderated = "moderat" in lowered
            error = BackendError(
                ErrorClass.MODERATED if moderated else ErrorClass.PROVIDER_ERROR,
                f"{spec.provider_model} via Cloudflare ended in state {state or 'unknown'!r} without an image.",
                retryable=not moderated,
                details={"provider_state": state, "body": body},
            )
            return Submission(
                task_id=task_id,
                result=PollResult(ProviderState.FAILED, error=error, raw=raw),
                raw=raw,
            )
        if image.startswith("data:"):
            data = _b64_image(image, "submit")
            ready = PollResult(
                ProviderState.READY,
                progress=1.0,
                result_bytes=data,
                content_type=verify_image(data),
                raw=raw,
            )
        else:
            self._check_result_url(image)
            ready = PollResult(
                ProviderState.READY,
                progress=1.0,
                result_url=image,
                seed=request.seed,
                raw=raw,
            )
        return Submission(task_id=task_id, result=ready, raw=raw)

    def _check_result_url(self, url: str) -> None:
        self.result_policy.check(url, what="result", resolve=False)


BACKEND_CLASS = CloudflareBackend
