"""ComfyUIBackend: a self-hosted ComfyUI's HTTP API in short submit, poll, fetch and cancel calls."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

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
    ReferenceInput,
    RuleViolation,
    Submission,
)
from generation.backends.comfyui.errors import (
    UNREACHABLE,
    http_error,
    queue_ids,
    status_message,
)
from generation.backends.comfyui.workflow import (
    ENV_URL,
    MAX_RESULT_BYTES,
    MODELS,
    SEED_LIMIT,
    UPLOAD_SUBFOLDER,
    build_graph,
    graph_seed,
    load_workflow,
)
from generation.backends.download import read_image_body, verify_image
from generation.backends.transport import (
    client,
    json_object,
    send,
    timeouts,
    transport_error,
)

# --- The backend --------------------------------------------------------------------------------


class ComfyUIBackend(Backend):
    name = "comfyui"
    label = "ComfyUI"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        extra = config.extra or {}
        self.base_url = config.base_url.strip().rstrip("/")
        self.client_id = extra.get("client_id") or "flux-studio"
        workflow_dir = extra.get("workflow_dir") or ""
        self.workflow_dir = Path(workflow_dir) if workflow_dir else None
        price = extra.get("price_per_image") or "0"
        try:
            self.price_per_image = Decimal(price)
        except InvalidOperation:
            self.price_per_image = Decimal(0)
        self.auth: httpx.Auth | None = None
        self.headers = {"accept": "application/json"}
        if extra.get("username"):
            self.auth = httpx.BasicAuth(
                extra["username"], extra.get("password") or config.api_key
            )
        elif config.api_key:
            self.headers["authorization"] = f"Bearer {config.api_key}"
        self.timeout, self.fetch_timeout = timeouts(extra, write=60)

    # Capabilities, rules, price

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=MODELS, calls_back=False, can_cancel=True, synchronous=False
        )

    def is_configured(self) -> bool:
        return bool(self.base_url)

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        if not request.prompt or not request.prompt.strip():
            raise RuleViolation("prompt", "The prompt is empty.")
        if request.seed is not None and (
            isinstance(request.seed, bool)
            or not isinstance(request.seed, int)
            or not 0 <= request.seed < SEED_LIMIT
        ):
            raise RuleViolation(
                "seed", f"seed {request.seed!r} must be a whole number from 0 to 2^53."
            )

    def estimate_cost(self, request: GenerationRequest) -> Decimal:
        """Self-hosted: the configured price per image (default 0)."""
        return self.price_per_image

    # Protocol

    def graph_for(
        self,
        request: GenerationRequest,
        *,
        seed: int,
        reference_images: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        spec = MODELS[request.model]
        steps, guidance = request.params.get("steps"), request.params.get("guidance")
        return build_graph(
            load_workflow(spec.provider_model, self.workflow_dir),
            prompt=request.prompt,
            seed=seed,
            width=request.width,
            height=request.height,
            steps=int(steps) if steps is not None else None,
            guidance=float(guidance) if guidance is not None else None,
            reference_images=reference_images,
        )

    def upload_reference(self, ref: ReferenceInput) -> str:
        """Upload one reference; the LoadImage value ("subfolder/name") ComfyUI gave it."""
        extension = {
            "image/png": ".png",
            "image/jpeg": ".jpg",
            "image/webp": ".webp",
        }.get(ref.content_type, ".png")
        name = f"ref-{hashlib.sha256(ref.content).hexdigest()[:32]}{extension}"
        response = self._request(
            "POST",
            "/upload/image",
            "reference upload",
            files={
                "image": (
                    name,
                    ref.content,
                    ref.content_type or "application/octet-stream",
                )
            },
            data={"type": "input", "subfolder": UPLOAD_SUBFOLDER},
        )
        body = json_object(response, "reference upload")
        stored, subfolder = body.get("name"), body.get("subfolder") or ""
        if not isinstance(stored, str) or not stored:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "reference upload: the answer has no name.",
                retryable=True,
                details=body,
            )
        return f"{subfolder}/{stored}" if subfolder else stored

    def submit(self, request: GenerationRequest) -> Submission:
        self.validate(request)
        self._require_url()
        seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
        # Refuse a broken workflow before anything is uploaded.
        self.graph_for(request, seed=seed)
        images = tuple(self.upload_reference(ref) for ref in request.references)
        graph = self.graph_for(request, seed=seed, reference_images=images)
        # Newer servers keep our prompt_id; older ones answer their own.
        prompt_id = str(uuid.uuid4())
        response = self._request(
            "POST",
            "/prompt",
            "submit",
            json={"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id},
        )
        body = json_object(response, "submit")
        task_id = body.get("prompt_id")
        if not isinstance(task_id, str) or not task_id:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "submit: the answer has no prompt_id.",
                retryable=True,
                details=body,
            )
        raw = {"number": body.get("number"), "references": list(images), "seed": seed}
        if body.get("node_errors"):
            raw["node_errors"] = body["node_errors"]
        return Submission(task_id=task_id, poll_url=None, raw=raw)

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        self._require_url()
        item = self._history(task_id)
        if item is not None:
            return self.result_from_history(task_id, item)
        running, pending = self._queue()
        if task_id in running:
            return PollResult(ProviderState.PENDING, raw={"queue": "running"})
        if task_id in pending:
            return PollResult(
                ProviderState.PENDING,
                progress=0.0,
                raw={"queue": "pending", "position": pending.index(task_id) + 1},
            )
        # It may have finished between the two reads.
        item = self._history(task_id)
        if item is not None:
            return self.result_from_history(task_id, item)
        error = BackendError(
            ErrorClass.NOT_FOUND,
            "ComfyUI knows this prompt neither in its queue nor in its history (restarted, or history cleared).",
            retryable=False,
        )
        return PollResult(ProviderState.FAILED, error=error)

    def result_from_history(self, task_id: str, item: Mapping[str, Any]) -> PollResult:
        """Map one `/history/{id}` item onto a PollResult."""
        raw_status = item.get("status")
        status = raw_status if isinstance(raw_status, dict) else {}
        status_str = str(status.get("status_str") or "").lower()
        messages = status.get("messages")
        prompt = item.get("prompt")
        seed = (
            graph_seed(prompt[2])
            if isinstance(prompt, list | tuple) and len(prompt) > 2
            else None
        )
        raw = {"status": status_str, "prompt_id": task_id}

        interrupted = status_message(messages, "execution_interrupted")
        if interrupted is not None:
            node = interrupted.get("node_type") or interrupted.get("node_id") or "?"
            error = BackendError(
                ErrorClass.PROVIDER_ERROR,
                f"ComfyUI interrupted the prompt at node {node} (canceled).",
                retryable=False,
                details={"canceled": True, "event": interrupted},
            )
            return PollResult(ProviderState.FAILED, error=error, seed=seed, raw=raw)
        failure = status_message(messages, "execution_error")
        if status_str == "error" or failure is not None:
            failure = failure or {}
            exception_type = str(failure.get("exception_type") or "")
            message = str(
                failure.get("exception_message") or "no exception message"
            ).strip()
            node = f"{failure.get('node_type') or '?'} (node {failure.get('node_id') or '?'})"
            error = BackendError(
                ErrorClass.PROVIDER_ERROR,
                f"ComfyUI failed at {node}: {exception_type + ': ' if exception_type else ''}{message}",
                retryable="OutOfMemory" in exception_type
                or "out of memory" in message.lower(),
                details={
                    k: failure.get(k)
                    for k in (
                        "node_id",
                        "node_type",
                        "exception_type",
                        "exception_message",
                    )
                },
            )
            return PollResult(ProviderState.FAILED, error=error, seed=seed, raw=raw)

        image = self._output_image(item.get("outputs"))
        if image is None:
            if status_str == "success" or status.get("completed"):
                error = BackendError(
                    ErrorClass.BAD_RESULT,
                    "ComfyUI finished the prompt without an output image.",
                    retryable=False,
                )
                return PollResult(ProviderState.FAILED, error=error, seed=seed, raw=raw)
            # History written, status not final yet.
            return PollResult(ProviderState.PENDING, raw=raw)
        query = urlencode(
            {
                "filename": image["filename"],
                "subfolder": image.get("subfolder") or "",
                "type": image.get("type") or "output",
            }
        )
        return PollResult(
            ProviderState.READY,
            progress=1.0,
            result_url=f"{self.base_url}/view?{query}",
            seed=seed,
            raw={**raw, "image": image},
        )

    def fetch(self, result: PollResult) -> tuple[bytes, str]:
        if result.result_bytes is not None:
            return result.result_bytes, verify_image(
                result.result_bytes, max_pixels=None
            )
        if not result.result_url:
            raise BackendError(
                ErrorClass.BAD_RESULT, "fetch: the result has no URL.", retryable=False
            )
        self._require_url()
        params = self._view_params(result.result_url)
        try:
            with client().stream(
                "GET",
                f"{self.base_url}/view",
                params=params,
                headers=self.headers,
                auth=self.auth,
                timeout=self.fetch_timeout,
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise http_error(response, "fetch")
                data = read_image_body(
                    response, what="fetch", max_bytes=MAX_RESULT_BYTES
                )
        except httpx.HTTPError as exc:
            raise transport_error(exc, "fetch", unreachable=UNREACHABLE) from exc
        return data, verify_image(data, max_pixels=None)

    def cancel(self, *, task_id: str, poll_url: str | None) -> bool:
        """Drop the prompt from the queue, or interrupt it when it is running. False: already over."""
        self._require_url()
        running, pending = self._queue()
        if task_id in pending:
            self._request("POST", "/queue", "cancel", json={"delete": [task_id]})
            return True
        if task_id in running:
            # Newer servers interrupt only this prompt; older ones ignore the body and interrupt
            # whatever runs, which we just saw is ours.
            self._request("POST", "/interrupt", "cancel", json={"prompt_id": task_id})
            return True
        return False

    # Helpers

    def _require_url(self) -> None:
        if not self.base_url:
            raise BackendError(
                ErrorClass.AUTH, f"No ComfyUI server is configured ({ENV_URL})."
            )

    def _request(
        self, method: str, path: str, what: str, **kwargs: Any
    ) -> httpx.Response:
        return send(
            method,
            f"{self.base_url}{path}",
            what,
            timeout=self.timeout,
            error_for=http_error,
            unreachable=UNREACHABLE,
            headers=self.headers,
            auth=self.auth,
            **kwargs,
        )

    def _history(self, task_id: str) -> dict[str, Any] | None:
        body = json_object(self._request("GET", f"/history/{task_id}", "poll"), "poll")
        item = body.get(task_id)
        return item if isinstance(item, dict) else None

    def _queue(self) -> tuple[list[str], list[str]]:
        body = json_object(self._request("GET", "/queue", "queue"), "queue")
        return queue_ids(body.get("queue_running")), queue_ids(
            body.get("queue_pending")
        )

    @staticmethod
    def _output_image(outputs: Any) -> dict[str, Any] | None:
        """The first saved image (type "output", not a temp preview) in a history item's outputs."""
        if not isinstance(outputs, dict):
            return None
        for node_id in sorted(
            outputs, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k)
        ):
            for image in (outputs[node_id] or {}).get("images") or ():
                if (
                    isinstance(image, dict)
                    and image.get("filename")
                    and (image.get("type") or "output") == "output"
                ):
                    return image
        return None

    def _view_params(self, url: str) -> dict[str, str]:
        """The /view query of a result URL, which must point at the configured server."""
        parts, base = urlsplit(url), urlsplit(self.base_url)
        same_server = (parts.scheme, parts.netloc.lower()) == (
            base.scheme,
            base.netloc.lower(),
        )
        if not same_server or parts.path.rstrip("/") != f"{base.path.rstrip('/')}/view":
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"fetch: refused {url.split('?', 1)[0]}: not this ComfyUI server's /view.",
                retryable=False,
            )
        query = parse_qs(parts.query)
        params = {
            key: query[key][0]
            for key in ("filename", "subfolder", "type")
            if key in query
        }
        if not params.get("filename"):
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "fetch: the result URL names no file.",
                retryable=False,
            )
        return params


BACKEND_CLASS = ComfyUIBackend
