"""The fal.ai queue backend for FLUX.2 (docs/providers.md §2).

Protocol in short: `POST {base}/{model_id}[/edit]` with `Authorization: Key <key>` answers at once
with `request_id` and three URLs: `status_url`, `response_url`, `cancel_url`. `GET status_url`
answers `IN_QUEUE`, `IN_PROGRESS` or `COMPLETED`; a model failure *also* ends as `COMPLETED`, and
the error only shows when the result is fetched (`GET response_url` answers 4xx/5xx with a
`detail` body). So poll() makes one call while the request is pending and a second one, for the
result, once it is completed. Cancel is `PUT cancel_url`.

Configuration (`BackendConfig`; without a workspace account, from the settings in brackets):
    api_key     the fal key [FAL_KEY]; "KEY_ID:KEY_SECRET" keys go in the same header unchanged
    base_url    the queue host, default https://queue.fal.run [FAL_QUEUE_URL]
    extra       "allowed_hosts": comma-separated hosts trusted besides fal's own, for the queue
                    URLs fal hands back, result downloads and the webhook JWKS (tests: the fake
                    server's "127.0.0.1,localhost"); same rules as download.HostPolicy.
                "jwks_url": where fal publishes its webhook signing keys (default JWKS_URL)
                    [FAL_JWKS_URL].
                "jwks_ttl": seconds to cache those keys (default one day).
                "connect_timeout", "read_timeout", "fetch_timeout" (seconds), "max_result_bytes".

Decisions worth knowing:
    - The URLs from the submit answer are used as given. The engine keeps only `poll_url`, so
      poll_url is the `status_url`; the response URL is the `response_url` that every status
      answer repeats, and only when an answer lacks it is it derived by dropping "/status"
      (docs/providers.md §2.3's path table: status, result and cancel share `/{app}/requests/{id}`).
      cancel() derives the cancel URL the same way. All three also stay in Submission.raw.
    - References go as `data:` URIs in `image_urls`: our references are private files with no URL
      fal could fetch. docs/providers.md does not state that fal's FLUX.2 edit endpoints take data
      URIs (fal's CDN page says "some models" do); if one refuses them, the fix is to upload to
      fal's storage first, which this module does not do yet.
    - The size always goes as `image_size: {width, height}`: the enum presets' pixel sizes are
      unconfirmed, and the studio must get the exact size it asked for.
    - Megapixels are 1024×1024 px, rounded up per image, input and output (fal's own example:
      1920×1080 = 2 MP). Klein prices are not on fal's pages in docs/providers.md; they mirror BFL's
      (1.12) until confirmed. fal reports no cost, so the estimate is all we have.
    - Webhooks are verified with Ed25519 against fal's JWKS (docs/providers.md §2.7); the per-request
      webhook secret plays no part (fal signs with its own key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlencode, urlsplit, urlunsplit

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
    RuleViolation,
    Submission,
    check_prompt_and_seed,
)
from generation.backends.download import (
    HostPolicy,
    fetch_result,
    result_cap,
    verify_image,
)
from generation.backends.transport import (
    client,
    error_message,
    http_error,
    json_object,
    json_or_none,
    send,
    timeouts,
    transport_error,
    webhook_json,
)

ENV_API_KEY = "FAL_KEY"
ENV_BASE_URL = "FAL_QUEUE_URL"
ENV_JWKS_URL = "FAL_JWKS_URL"
DEFAULT_BASE_URL = "https://queue.fal.run"
# Hosts fal answers from (queue) and delivers results from (docs/providers.md §2.3, 2.5).
API_HOSTS: tuple[str, ...] = (".fal.run",)
DELIVERY_HOSTS: tuple[str, ...] = (".fal.media",)
# Webhook signing keys (docs/providers.md §2.7; the exact host is unconfirmed, rest.fal.ai is also seen).
JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
JWKS_HOSTS: tuple[str, ...] = (".fal.ai",)
JWKS_TTL = 24 * 3600.0
# An unknown signature refetches the keys (fal rotated them?) at most this often.
JWKS_MIN_REFRESH = 60.0
WEBHOOK_TOLERANCE = 300  # seconds between fal's timestamp and our clock

# "4 MP", i.e. 2048×2048, in ModelSpec's 10^6-pixel units.
MAX_MEGAPIXELS = 4 * MEGAPIXEL / 1_000_000
MODERATION_TYPES = frozenset({"content_policy_violation"})
_MODERATION_WORDS = (
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


def _sibling_url(status_url: str, leaf: str) -> str:
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


# --- Failures (result-time errors, webhook errors, HTTP errors) ---------------------------------


def _detail_items(body: Any) -> list[dict[str, Any]]:
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        return [detail]
    if isinstance(detail, list):
        return [item for item in detail if isinstance(item, dict)]
    return []


def moderation_categories(body: Any) -> list[str] | None:
    """The categories of a content-policy refusal, or None when `body` is not one."""
    items = _detail_items(body)
    flagged = [
        i for i in items if i.get("type") in MODERATION_TYPES or i.get("categories")
    ]
    if flagged:
        return sorted({str(c) for i in flagged for c in (i.get("categories") or ())})
    text = (error_message(body) or "").lower()
    if any(word in text for word in _MODERATION_WORDS):
        return []
    return None


def _header_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes")


def fal_http_error(response: httpx.Response, what: str) -> BackendError:
    """transport.http_error's mapping, plus fal's own signals: content-policy 422s are MODERATED,
    `X-Fal-Retryable` overrides our guess, and a 504 of the user's start timeout is TIMEOUT."""
    error = http_error(response, what)
    body = json_or_none(response)
    error_class = error.error_class
    retryable = error.retryable
    details = dict(error.details)
    if (
        response.status_code in (400, 422)
        and (categories := moderation_categories(body)) is not None
    ):
        error_class, retryable = ErrorClass.MODERATED, False
        details.update(moderation="request", categories=categories, reasons=categories)
    elif (
        response.status_code == 504
        and response.headers.get("x-fal-request-timeout-type") == "user"
    ):
        error_class, retryable = ErrorClass.TIMEOUT, False
    header = _header_bool(response.headers.get("x-fal-retryable"))
    if header is not None and error_class is not ErrorClass.MODERATED:
        retryable = header
    return BackendError(
        error_class,
        error.message,
        retryable=retryable,
        retry_after=error.retry_after,
        status_code=error.status_code,
        details=details,
    )


def failure(error: BackendError, raw: Mapping[str, Any]) -> PollResult:
    return PollResult(ProviderState.FAILED, error=error, raw=dict(raw))


# --- Output payloads ---------------------------------------------------------------------------


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def result_from_output(data: Any, *, what: str = "result") -> PollResult:
    """Map a model output (`v4Output` or pro/max/flex `{images, seed}`) onto a PollResult."""
    if not isinstance(data, dict):
        error = BackendError(
            ErrorClass.BAD_RESULT,
            f"{what}: the output is not a JSON object.",
            retryable=True,
        )
        return failure(error, {"output": data})
    raw = dict(data)
    nsfw = data.get("has_nsfw_concepts")
    if isinstance(nsfw, list) and nsfw and nsfw[0] is True:
        error = BackendError(
            ErrorClass.MODERATED,
            "fal's safety checker flagged the generated image (a new prompt or seed may pass).",
            retryable=False,
            details={
                "moderation": "content",
                "reasons": ["nsfw"],
                "has_nsfw_concepts": nsfw,
            },
        )
        return failure(error, raw)
    images = data.get("images")
    first = (
        images[0]
        if isinstance(images, list) and images and isinstance(images[0], dict)
        else {}
    )
    url = first.get("url")
    if not isinstance(url, str) or not url:
        error = BackendError(
            ErrorClass.BAD_RESULT,
            f"{what}: the output has no image URL.",
            retryable=True,
        )
        return failure(error, raw)
    content_type = (
        first.get("content_type")
        if isinstance(first.get("content_type"), str)
        else None
    )
    result_bytes = None
    if url.startswith("data:"):  # sync_mode answers inline; no download needed
        result_bytes, content_type = decode_data_uri(url)
        url = None
    prompt = data.get("prompt")
    return PollResult(
        ProviderState.READY,
        progress=1.0,
        result_url=url,
        result_bytes=result_bytes,
        content_type=content_type,
        seed=_int_or_none(data.get("seed")),
        provider_prompt=prompt if isinstance(prompt, str) else None,
        raw=raw,
    )


def _status_code_in(text: str) -> int | None:
    """The code in fal's webhook `error` text, e.g. "Invalid status code: 422"."""
    digits = "".join(ch if ch.isdigit() else " " for ch in text).split()
    codes = [int(d) for d in digits if len(d) == 3 and 400 <= int(d) < 600]
    return codes[-1] if codes else None


def result_from_webhook(data: Mapping[str, Any]) -> PollResult:
    """Map a webhook delivery (`status` OK/ERROR with the model output as `payload`)."""
    raw = dict(data)
    status = str(data.get("status") or "").upper()
    payload = data.get("payload")
    if status == "OK":
        if payload is None:
            # fal could not serialise the output into the callback; the result itself is fine and
            # polling (the response URL) fetches it, so report "still pending" and let polling run.
            return PollResult(ProviderState.PENDING, raw=raw)
        return result_from_output(payload, what="webhook")
    if status == "ERROR":
        text = str(data.get("error") or "")
        code = _status_code_in(text)
        message = error_message(payload) or text or "no details"
        details: dict[str, Any] = {"provider_status": status, "payload": payload}
        if (categories := moderation_categories(payload)) is not None and (
            code is None or code < 500
        ):
            details.update(
                moderation="request", categories=categories, reasons=categories
            )
            error = BackendError(
                ErrorClass.MODERATED,
                f"fal refused the request: {message}",
                details=details,
            )
        elif code is not None and 400 <= code < 500:
            error = BackendError(
                ErrorClass.INVALID_REQUEST,
                f"fal refused the request: {message}",
                details=details,
            )
        else:
            error = BackendError(
                ErrorClass.PROVIDER_ERROR,
                f"fal failed to generate: {message}",
                retryable=True,
                details=details,
            )
        error.status_code = code
        return failure(error, raw)
    raise BackendError(
        ErrorClass.BAD_RESULT,
        f"webhook: unknown status {status!r}.",
        status_code=400,
        details=raw,
    )


# --- Webhook keys (JWKS) ------------------------------------------------------------------------

_jwks_cache: dict[str, tuple[float, tuple[Ed25519PublicKey, ...]]] = {}
_jwks_lock = threading.Lock()


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def keys_from_jwks(data: Any) -> tuple[Ed25519PublicKey, ...]:
    """The Ed25519 keys (`kty: OKP`, `crv: Ed25519`) of a JWKS document; others are skipped."""
    keys = []
    for jwk in data.get("keys", []) if isinstance(data, dict) else []:
        if (
            not isinstance(jwk, dict)
            or jwk.get("kty") != "OKP"
            or jwk.get("crv") != "Ed25519"
        ):
            continue
        try:
            keys.append(
                Ed25519PublicKey.from_public_bytes(_b64url(str(jwk.get("x", ""))))
            )
        except (ValueError, binascii.Error):
            continue
    return tuple(keys)


def clear_jwks_cache() -> None:
    with _jwks_lock:
        _jwks_cache.clear()


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """What fal signs: request id, user id, timestamp and the body's SHA-256 hex, one per line."""
    return "\n".join(
        (request_id, user_id, timestamp, hashlib.sha256(body).hexdigest())
    ).encode()


# --- The backend --------------------------------------------------------------------------------


class FalBackend(Backend):
    name = "fal"
    label = "fal.ai"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        extra = config.extra or {}
        self.api_key = config.api_key
        self.base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        allowed = (extra.get("allowed_hosts") or "").split(",")
        self.api_policy = HostPolicy.build(self.base_url, allowed, API_HOSTS)
        self.delivery_policy = HostPolicy.build(self.base_url, allowed, DELIVERY_HOSTS)
        self.jwks_url = extra.get("jwks_url") or JWKS_URL
        self.jwks_policy = HostPolicy.build(self.base_url, allowed, JWKS_HOSTS)
        self.jwks_ttl = float(extra.get("jwks_ttl") or JWKS_TTL)
        self.timeout, self.fetch_timeout = timeouts(extra)
        self.max_result_bytes = result_cap(extra)

    # Capabilities, rules, price

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models={name: m.spec for name, m in MODELS.items()},
            calls_back=True,
            can_cancel=True,
            synchronous=False,
        )

    def is_configured(self) -> bool:
        return bool(self.api_key)

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        check_prompt_and_seed(request)
        if request.webhook_url and urlsplit(request.webhook_url).scheme not in (
            "http",
            "https",
        ):
            raise RuleViolation(
                "webhook_url", f"webhook_url must be an http(s) URL on {self.label}."
            )

    def estimate_cost(self, request: GenerationRequest) -> Decimal:
        model = MODELS.get(request.model)
        if model is None:
            raise RuleViolation(
                "model", f"{self.label} has no price for {request.model}."
            )
        return estimate(model, request)

    # Protocol

    def build_input(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON input of the endpoint `endpoint_for(request)` (docs/providers.md §2.4)."""
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "image_size": {"width": request.width, "height": request.height},
        }
        if request.seed is not None:
            body["seed"] = request.seed
        rules = MODELS[request.model].spec.param_rules
        for name, value in request.params.items():
            if value is None:
                continue
            kind = rules[name].kind
            value = (
                int(value)
                if kind == "int"
                else float(value)
                if kind == "float"
                else value
            )
            body[FIELD_NAMES[name]] = (
                str(value) if name == "safety_tolerance" else value
            )
        if request.references:
            body["image_urls"] = [
                data_uri(ref.content, ref.content_type) for ref in request.references
            ]
        return body

    def submit(self, request: GenerationRequest) -> Submission:
        self.validate(request)
        self._require_key()
        endpoint = endpoint_for(request)
        url = f"{self.base_url}/{endpoint}"
        if request.webhook_url:
            url += "?" + urlencode({"fal_webhook": request.webhook_url})
        data = self._call("POST", url, "submit", json=self.build_input(request))
        request_id = data.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "submit: answer without a request_id.",
                retryable=True,
                details=data,
            )
        # The answer's URLs as given; the documented ones only where the answer has none.
        urls = queue_urls(self.base_url, endpoint, request_id)
        for key in urls:
            if isinstance(data.get(key), str) and data[key]:
                urls[key] = data[key]
        raw = {**data, **urls, "endpoint": endpoint}
        return Submission(task_id=request_id, poll_url=urls["status_url"], raw=raw)

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        self._require_key()
        if not poll_url:
            raise BackendError(
                ErrorClass.NOT_FOUND,
                f"poll: no status URL stored for fal request {task_id}.",
                retryable=False,
            )
        # The key goes there: fal hosts only.
        self.api_policy.check(poll_url, what="poll", resolve=False)
        try:
            data = self._call("GET", poll_url, "poll")
        except BackendError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                return failure(exc, exc.details)
            raise
        status = str(data.get("status") or "").upper()
        if status in ("IN_QUEUE", "IN_PROGRESS"):
            return PollResult(ProviderState.PENDING, raw=data)
        if status in ("CANCELED", "CANCELLED"):
            error = BackendError(
                ErrorClass.PROVIDER_ERROR,
                "fal canceled the request.",
                details={"provider_status": status, "canceled": True},
            )
            return failure(error, data)
        if status == "FAILED":
            message = error_message(data) or str(data.get("error") or "no details")
            error = BackendError(
                ErrorClass.PROVIDER_ERROR,
                f"fal failed to generate: {message}",
                retryable=True,
                details={"provider_status": status},
            )
            return failure(error, data)
        if status != "COMPLETED":
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"poll: unknown status {status!r}.",
                retryable=True,
                details=data,
            )
        given = data.get("response_url")
        response_url = (
            given if isinstance(given, str) and given else _sibling_url(poll_url, "")
        )
        return self._result(response_url, status_raw=data)

    def fetch(self, result: PollResult) -> tuple[bytes, str]:
        if result.result_bytes is None and (result.result_url or "").startswith(
            "data:"
        ):
            data, _ = decode_data_uri(result.result_url or "")
            return data, verify_image(data)
        return fetch_result(
            result,
            policy=self.delivery_policy,
            timeout=self.fetch_timeout,
            max_bytes=self.max_result_bytes,
        )

    def cancel(self, *, task_id: str, poll_url: str | None) -> bool:
        """PUT the cancel URL. True when fal accepted the cancellation (queued requests are
        dropped; running ones only get a signal), False when it was already done or unknown."""
        self._require_key()
        if not poll_url:
            return False
        url = _sibling_url(poll_url, "cancel")
        self.api_policy.check(url, what="cancel", resolve=False)
        try:
            response = client().put(url, headers=self._headers(), timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise transport_error(exc, "cancel") from exc
        if response.status_code in (200, 202):
            return True
        if response.status_code in (
            400,
            404,
            409,
            410,
        ):  # ALREADY_COMPLETED / NOT_FOUND
            return False
        raise fal_http_error(response, "cancel")

    def parse_webhook(
        self, *, headers: Mapping[str, str], body: bytes, secret: str = ""
    ) -> tuple[str, PollResult]:
        """Verify fal's Ed25519 signature (docs/providers.md §2.7) and parse the delivery.

        `secret` is not used: fal signs every callback with its own key, published as a JWKS.
        Raises AUTH (401) for a missing, stale or wrong signature; NETWORK (retryable) when the
        keys cannot be fetched, so the view can answer 5xx and fal delivers again later.
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        request_id = (lowered.get("x-fal-webhook-request-id") or "").strip()
        user_id = (lowered.get("x-fal-webhook-user-id") or "").strip()
        timestamp = (lowered.get("x-fal-webhook-timestamp") or "").strip()
        signature = (lowered.get("x-fal-webhook-signature") or "").strip()
        if not (request_id and user_id and timestamp and signature):
            raise BackendError(
                ErrorClass.AUTH,
                "webhook: fal signature headers missing.",
                status_code=401,
            )
        try:
            sent_at = int(timestamp)
            signature_bytes = bytes.fromhex(signature)
        except ValueError as exc:
            raise BackendError(
                ErrorClass.AUTH,
                "webhook: malformed fal signature headers.",
                status_code=401,
            ) from exc
        if abs(time.time() - sent_at) > WEBHOOK_TOLERANCE:
            raise BackendError(
                ErrorClass.AUTH,
                f"webhook: timestamp {timestamp} is over {WEBHOOK_TOLERANCE} s old.",
                status_code=401,
            )
        message = signed_message(request_id, user_id, timestamp, body)
        if not self._verify(signature_bytes, message):
            raise BackendError(
                ErrorClass.AUTH,
                "webhook: fal signature does not match.",
                status_code=401,
            )
        data = webhook_json(body)
        body_id = data.get("request_id")
        if body_id is not None and body_id != request_id:
            raise BackendError(
                ErrorClass.AUTH,
                "webhook: request id differs from the signed one.",
                status_code=401,
            )
        return request_id, result_from_webhook(data)

    # Helpers

    def _require_key(self) -> None:
        if not self.api_key:
            raise BackendError(
                ErrorClass.AUTH, f"No fal key is configured ({ENV_API_KEY})."
            )

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Key {self.api_key}", "accept": "application/json"}

    def _call(
        self, method: str, url: str, what: str, *, json: Any = None
    ) -> dict[str, Any]:
        response = send(
            method,
            url,
            what,
            timeout=self.timeout,
            error_for=fal_http_error,
            maybe_submitted=True,
            json=json,
            headers=self._headers(),
        )
        return json_object(response, what)

    def _result(
        self, response_url: str, *, status_raw: Mapping[str, Any]
    ) -> PollResult:
        """GET the result of a COMPLETED request; a model failure shows here as an HTTP error."""
        self.api_policy.check(response_url, what="result", resolve=False)
        try:
            response = client().get(
                response_url, headers=self._headers(), timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, "result") from exc
        code = response.status_code
        if code < 300:
            return result_from_output(json_object(response, "result"))
        error = fal_http_error(response, "result")
        # Our own call failing (key, throttling, a gateway answering 502/503 or a gateway
        # timeout, any 5xx without fal's JSON error body) is worth another poll. A failure of the
        # request itself - 4xx with a `detail`, a model's 500, the user start timeout - is its
        # terminal result.
        user_timeout = response.headers.get("x-fal-request-timeout-type") == "user"
        has_body = isinstance(json_or_none(response), dict)
        transient = code in (401, 403, 429, 502, 503) or (
            code >= 500 and not (has_body and (code != 504 or user_timeout))
        )
        if transient:
            raise error
        error.details["status"] = dict(status_raw)
        return failure(error, {"status": dict(status_raw), "result_status_code": code})

    def _verify(self, signature: bytes, message: bytes) -> bool:
        keys, fetched_at = self._jwks(force=False)
        if _any_verifies(keys, signature, message):
            return True
        if time.monotonic() - fetched_at < JWKS_MIN_REFRESH:
            return False
        # fal may have rotated its keys since we cached them.
        keys, _ = self._jwks(force=True)
        return _any_verifies(keys, signature, message)

    def _jwks(self, *, force: bool) -> tuple[tuple[Ed25519PublicKey, ...], float]:
        now = time.monotonic()
        with _jwks_lock:
            cached = _jwks_cache.get(self.jwks_url)
        if cached and not force and now - cached[0] < self.jwks_ttl:
            return cached[1], cached[0]
        self.jwks_policy.check(self.jwks_url, what="webhook keys", resolve=True)
        try:
            response = client().get(self.jwks_url, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise transport_error(exc, "webhook keys") from exc
        if response.status_code != 200:
            raise BackendError(
                ErrorClass.NETWORK,
                f"webhook keys: HTTP {response.status_code} from {self.jwks_url}.",
                retryable=True,
            )
        keys = keys_from_jwks(json_or_none(response))
        if not keys:
            raise BackendError(
                ErrorClass.NETWORK,
                f"webhook keys: no Ed25519 key at {self.jwks_url}.",
                retryable=True,
            )
        with _jwks_lock:
            _jwks_cache[self.jwks_url] = (now, keys)
        return keys, now


def _any_verifies(
    keys: tuple[Ed25519PublicKey, ...], signature: bytes, message: bytes
) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False


BACKEND_CLASS = FalBackend
