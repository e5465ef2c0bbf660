"""The Cloudflare Workers AI backend (providers.md section 4).

Protocol in short: `POST {base}/accounts/{account_id}/ai/run/@cf/black-forest-labs/flux-2-dev` with
`Authorization: Bearer <token>` and a **multipart/form-data** body (even for a prompt-only call)
answers synchronously with the image as base64, wrapped in Cloudflare's v4 envelope
`{"result": {"image": "..."}, "success": true, "errors": [], "messages": []}`. Errors come back in the
same envelope with `"success": false, "errors": [{"code": ..., "message": ...}]`. There is no task id,
no polling, no webhook and no cancel: `submit()` returns the finished image.

BFL models that Cloudflare proxies (`black-forest-labs/flux-2-flex`, `…/flux-2-pro-preview`,
providers.md 4.4) take another shape: `POST {base}/accounts/{account_id}/ai/run` with JSON
`{"model": ..., "input": {...}}`, answering `{"state": "Completed", "result": {"image": "<URL>"}}`.
The image is a URL there, downloaded by `fetch()` from BFL's delivery hosts.

Configuration (`BackendConfig`, each falling back to the environment):
    api_key     the API token (CLOUDFLARE_API_TOKEN)
    base_url    default https://api.cloudflare.com/client/v4 (CLOUDFLARE_API_URL)
    extra       "account_id" (CLOUDFLARE_ACCOUNT_ID);
                "allowed_hosts": comma-separated extra hosts trusted for proxied-model result
                    downloads (".domain" matches subdomains); the base URL's host is always trusted;
                "connect_timeout", "read_timeout" (seconds; generation happens inside the call,
                    so the read timeout is long), "fetch_timeout".

Decisions worth knowing:
    - References larger than 512×512 are downscaled to fit (aspect kept, PNG) rather than refused:
      providers.md gives 512×512 per `input_image_N`, the studio's cleaned references are usually
      larger, and refusing would make every edit impossible here. FLUX.2 encodes references at
      reduced resolution anyway; other backends still get the full-size file.
    - Sizes: 256–1920 px per side (providers.md). providers.md gives no dimension step for
      Cloudflare; we require multiples of 16 like every other FLUX.2 door (the latent grid is 16 px),
      so a request is never silently resized.
    - [dev] always gets an explicit `steps` (25, the documented example, when the request has none):
      Cloudflare bills [dev] per step, so the estimate must know the step count that is sent.
      [klein] takes no `steps` (fixed at 4, "steps ignored") and no `guidance` (distilled models).
    - Pricing (USD): [dev] $0.00021 per input 512×512 tile per step + $0.00041 per output tile per
      step; [klein] 4B $0.000059 per input tile + $0.000287 per output tile (providers.md 4.1).
      Tiles are counted as ceil(w/512) × ceil(h/512), an upper bound (Cloudflare does not say how
      partial tiles are counted). [klein] 9B is not priced in providers.md; Cloudflare's pricing page
      (stored copy, 2026-08) gives BFL's 9B list price, $0.015 first MP + $0.002 per further MP +
      $0.002 per input MP, which we use (MP = 1024×1024 px, rounded up per image, as in bfl.py).
      Proxied models are priced "only in the dashboard"; we use BFL's list prices (providers.md
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
import email.utils
import io
import json
import math
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image

from generation.backends.base import (
    Backend,
    BackendConfig,
    BackendError,
    Capabilities,
    ErrorClass,
    GenerationRequest,
    ModelSpec,
    ParamRule,
    PollResult,
    ProviderState,
    ReferenceInput,
    RuleViolation,
    Submission,
)

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
ENV_TOKEN = "CLOUDFLARE_API_TOKEN"
ENV_ACCOUNT = "CLOUDFLARE_ACCOUNT_ID"
ENV_URL = "CLOUDFLARE_API_URL"

MIN_SIDE = 256  # providers.md 4.2: width/height 256–1920
MAX_SIDE = 1920
MAX_REFERENCES = 4  # input_image_0 … input_image_3
REFERENCE_MAX_SIDE = 512  # "512×512 each"
TILE = 512
DEV_DEFAULT_STEPS = 25  # the documented curl example and cost example
MEGAPIXEL = 1024 * 1024
MAX_REDIRECTS = 3
MAX_RESULT_BYTES = 64 * 1024 * 1024

# Hosts a proxied model's result URL may point at (BFL delivery, providers.md 1.1), besides the
# configured base URL's host and any "allowed_hosts".
PROXIED_RESULT_HOSTS: tuple[str, ...] = (
    ".bfl.ai",
    ".bfl.ml",
    "bfldeliveryprod.blob.core.windows.net",
)

# Cloudflare documents no ranges for [dev]; these are BFL's FLUX.2 ranges (providers.md 1.4).
_DEV_RULES = {
    "steps": ParamRule("int", 1, 50),
    "guidance": ParamRule("float", 1.5, 10),
}
# providers.md 4.4: "parameters mirror BFL" (safety_tolerance 0–5, output_format jpeg/png/webp,
# guidance 1.5–10); steps and prompt_upsampling are [flex]'s own (providers.md 1.4).
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
    # BFL's own limits (providers.md 1.8): min 64, multiples of 16, 4 MP of 1024×1024 px.
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


@dataclass(frozen=True)
class MegapixelPrice:
    """USD: the first output megapixel, each further output megapixel, each input megapixel."""

    first: Decimal
    extra: Decimal
    input: Decimal


PRICES: dict[str, TilePrice | MegapixelPrice] = {
    "flux-2-dev": TilePrice(Decimal("0.00021"), Decimal("0.00041"), per_step=True),
    "flux-2-klein-4b": TilePrice(
        Decimal("0.000059"), Decimal("0.000287"), per_step=False
    ),
    # Not in providers.md: Cloudflare's pricing page (stored copy, 2026-08); see the module docstring.
    "flux-2-klein-9b": MegapixelPrice(
        Decimal("0.015"), Decimal("0.002"), Decimal("0.002")
    ),
    # "Pricing only in the dashboard" (providers.md 4.4): BFL's list prices (providers.md 1.12).
    "flux-2-flex": MegapixelPrice(Decimal("0.05"), Decimal("0.05"), Decimal("0.05")),
    "flux-2-pro-preview": MegapixelPrice(
        Decimal("0.03"), Decimal("0.015"), Decimal("0.015")
    ),
}


def tiles(width: int, height: int) -> int:
    """512×512 tiles covering width×height, partial tiles counted whole."""
    return math.ceil(width / TILE) * math.ceil(height / TILE)


def billed_megapixels(width: int, height: int) -> int:
    """Whole megapixels (1024×1024 px each), rounded up, at least 1."""
    return max(1, -(-(width * height) // MEGAPIXEL))


def fitted_size(
    width: int, height: int, limit: int = REFERENCE_MAX_SIDE
) -> tuple[int, int]:
    """The size a reference is sent at: unchanged when it fits `limit`×`limit`, else scaled down."""
    if width <= limit and height <= limit:
        return width, height
    scale = limit / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


# --- HTTP plumbing ------------------------------------------------------------------------------

_clients: dict[int, httpx.Client] = {}
_clients_lock = threading.Lock()


def _client() -> httpx.Client:
    """One pooled client per process; keyed by pid because Celery's prefork pool forks after import."""
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        with _clients_lock:
            client = _clients.get(pid)
            if client is None:
                client = httpx.Client(
                    follow_redirects=False, headers={"user-agent": "flux-studio/0.1"}
                )
                _clients[pid] = client
    return client


def _transport_error(exc: Exception, what: str) -> BackendError:
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return BackendError(
            ErrorClass.TIMEOUT, f"{what}: no answer in time ({name}).", retryable=True
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return BackendError(
            ErrorClass.INVALID_REQUEST, f"{what}: bad URL ({exc}).", retryable=False
        )
    return BackendError(
        ErrorClass.NETWORK,
        f"{what}: connection failed ({name}: {exc}).",
        retryable=True,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


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
    try:
        body: Any = response.json()
    except ValueError:
        body = None
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

    def err(
        cls: ErrorClass, retryable: bool, after: float | None = None
    ) -> BackendError:
        return BackendError(
            cls,
            text,
            retryable=retryable,
            retry_after=after,
            status_code=code,
            details=details,
        )

    if code in (401, 403) or codes & AUTH_CODES:
        return err(ErrorClass.AUTH, False)
    if code == 402 or codes & QUOTA_CODES or any(m in lowered for m in _QUOTA_MARKERS):
        return err(ErrorClass.QUOTA, False)
    if code == 408:
        return err(ErrorClass.TIMEOUT, True, retry_after)
    if code == 429:
        return err(ErrorClass.RATE_LIMITED, True, retry_after)
    if code >= 500:
        return err(ErrorClass.PROVIDER_ERROR, True, retry_after)
    if any(m in lowered for m in _MODERATION_MARKERS):
        return err(ErrorClass.MODERATED, False)
    if code < 400:  # `success: false` under a 2xx status: not a verdict on the request
        return err(ErrorClass.PROVIDER_ERROR, True)
    if code == 404:
        text += " (check CLOUDFLARE_ACCOUNT_ID and the model id)"
    return err(ErrorClass.INVALID_REQUEST, False)


def sniff_image(data: bytes) -> str:
    """Decode `data` fully with Pillow; return its MIME type or raise BAD_RESULT."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mime = Image.MIME.get(image.format or "", "")
    except Exception as exc:  # Pillow raises many types for bad data
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"result is not a decodable image ({type(exc).__name__}: {exc}).",
            retryable=True,
        ) from exc
    if not mime.startswith("image/"):
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"result has unexpected format {mime or 'unknown'}.",
            retryable=True,
        )
    return mime


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


def _host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("."):
            if host.endswith(pattern) or host == pattern[1:]:
                return True
        elif host == pattern:
            return True
    return False


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
        self.api_token = config.api_key or os.environ.get(ENV_TOKEN, "")
        self.account_id = (
            extra.get("account_id") or os.environ.get(ENV_ACCOUNT, "")
        ).strip()
        self.base_url = (
            config.base_url or os.environ.get(ENV_URL, "") or DEFAULT_BASE_URL
        ).rstrip("/")
        base_host = (urlsplit(self.base_url).hostname or "").lower()
        extra_hosts = tuple(
            h.strip().lower()
            for h in (extra.get("allowed_hosts") or "").split(",")
            if h.strip()
        )
        self.result_hosts = (*PROXIED_RESULT_HOSTS, *extra_hosts)
        # Hosts we configured ourselves may be plain http (a local fake or gateway); BFL's need https.
        self.trusted_hosts = frozenset(
            {base_host, *(h for h in extra_hosts if not h.startswith("."))} - {""}
        )
        connect = float(extra.get("connect_timeout") or 5)
        read = float(extra.get("read_timeout") or 180)
        self.timeout = httpx.Timeout(connect=connect, read=read, write=60, pool=connect)
        self.fetch_timeout = httpx.Timeout(
            connect=connect,
            read=float(extra.get("fetch_timeout") or 60),
            write=30,
            pool=connect,
        )

    # Capabilities, rules, price

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=MODELS, calls_back=False, can_cancel=False, synchronous=True
        )

    def is_configured(self) -> bool:
        return bool(self.api_token and self.account_id)

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        if not request.prompt or not request.prompt.strip():
            raise RuleViolation("prompt", "The prompt is empty.")
        if request.seed is not None and (
            isinstance(request.seed, bool) or not isinstance(request.seed, int)
        ):
            raise RuleViolation(
                "seed", f"seed {request.seed!r} must be a whole number."
            )

    def steps_for(self, request: GenerationRequest) -> int | None:
        """The step count sent (and billed) for [dev]; None for models with fixed steps."""
        if "steps" not in MODELS[request.model].params:
            return None
        steps = request.params.get("steps")
        return int(steps) if steps is not None else DEV_DEFAULT_STEPS

    def estimate_cost(self, request: GenerationRequest) -> Decimal:
        """USD from providers.md 4.1 (and the sources named in the module docstring)."""
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
        output_mp = billed_megapixels(request.width, request.height)
        input_mp = sum(
            billed_megapixels(*fitted_size(ref.width, ref.height))
            for ref in request.references
        )
        return price.first + (output_mp - 1) * price.extra + input_mp * price.input

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
            return result.result_bytes, sniff_image(result.result_bytes)
        if not result.result_url:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "fetch: the result has neither bytes nor a URL.",
                retryable=False,
            )
        return self._download(result.result_url)

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
        try:
            response = _client().post(
                url, headers=headers, timeout=self.timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise _transport_error(exc, what) from exc
        if response.status_code >= 300:
            raise http_error(response, what)
        return response

    def _json_object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            content_type = response.headers.get("content-type", "missing")
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"{what}: the answer is not JSON (content type {content_type}: {response.text[:120]!r}).",
                retryable=True,
                status_code=response.status_code,
            ) from exc
        if not isinstance(body, dict):
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"{what}: the answer is not a JSON object.",
                retryable=True,
            )
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
            return response.content, sniff_image(response.content)
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
        return data, sniff_image(data)

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
                content_type=sniff_image(data),
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
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        trusted = host in self.trusted_hosts
        if (
            parts.scheme not in ("http", "https")
            or not host
            or (parts.scheme == "http" and not trusted)
        ):
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"refused result URL {url.split('?', 1)[0]}: not https.",
                retryable=False,
            )
        if not trusted and not _host_allowed(host, self.result_hosts):
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"refused result URL: {host} is not a result host of {self.label}.",
                retryable=False,
            )

    def _download(self, url: str, what: str = "result download") -> tuple[bytes, str]:
        """GET a proxied model's result URL: allowed hosts only (each redirect hop checked), no
        credentials sent (the URL is signed), size capped, bytes verified with Pillow."""
        for _hop in range(MAX_REDIRECTS + 1):
            self._check_result_url(url)
            try:
                with _client().stream(
                    "GET", url, timeout=self.fetch_timeout
                ) as response:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        url = urljoin(url, location)
                        continue
                    if response.status_code != 200:
                        raise _download_error(response, what)
                    buffer = bytearray()
                    for chunk in response.iter_bytes():
                        buffer += chunk
                        if len(buffer) > MAX_RESULT_BYTES:
                            raise BackendError(
                                ErrorClass.BAD_RESULT,
                                f"{what}: over the {MAX_RESULT_BYTES}-byte cap.",
                            )
            except httpx.HTTPError as exc:
                raise _transport_error(exc, what) from exc
            data = bytes(buffer)
            return data, sniff_image(data)
        raise BackendError(
            ErrorClass.BAD_RESULT, f"{what}: more than {MAX_REDIRECTS} redirects."
        )


def _download_error(response: httpx.Response, what: str) -> BackendError:
    code = response.status_code
    if code in (403, 404, 410):
        return BackendError(
            ErrorClass.EXPIRED,
            f"{what}: HTTP {code}; the result URL has expired.",
            status_code=code,
        )
    if code == 429:
        after = parse_retry_after(response.headers.get("retry-after"))
        return BackendError(
            ErrorClass.RATE_LIMITED,
            f"{what}: HTTP 429.",
            retryable=True,
            retry_after=after,
            status_code=code,
        )
    if code >= 500:
        return BackendError(
            ErrorClass.PROVIDER_ERROR,
            f"{what}: HTTP {code}.",
            retryable=True,
            status_code=code,
        )
    return BackendError(
        ErrorClass.BAD_RESULT, f"{what}: HTTP {code}.", status_code=code
    )


BACKEND_CLASS = CloudflareBackend
