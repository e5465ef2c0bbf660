"""The Replicate predictions backend for Black Forest Labs' FLUX.2 models (docs/providers.md §3).

Protocol in short: `POST {base}/v1/models/black-forest-labs/{name}/predictions` with
`Authorization: Bearer <token>` and `{"input": {...}}` answers a prediction at once (we never send
`Prefer: wait`: no call may block on the model). `GET urls.get` answers its status: `starting`,
`processing`, then `succeeded` (output: one URL string for pro/max/flex/dev, a list of URLs for
klein), `failed` (with `error`), `canceled` or `aborted`. Cancel is `POST urls.cancel`.

Configuration (`BackendConfig`; without a workspace account, from the settings in brackets):
    api_key     the API token [REPLICATE_API_TOKEN]
    base_url    default https://api.replicate.com, with or without "/v1" [REPLICATE_API_URL]
    extra       "allowed_hosts": comma-separated hosts trusted besides Replicate's own, for the
                    prediction URLs it hands back and result downloads (tests: the fake server's
                    "127.0.0.1,localhost"); same rules as download.HostPolicy.
                "webhook_secret": the account's `whsec_…` signing secret [REPLICATE_WEBHOOK_SECRET];
                    without it parse_webhook asks `GET /v1/webhooks/default/secret` once.
                "connect_timeout", "read_timeout", "fetch_timeout" (seconds), "max_result_bytes".

Decisions worth knowing:
    - Input names differ per model (docs/providers.md §3.3): pro/max/flex/dev take `input_images`,
      klein takes `images`; `build_input` writes each model's own fields.
    - Sizes: pro/max/flex/dev get `aspect_ratio: "custom"` with `width`/`height`. Replicate
      *rounds* those to a step (32 on pro, flex and dev, 16 on max); the studio must get exactly the
      size it asked for, so a size that is not already a multiple is refused, naming the nearest
      ones. flex's step is 16 or 32 depending on the version; 32 is exact on both. klein has no
      pixel size at all, only an aspect ratio and `output_megapixels` whose rounding is not
      documented: the one size it is taken to produce exactly is 1024×1024 (1:1 at the default
      1 MP); every other size is refused with that reason.
    - References go as `data:` URIs (documented as accepted for file inputs).
    - Prices are not published for these models in docs/providers.md (3.6, unconfirmed): estimates
      mirror BFL's (1.12) per 1024×1024-px megapixel rounded up per image; [dev] uses fal's
      ≈ $0.012/MP. Replicate reports no cost per prediction.
    - Webhooks follow the Standard Webhooks scheme Replicate documents (3.4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

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
from generation.backends.download import HostPolicy, fetch_result, result_cap
from generation.backends.transport import (
    error_message,
    http_error,
    json_object,
    json_or_none,
    send,
    timeouts,
    webhook_json,
)

ENV_API_KEY = "REPLICATE_API_TOKEN"
ENV_BASE_URL = "REPLICATE_API_URL"
ENV_WEBHOOK_SECRET = "REPLICATE_WEBHOOK_SECRET"
DEFAULT_BASE_URL = "https://api.replicate.com"
OWNER = "black-forest-labs"
API_HOSTS: tuple[str, ...] = ("api.replicate.com",)
# ".x" matches x itself and its subdomains: replicate.delivery, pbxt.replicate.delivery...
DELIVERY_HOSTS: tuple[str, ...] = (".replicate.delivery",)
WEBHOOK_TOLERANCE = 300  # seconds between webhook-timestamp and our clock

# "max image 2048×2048", in ModelSpec's 10^6-pixel units.
MAX_MEGAPIXELS = 4 * MEGAPIXEL / 1_000_000
# klein: (width, height) -> the inputs that produce exactly that size (see the module docstring).
KLEIN_SIZES: dict[tuple[int, int], dict[str, Any]] = {
    (1024, 1024): {"aspect_ratio": "1:1"}
}
_MODERATION_WORDS = (
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


# --- Errors ------------------------------------------------------------------------------------


_RESETS_IN = re.compile(r"resets in ~?\s*(\d+(?:\.\d+)?)\s*s", re.IGNORECASE)


def replicate_http_error(response: httpx.Response, what: str) -> BackendError:
    """transport.http_error's mapping; a 429 without Retry-After takes the wait from the detail
    text ("Your rate limit resets in ~30s")."""
    error = http_error(response, what)
    if error.error_class is ErrorClass.RATE_LIMITED and error.retry_after is None:
        match = _RESETS_IN.search(error_message(json_or_none(response)) or "")
        if match:
            error.retry_after = float(match.group(1))
    return error


def _is_moderation(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _MODERATION_WORDS)


# --- Predictions -------------------------------------------------------------------------------

_PROGRESS = re.compile(r"(\d{1,3})%\|")


def _progress(logs: Any) -> float | None:
    """The last tqdm percentage in the logs, if the model prints one."""
    if not isinstance(logs, str):
        return None
    found = _PROGRESS.findall(logs[-2000:])
    return min(1.0, int(found[-1]) / 100) if found else None


def _first_url(output: Any) -> str | None:
    if isinstance(output, str) and output:
        return output
    if isinstance(output, list) and output and isinstance(output[0], str) and output[0]:
        return output[0]
    return None


def result_from_prediction(
    data: Mapping[str, Any], *, what: str = "poll"
) -> PollResult:
    """Map a prediction object (poll answer or webhook body) onto a PollResult."""
    raw = dict(data)
    status = str(data.get("status") or "").lower()
    if status in ("starting", "processing"):
        return PollResult(
            ProviderState.PENDING, progress=_progress(data.get("logs")), raw=raw
        )
    if status == "succeeded":
        url = _first_url(data.get("output"))
        if url is None:
            if data.get("data_removed"):
                error = BackendError(
                    ErrorClass.EXPIRED,
                    "Replicate has already deleted this prediction's output (kept 1 hour).",
                    details={"provider_status": status, "data_removed": True},
                )
            else:
                error = BackendError(
                    ErrorClass.BAD_RESULT,
                    f"{what}: prediction succeeded without an output URL.",
                    retryable=True,
                    details={"provider_status": status},
                )
            return PollResult(ProviderState.FAILED, error=error, raw=raw)
        metrics = data.get("metrics")
        predict = metrics.get("predict_time") if isinstance(metrics, dict) else None
        return PollResult(
            ProviderState.READY,
            progress=1.0,
            result_url=url,
            raw=raw,
            duration=float(predict)
            if isinstance(predict, int | float)
            and not isinstance(predict, bool)
            and predict > 0
            else None,
        )
    if status == "failed":
        message = str(data.get("error") or "no details")
        details = {"provider_status": status, "provider_error": data.get("error")}
        if _is_moderation(message):
            error = BackendError(
                ErrorClass.MODERATED,
                f"Replicate's safety checker refused the prediction: {message}",
                details={**details, "moderation": "content", "reasons": [message]},
            )
        else:
            error = BackendError(
                ErrorClass.PROVIDER_ERROR,
                f"Replicate failed to generate: {message}",
                retryable=True,
                details=details,
            )
        return PollResult(ProviderState.FAILED, error=error, raw=raw)
    if status in ("canceled", "aborted"):
        error = BackendError(
            ErrorClass.PROVIDER_ERROR,
            f"Replicate {status} the prediction.",
            retryable=status == "aborted",
            details={"provider_status": status, "canceled": status == "canceled"},
        )
        return PollResult(ProviderState.FAILED, error=error, raw=raw)
    raise BackendError(
        ErrorClass.BAD_RESULT,
        f"{what}: unknown status {status!r}.",
        retryable=True,
        details=raw,
    )


# --- Webhooks (Standard Webhooks) --------------------------------------------------------------


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret: the base64-decoded part after the prefix."""
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BackendError(
            ErrorClass.AUTH, "webhook: the signing secret is not a whsec_ secret."
        ) from exc


def sign_webhook(
    secret: str, webhook_id: str, timestamp: str | int, body: bytes
) -> str:
    """The `v1,<base64>` signature of a delivery."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secrets: list[str],
    *,
    now: float | None = None,
) -> None:
    """Raise AUTH unless `body` carries a fresh, valid signature by one of `secrets`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    webhook_id = (lowered.get("webhook-id") or "").strip()
    timestamp = (lowered.get("webhook-timestamp") or "").strip()
    signatures = (lowered.get("webhook-signature") or "").split()
    if not (webhook_id and timestamp and signatures):
        raise BackendError(
            ErrorClass.AUTH, "webhook: signature headers missing.", status_code=401
        )
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise BackendError(
            ErrorClass.AUTH, "webhook: malformed webhook-timestamp.", status_code=401
        ) from exc
    if abs((time.time() if now is None else now) - sent_at) > WEBHOOK_TOLERANCE:
        raise BackendError(
            ErrorClass.AUTH,
            f"webhook: timestamp {timestamp} is over {WEBHOOK_TOLERANCE} s away.",
            status_code=401,
        )
    for secret in secrets:
        expected = sign_webhook(secret, webhook_id, timestamp, body).encode()
        for given in signatures:
            if given.startswith("v1,") and hmac.compare_digest(
                given.encode(), expected
            ):
                return
    raise BackendError(
        ErrorClass.AUTH, "webhook: signature does not match.", status_code=401
    )


_secret_cache: dict[tuple[str, str], str] = {}
_secret_lock = threading.Lock()


# --- The backend --------------------------------------------------------------------------------


class ReplicateBackend(Backend):
    name = "replicate"
    label = "Replicate"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        extra = config.extra or {}
        self.api_key = config.api_key
        self.base_url = base_url_of(config.base_url)
        allowed = (extra.get("allowed_hosts") or "").split(",")
        self.api_policy = HostPolicy.build(self.base_url, allowed, API_HOSTS)
        self.delivery_policy = HostPolicy.build(self.base_url, allowed, DELIVERY_HOSTS)
        self.webhook_secret = extra.get("webhook_secret") or ""
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
        model = MODELS.get(request.model)
        if model is not None and (
            problem := size_problem(model, request.width, request.height)
        ):
            raise problem  # before the generic checks: it says why exact sizes matter here
        super().validate(request)
        check_prompt_and_seed(request)
        if request.webhook_url and urlsplit(request.webhook_url).scheme not in (
            "http",
            "https",
        ):
            raise RuleViolation(
                "webhook_url", "webhook_url must be an http(s) URL on Replicate."
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
        """The prediction `input` for the request's model (docs/providers.md §3.3)."""
        model = MODELS[request.model]
        body: dict[str, Any] = {"prompt": request.prompt}
        if model.custom_size:
            body |= {
                "aspect_ratio": "custom",
                "width": request.width,
                "height": request.height,
            }
        else:
            body |= KLEIN_SIZES[(request.width, request.height)]
        if request.references:
            body[model.images_field] = [
                data_uri(ref.content, ref.content_type) for ref in request.references
            ]
        if request.seed is not None:
            body["seed"] = request.seed
        rules = model.spec.param_rules
        for name, value in request.params.items():
            if value is None:
                continue
            kind = rules[name].kind
            if kind == "int":
                value = int(value)
            elif kind == "float":
                value = float(value)
            if name == "output_format" and value == "jpeg":
                value = "jpg"  # Replicate's spelling
            body[name] = value
        return body

    def submit(self, request: GenerationRequest) -> Submission:
        self.validate(request)
        self._require_key()
        model = MODELS[request.model]
        payload: dict[str, Any] = {"input": self.build_input(request)}
        if request.webhook_url:
            payload["webhook"] = request.webhook_url
            payload["webhook_events_filter"] = ["completed"]
        url = f"{self.base_url}/v1/models/{OWNER}/{model.name}/predictions"
        data = self._call("POST", url, "submit", json=payload)
        prediction_id = data.get("id")
        if not isinstance(prediction_id, str) or not prediction_id:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "submit: answer without a prediction id.",
                retryable=True,
                details=data,
            )
        urls = data.get("urls") if isinstance(data.get("urls"), dict) else {}
        get_url = urls.get("get") if isinstance(urls.get("get"), str) else None
        poll_url = (
            get_url or f"{self.base_url}/v1/predictions/{quote(prediction_id, safe='')}"
        )
        # The submit answer may carry the input back (data URIs of every reference): keep the
        # stored copy small.
        raw = {k: v for k, v in data.items() if k != "input"}
        return Submission(task_id=prediction_id, poll_url=poll_url, raw=raw)

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        self._require_key()
        url = poll_url or f"{self.base_url}/v1/predictions/{quote(task_id, safe='')}"
        self.api_policy.check(url, what="poll", resolve=False)  # the token goes there
        try:
            data = self._call("GET", url, "poll")
        except BackendError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                return PollResult(ProviderState.FAILED, error=exc, raw=exc.details)
            raise
        data.pop("input", None)
        return result_from_prediction(data)

    def fetch(self, result: PollResult) -> tuple[bytes, str]:
        return fetch_result(
            result,
            policy=self.delivery_policy,
            timeout=self.fetch_timeout,
            max_bytes=self.max_result_bytes,
        )

    def cancel(self, *, task_id: str, poll_url: str | None) -> bool:
        """POST urls.cancel (= `{urls.get}/cancel`). True when the prediction is now canceled
        (or about to be); False when it had already finished or is unknown."""
        self._require_key()
        get_url = (
            poll_url or f"{self.base_url}/v1/predictions/{quote(task_id, safe='')}"
        )
        parts = urlsplit(get_url)
        url = urlunsplit(
            (parts.scheme, parts.netloc, parts.path.rstrip("/") + "/cancel", "", "")
        )
        self.api_policy.check(url, what="cancel", resolve=False)
        try:
            data = self._call("POST", url, "cancel")
        except BackendError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                return False
            raise
        return str(data.get("status") or "").lower() in (
            "canceled",
            "starting",
            "processing",
        )

    def parse_webhook(
        self, *, headers: Mapping[str, str], body: bytes, secret: str = ""
    ) -> tuple[str, PollResult]:
        """Verify a Standard Webhooks signature (docs/providers.md §3.4) and parse the prediction.

        Replicate signs with the account's secret, not a per-request one. It is `secret` when
        that is a `whsec_…` value, else the configured one, else fetched once from the API.
        """
        verify_webhook(headers, body, self._signing_secrets(secret))
        data = webhook_json(body)
        prediction_id = data.get("id")
        if not isinstance(prediction_id, str) or not prediction_id:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "webhook: prediction without an id.",
                status_code=400,
            )
        data.pop("input", None)
        return prediction_id, result_from_prediction(data, what="webhook")

    def account_webhook_secret(self, *, refresh: bool = False) -> str:
        """The account's signing secret (`GET /v1/webhooks/default/secret`), cached per token."""
        key = (self.base_url, hashlib.sha256(self.api_key.encode()).hexdigest())
        with _secret_lock:
            cached = _secret_cache.get(key)
        if cached and not refresh:
            return cached
        self._require_key()
        data = self._call(
            "GET", f"{self.base_url}/v1/webhooks/default/secret", "webhook secret"
        )
        secret = data.get("key")
        if not isinstance(secret, str) or not secret.startswith("whsec_"):
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "webhook secret: no whsec_ key in the answer.",
                retryable=True,
            )
        with _secret_lock:
            _secret_cache[key] = secret
        return secret

    # Helpers

    def _signing_secrets(self, secret: str) -> list[str]:
        given = [
            s for s in (secret, self.webhook_secret) if s and s.startswith("whsec_")
        ]
        return given or [self.account_webhook_secret()]

    def _require_key(self) -> None:
        if not self.api_key:
            raise BackendError(
                ErrorClass.AUTH,
                f"No Replicate API token is configured ({ENV_API_KEY}).",
            )

    def _call(
        self, method: str, url: str, what: str, *, json: Any = None
    ) -> dict[str, Any]:
        headers = {
            "authorization": f"Bearer {self.api_key}",
            "accept": "application/json",
        }
        response = send(
            method,
            url,
            what,
            timeout=self.timeout,
            error_for=replicate_http_error,
            maybe_submitted=True,
            json=json,
            headers=headers,
        )
        return json_object(response, what)


BACKEND_CLASS = ReplicateBackend
