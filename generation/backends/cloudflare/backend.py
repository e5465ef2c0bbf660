"""CloudflareBackend: one synchronous run call per image (docs/providers.md §4)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import httpx

from generation.backends.base import (
    Backend,
    BackendConfig,
    BackendError,
    Capabilities,
    ErrorClass,
    GenerationRequest,
    ModelSpec,
    PollResult,
    ProviderState,
    RuleViolation,
    Submission,
    check_prompt_and_seed,
)
from generation.backends.cloudflare.contract import (
    DEFAULT_BASE_URL,
    DEV_DEFAULT_STEPS,
    ENV_ACCOUNT,
    ENV_TOKEN,
    MAX_RESULT_BYTES,
    MODELS,
    PRICES,
    PROXIED_RESULT_HOSTS,
    TilePrice,
    fitted_size,
    is_proxied,
    tiles,
)
from generation.backends.cloudflare.errors import http_error
from generation.backends.cloudflare.references import b64_image, prepare_reference
from generation.backends.download import HostPolicy, download_image, verify_image
from generation.backends.transport import (
    json_object,
    send,
    timeouts,
)

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
        data = b64_image(encoded, "submit")
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
            data = b64_image(image, "submit")
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
