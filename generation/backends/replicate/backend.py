"""ReplicateBackend: the predictions API in one submit, poll, fetch and cancel call each."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from generation.backends.base import (
    Backend,
    BackendConfig,
    BackendError,
    Capabilities,
    ErrorClass,
    GenerationRequest,
    PollResult,
    ProviderState,
    RuleViolation,
    Submission,
    check_prompt_and_seed,
)
from generation.backends.download import HostPolicy, fetch_result, result_cap
from generation.backends.replicate.contract import (
    API_HOSTS,
    DELIVERY_HOSTS,
    ENV_API_KEY,
    KLEIN_SIZES,
    MODELS,
    OWNER,
    base_url_of,
    data_uri,
    estimate,
    size_problem,
)
from generation.backends.replicate.results import (
    replicate_http_error,
    result_from_prediction,
)
from generation.backends.replicate.webhooks import verify_webhook
from generation.backends.transport import (
    json_object,
    send,
    timeouts,
    webhook_json,
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
        raw_urls = data.get("urls")
        urls = raw_urls if isinstance(raw_urls, dict) else {}
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
