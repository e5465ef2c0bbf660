"""The Black Forest Labs API backend (docs/providers.md §1).

Protocol in short: `POST {base}/v1/{model}` with header `x-key` answers `{id, polling_url, cost}` at
once; `GET {polling_url}` (exactly as given: it points at the cluster that took the job) answers a
status (`Pending`, `Ready`, `Request Moderated`, `Content Moderated`, `Error`, `Task not found`);
a `Ready` result carries a signed `result.sample` URL that expires after ten minutes, so the
engine downloads it at once with `fetch()`. BFL has no cancel endpoint.

Configuration (`BackendConfig`):
    api_key     the `x-key`
    base_url    a URL, or a region name from REGIONS ("global", "eu", "us"); when empty, extra
                "region"; else the global host
    extra       "allowed_hosts": comma-separated hosts trusted besides BFL's own for polling URLs and
                    result downloads. An entry starting with "." matches a domain and its
                    subdomains; any other entry is an exact host, and only exact entries (and the
                    base URL's host) may be private/loopback addresses or plain http (tests: the
                    fake server's "127.0.0.1,localhost").
                "connect_timeout", "read_timeout", "fetch_timeout" (seconds), "max_result_bytes".

Decisions worth knowing:
    - References go as raw base64 in `input_image`, `input_image_2`... (docs/providers.md: "URL or
      base64"); our references are private files, so there is no URL BFL could fetch.
    - Megapixels are counted in units of 1024×1024 px and rounded up per image, input and output
      (fal's documented rule; BFL's own "4 MP, e.g. 2048×2048" uses the same unit). Estimates
      therefore err high; the submit answer's `cost` is the truth for billing.
    - Both moderation statuses are terminal and not retryable; `details["moderation"]` says
      "request" (prompt/input refused before generating) or "content" (output refused).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

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
    json_object,
    send,
    timeouts,
    webhook_json,
)

REGIONS: dict[str, str] = {
    "global": "https://api.bfl.ai",
    "eu": "https://api.eu.bfl.ai",
    "us": "https://api.us.bfl.ai",
}
DEFAULT_BASE_URL = REGIONS["global"]
# Hosts BFL answers and delivers from (docs/providers.md §1.1). "." entries match subdomains.
PROVIDER_HOSTS: tuple[str, ...] = (
    ".bfl.ai",
    ".bfl.ml",
    "bfldeliveryprod.blob.core.windows.net",
)

MAX_MEGAPIXELS = (
    4 * MEGAPIXEL / 1_000_000
)  # "max 4 MP (e.g. 2048×2048)", in ModelSpec's 10^6 units
MAX_SIDE = 4096  # docs/providers.md states no per-side limit; this only keeps aspect ratios sane
CREDIT = Decimal("0.01")  # USD per BFL credit
WEBHOOK_URL_MAX = 2083

_COMMON_RULES = {
    "safety_tolerance": ParamRule("int", 0, 5),
    "output_format": ParamRule("choice", choices=("jpeg", "png")),
}
_FLEX_RULES = {
    **_COMMON_RULES,
    "steps": ParamRule("int", 1, 50),
    "guidance": ParamRule("float", 1.5, 10),
    "prompt_upsampling": ParamRule("bool"),
}
_WEBP_RULES = {
    **_COMMON_RULES,
    "output_format": ParamRule("choice", choices=("jpeg", "png", "webp")),
}


def _spec(model: str, max_references: int, rules: Mapping[str, ParamRule]) -> ModelSpec:
    return ModelSpec(
        model=model,
        provider_model=model,
        max_references=max_references,
        max_megapixels=MAX_MEGAPIXELS,
        min_side=64,
        max_side=MAX_SIDE,
        dimension_step=16,
        params=frozenset(rules),
        param_rules=rules,
    )


MODELS: dict[str, ModelSpec] = {
    spec.model: spec
    for spec in (
        _spec("flux-2-pro", 8, _COMMON_RULES),
        _spec("flux-2-pro-preview", 8, _COMMON_RULES),
        _spec("flux-2-max", 8, _COMMON_RULES),
        _spec("flux-2-flex", 8, _FLEX_RULES),
        _spec("flux-2-klein-4b", 4, _COMMON_RULES),
        _spec("flux-2-klein-9b", 4, _COMMON_RULES),
        _spec("flux-2-klein-9b-preview", 4, _WEBP_RULES),
    )
}


# In cents (MegapixelPrice: first output MP, each further output MP, each input MP).
Price = MegapixelPrice
_PRO = Price(Decimal(3), Decimal("1.5"), Decimal("1.5"))
_KLEIN_9B = Price(Decimal("1.5"), Decimal("0.2"), Decimal("0.2"))
PRICES: dict[str, MegapixelPrice] = {  # docs/providers.md §1.12
    "flux-2-pro": _PRO,
    "flux-2-pro-preview": _PRO,
    "flux-2-max": Price(Decimal(7), Decimal(3), Decimal(3)),
    "flux-2-flex": Price(Decimal(5), Decimal(5), Decimal(5)),
    "flux-2-klein-4b": Price(Decimal("1.4"), Decimal("0.1"), Decimal("0.1")),
    "flux-2-klein-9b": _KLEIN_9B,
    "flux-2-klein-9b-preview": _KLEIN_9B,
}


def resolve_base_url(value: str) -> str:
    """A region name from REGIONS or a URL; empty means the global endpoint."""
    value = (value or "").strip()
    if not value:
        return DEFAULT_BASE_URL
    return REGIONS.get(value.lower(), value).rstrip("/")


def credits_to_usd(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        credits = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return credits * CREDIT if credits.is_finite() else None


# --- Result payloads (poll answers and webhooks) ------------------------------------------------

_PENDING = {"pending", "queued", "processing", "running", "submitted", "in progress"}


def _moderation_reasons(details: Any) -> list[str]:
    if not isinstance(details, dict):
        return []
    reasons = details.get("Moderation Reasons", details.get("moderation_reasons"))
    if reasons is None:
        return []
    if isinstance(reasons, str):
        return [reasons]
    if isinstance(reasons, list | tuple):
        return [str(r) for r in reasons]
    return [str(reasons)]


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _seconds_or_none(value: Any) -> float | None:
    """A positive number of seconds (result.duration is optional, seen in captures only)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value > 0 else None


def result_from_payload(data: Mapping[str, Any], *, what: str = "poll") -> PollResult:
    """Map a `ResultResponse` (poll) or a webhook payload onto a PollResult."""
    raw = dict(data)
    status = str(data.get("status") or "").strip()
    key = status.lower()
    cost = credits_to_usd(data.get("cost"))
    details = data.get("details")

    if key in _PENDING:
        progress = data.get("progress")
        value = (
            min(1.0, max(0.0, float(progress)))
            if isinstance(progress, int | float) and not isinstance(progress, bool)
            else None
        )
        return PollResult(ProviderState.PENDING, progress=value, raw=raw)

    if key == "ready":
        result = data.get("result")
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str) or not sample:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"{what}: Ready without result.sample.",
                retryable=True,
                details=raw,
            )
        assert isinstance(result, dict)
        prompt = result.get("prompt")
        return PollResult(
            ProviderState.READY,
            progress=1.0,
            result_url=sample,
            cost=cost,
            seed=_int_or_none(result.get("seed")),
            provider_prompt=prompt if isinstance(prompt, str) else None,
            raw=raw,
            duration=_seconds_or_none(result.get("duration")),
        )

    if key in ("request moderated", "content moderated"):
        stage = "request" if key.startswith("request") else "content"
        reasons = _moderation_reasons(details)
        what_refused = (
            "the prompt or an input image, before generating"
            if stage == "request"
            else "the generated image (a new prompt or seed may pass)"
        )
        message = f"BFL moderation refused {what_refused}"
        message += f": {', '.join(reasons)}." if reasons else " (no reasons given)."
        error = BackendError(
            ErrorClass.MODERATED,
            message,
            retryable=False,
            details={
                "moderation": stage,
                "reasons": reasons,
                "provider_status": status,
                "provider_details": details,
            },
        )
        return PollResult(ProviderState.FAILED, cost=cost, error=error, raw=raw)

    if key in ("error", "failed"):
        reason = (
            error_message(details)
            or error_message(raw)
            or (str(details) if details else "")
            or "no details"
        )
        error = BackendError(
            ErrorClass.PROVIDER_ERROR,
            f"BFL failed to generate ({status}: {reason}).",
            retryable=True,
            details={"provider_status": status, "provider_details": details},
        )
        return PollResult(ProviderState.FAILED, cost=cost, error=error, raw=raw)

    if key == "task not found":
        error = BackendError(
            ErrorClass.NOT_FOUND,
            "BFL no longer knows this task (Task not found).",
            retryable=False,
            details={"provider_status": status},
        )
        return PollResult(ProviderState.FAILED, error=error, raw=raw)

    raise BackendError(
        ErrorClass.BAD_RESULT,
        f"{what}: unknown status {status!r}.",
        retryable=True,
        details=raw,
    )


def sign_webhook(body: bytes, secret: str) -> str:
    """The `X-BFL-Signature` value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- The backend --------------------------------------------------------------------------------


class BFLBackend(Backend):
    name = "bfl"
    label = "Black Forest Labs API"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        extra = config.extra or {}
        self.base_url = resolve_base_url(config.base_url or extra.get("region", ""))
        self.policy = HostPolicy.build(
            self.base_url,
            (extra.get("allowed_hosts") or "").split(","),
            PROVIDER_HOSTS,
        )
        self.timeout, self.fetch_timeout = timeouts(extra)
        self.max_result_bytes = result_cap(extra)

    # Capabilities, rules, price

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=MODELS, calls_back=True, can_cancel=False, synchronous=False
        )

    def is_configured(self) -> bool:
        return bool(self.config.api_key)

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        check_prompt_and_seed(request)
        if (
            request.webhook_url is not None
            and not 1 <= len(request.webhook_url) <= WEBHOOK_URL_MAX
        ):
            raise RuleViolation(
                "webhook_url",
                f"webhook_url must be 1–{WEBHOOK_URL_MAX} characters on {self.label}.",
            )

    def estimate_cost(self, request: GenerationRequest) -> Decimal:
        """docs/providers.md §1.12: cents = first MP + (output MP − 1) × MP price + input MP × MP price."""
        price = PRICES.get(request.model)
        if price is None:
            raise RuleViolation(
                "model", f"{self.label} has no price for {request.model}."
            )
        inputs = ((ref.width, ref.height) for ref in request.references)
        return price.cost((request.width, request.height), inputs) * CREDIT

    # Protocol

    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body for `POST /v1/{model}` (Flux2Inputs)."""
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        for name, value in request.params.items():
            if value is None:
                continue
            kind = MODELS[request.model].param_rules[name].kind
            body[name] = (
                int(value)
                if kind == "int"
                else float(value)
                if kind == "float"
                else value
            )
        for index, ref in enumerate(request.references, start=1):
            field_name = "input_image" if index == 1 else f"input_image_{index}"
            body[field_name] = base64.b64encode(ref.content).decode("ascii")
        if request.webhook_url:
            body["webhook_url"] = request.webhook_url
            if request.webhook_secret:
                body["webhook_secret"] = request.webhook_secret
        return body

    def submit(self, request: GenerationRequest) -> Submission:
        self.validate(request)
        self._require_key()
        spec = MODELS[request.model]
        data = self._call(
            "POST",
            f"{self.base_url}/v1/{spec.provider_model}",
            "submit",
            json=self.build_body(request),
        )
        task_id = data.get("id")
        polling_url = data.get("polling_url")
        if not isinstance(task_id, str) or not task_id:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "submit: answer without a task id.",
                retryable=True,
                details=data,
            )
        if polling_url is not None and not isinstance(polling_url, str):
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "submit: polling_url is not a string.",
                retryable=True,
                details=data,
            )
        return Submission(
            task_id=task_id,
            poll_url=polling_url or None,
            cost=credits_to_usd(data.get("cost")),
            raw=data,
        )

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        self._require_key()
        # The exact polling_url: it names the cluster that holds the task. Only when the submit
        # answer had none do we fall back to the documented /v1/get_result on our base URL.
        url = poll_url or f"{self.base_url}/v1/get_result?id={quote(task_id, safe='')}"
        self.policy.check(
            url, what="poll", resolve=False
        )  # the key goes there: BFL hosts only
        return result_from_payload(self._call("GET", url, "poll"), what="poll")

    def fetch(self, result: PollResult) -> tuple[bytes, str]:
        return fetch_result(
            result,
            policy=self.policy,
            timeout=self.fetch_timeout,
            max_bytes=self.max_result_bytes,
        )

    def cancel(self, *, task_id: str, poll_url: str | None) -> bool:
        return False  # BFL has no cancel endpoint

    def parse_webhook(
        self, *, headers: Mapping[str, str], body: bytes, secret: str
    ) -> tuple[str, PollResult]:
        """Verify `X-BFL-Signature: sha256=<hex>` (HMAC-SHA256 of the raw body) and parse the payload.

        With a secret, a missing or wrong signature is refused. Without one nothing can be checked
        (docs/providers.md: BFL may send unsigned callbacks); the engine should always set a secret.
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        if secret:
            given = (lowered.get("x-bfl-signature") or "").strip()
            if not given:
                raise BackendError(
                    ErrorClass.AUTH,
                    "webhook: no X-BFL-Signature header.",
                    status_code=401,
                )
            expected = sign_webhook(body, secret)
            if not given.lower().startswith("sha256="):
                given = "sha256=" + given
            if not hmac.compare_digest(given.lower().encode(), expected.encode()):
                raise BackendError(
                    ErrorClass.AUTH,
                    "webhook: X-BFL-Signature does not match.",
                    status_code=401,
                )
        data = webhook_json(body)
        task_id = data.get("id") or data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "webhook: payload has no task id.",
                status_code=400,
            )
        return task_id, result_from_payload(data, what="webhook")

    def balance(self) -> Decimal | None:
        """The account's remaining credit in USD (`GET /v1/credits`)."""
        self._require_key()
        return credits_to_usd(
            self._call("GET", f"{self.base_url}/v1/credits", "credits").get("credits")
        )

    # Helpers

    def _require_key(self) -> None:
        if not self.config.api_key:
            raise BackendError(
                ErrorClass.AUTH, "No BFL API key is configured (BFL_API_KEY)."
            )

    def _call(
        self, method: str, url: str, what: str, *, json: Any = None
    ) -> dict[str, Any]:
        headers = {"x-key": self.config.api_key, "accept": "application/json"}
        response = send(
            method,
            url,
            what,
            timeout=self.timeout,
            json=json,
            headers=headers,
            # A submit whose answer was lost may still have created (and charged) a task.
            maybe_submitted=what == "submit",
        )
        return json_object(response, what)
