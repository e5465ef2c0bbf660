"""FalBackend: fal's queue protocol in one submit, poll, fetch and cancel call each."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

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
from generation.backends.download import (
    HostPolicy,
    fetch_result,
    result_cap,
    verify_image,
)
from generation.backends.fal.contract import (
    API_HOSTS,
    DEFAULT_BASE_URL,
    DELIVERY_HOSTS,
    ENV_API_KEY,
    FIELD_NAMES,
    JWKS_HOSTS,
    JWKS_TTL,
    JWKS_URL,
    MODELS,
    data_uri,
    decode_data_uri,
    endpoint_for,
    estimate,
    queue_urls,
    sibling_url,
)
from generation.backends.fal.results import (
    failure,
    fal_http_error,
    result_from_output,
    result_from_webhook,
)
from generation.backends.fal.webhooks import WebhookKeys, verify_delivery
from generation.backends.transport import (
    client,
    error_message,
    json_object,
    json_or_none,
    send,
    timeouts,
    transport_error,
    webhook_json,
)

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
        self.webhook_keys = WebhookKeys(
            self.jwks_url, self.jwks_policy, self.timeout, self.jwks_ttl
        )
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
            given if isinstance(given, str) and given else sibling_url(poll_url, "")
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
        url = sibling_url(poll_url, "cancel")
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
        request_id = verify_delivery(headers, body, self.webhook_keys)
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


BACKEND_CLASS = FalBackend
