"""The self-hosted ComfyUI backend (docs/providers.md §5).

Protocol in short: references go up first with `POST /upload/image` (multipart); then `POST /prompt
{"prompt": <API-format graph>, "client_id", "prompt_id"}` queues the project's FLUX.2 workflow
(comfyui_workflows/*.json) and answers `{"prompt_id", "number", "node_errors"}` (a graph that fails
validation: 400 with `error` and `node_errors`). `GET /history/{prompt_id}` is `{}` until the prompt
finished, then holds its status (`success` / `error`, with `execution_error` or
`execution_interrupted` among the messages) and its output images, which `GET /view?filename=
&subfolder=&type=` serves. `POST /queue {"delete": [id]}` drops a queued prompt, `POST /interrupt`
stops the running one.

Progress is followed through the history endpoint, not the websocket: the engine never blocks
(submit returns, then poll() is called on a schedule), and a websocket only helps a client that
stays connected while the prompt runs. Reading `/history/{id}` (and `/queue` while that is empty)
in each poll fits that model, needs no extra dependency and survives worker restarts; the cost is
no per-step progress (the queue position is reported instead).

Configuration (`BackendConfig`):
    base_url    the server, e.g. http://gpu-box:8188 (falls back to COMFYUI_URL); a path prefix
                (reverse proxy, or ComfyUI's `/api`) is kept
    api_key     optional: sent as `Authorization: Bearer` (ComfyUI has no auth; a proxy may)
    extra       "username" / "password": HTTP basic auth instead of the bearer token;
                "price_per_image": USD per image for routing (default 0; COMFYUI_PRICE_PER_IMAGE);
                "workflow_dir": a folder whose flux2_dev.json / flux2_klein.json replace the shipped
                    ones (other model file names, samplers...; COMFYUI_WORKFLOW_DIR);
                "client_id"; "connect_timeout", "read_timeout", "fetch_timeout" (seconds).

Decisions worth knowing:
    - The shipped graphs are text-to-image; the backend inserts one LoadImage →
      ImageScaleToTotalPixels (1 MP) → VAEEncode → ReferenceLatent chain per reference, each
      ReferenceLatent taking the previous one's conditioning, the last feeding the guider
      (docs/providers.md §5.3). Nodes are found by class_type, so a replacement workflow only needs one
      CLIPTextEncode, RandomNoise, EmptyFlux2LatentImage, Flux2Scheduler, VAELoader, SaveImage and a
      BasicGuider or CFGGuider.
    - References are uploaded under content-addressed names (`flux-studio/ref-<sha256>.png`):
      ComfyUI keeps an identical file's name, so a retried submit re-uses the upload.
    - A missing seed is drawn here, because RandomNoise needs one; the seed used is read back from
      the history's graph.
    - An interrupted prompt is FAILED with details {"canceled": True}; an execution error is
      FAILED, retryable only for out-of-memory errors.
    - A prompt in neither the history nor the queue is FAILED/NOT_FOUND (the server restarted:
      ComfyUI keeps both in memory only).
"""

from __future__ import annotations

import copy
import hashlib
import json
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
    ModelSpec,
    ParamRule,
    PollResult,
    ProviderState,
    ReferenceInput,
    RuleViolation,
    Submission,
)
from generation.backends.download import read_image_body, verify_image
from generation.backends.transport import (
    STATUS_CLASSES,
    client,
    json_object,
    json_or_none,
    parse_retry_after,
    send,
    status_error,
    timeouts,
    transport_error,
)

ENV_URL = "COMFYUI_URL"
ENV_PRICE = "COMFYUI_PRICE_PER_IMAGE"
ENV_WORKFLOW_DIR = "COMFYUI_WORKFLOW_DIR"
WORKFLOW_DIR = Path(__file__).resolve().parent / "comfyui_workflows"
UPLOAD_SUBFOLDER = "flux-studio"
MEGAPIXEL = 1024 * 1024
MAX_RESULT_BYTES = 128 * 1024 * 1024
SEED_LIMIT = 2**53  # exact in JSON numbers everywhere

# Step and guidance ranges are ours (docs/providers.md gives only defaults: 20 steps, guidance 4);
# they keep a self-hosted GPU from being tied up by a typo.
_DEV_RULES = {"steps": ParamRule("int", 1, 100), "guidance": ParamRule("float", 0, 100)}
_KLEIN_RULES = {"steps": ParamRule("int", 1, 50)}


def _spec(
    model: str, workflow: str, max_references: int, rules: Mapping[str, ParamRule]
) -> ModelSpec:
    return ModelSpec(
        model=model,
        provider_model=workflow,  # the workflow file that serves it
        max_references=max_references,
        max_megapixels=4 * MEGAPIXEL / 1_000_000,  # FLUX.2's 4 MP output limit
        min_side=64,
        max_side=4096,
        dimension_step=16,  # EmptyFlux2LatentImage step
        params=frozenset(rules),
        param_rules=rules,
    )


MODELS: dict[str, ModelSpec] = {
    spec.model: spec
    for spec in (
        # "BFL recommends <= 6 for [dev]" (docs/providers.md §0 and 1.8).
        _spec("flux-2-dev", "flux2_dev.json", 6, _DEV_RULES),
        # Community workflow (docs/providers.md §5.3, unconfirmed); BFL's [klein] limit of 4 references.
        _spec("flux-2-klein-9b", "flux2_klein.json", 4, _KLEIN_RULES),
    )
}


# --- The workflow graph -------------------------------------------------------------------------


class WorkflowError(BackendError):
    """A workflow file does not have the nodes the backend fills in."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorClass.INVALID_REQUEST, message, retryable=False)


def load_workflow(name: str, directory: Path | None = None) -> dict[str, Any]:
    """A workflow from `directory` when it has one by that name, else the shipped one."""
    path = (
        (directory / name)
        if directory is not None and (directory / name).is_file()
        else WORKFLOW_DIR / name
    )
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WorkflowError(f"cannot read the ComfyUI workflow {path}: {exc}") from exc
    if not isinstance(graph, dict) or not all(
        isinstance(n, dict) and "class_type" in n for n in graph.values()
    ):
        raise WorkflowError(f"{path} is not an API-format ComfyUI graph.")
    return graph


def _only(graph: Mapping[str, Any], *class_types: str) -> str:
    found = [
        node_id
        for node_id, node in graph.items()
        if node.get("class_type") in class_types
    ]
    if len(found) != 1:
        raise WorkflowError(
            f"the workflow needs exactly one {' or '.join(class_types)} node (found {len(found)})."
        )
    return found[0]


def _next_id(graph: Mapping[str, Any]) -> int:
    return max((int(k) for k in graph if k.isdigit()), default=0) + 1


def build_graph(
    template: Mapping[str, Any],
    *,
    prompt: str,
    seed: int,
    width: int,
    height: int,
    steps: int | None = None,
    guidance: float | None = None,
    reference_images: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The graph to queue: the template with the request filled in and one reference chain per image.

    `reference_images` are LoadImage values (uploaded names, "subfolder/name").
    """
    graph = copy.deepcopy(dict(template))
    graph[_only(graph, "CLIPTextEncode")]["inputs"]["text"] = prompt
    graph[_only(graph, "RandomNoise")]["inputs"]["noise_seed"] = seed
    latent = graph[_only(graph, "EmptyFlux2LatentImage")]["inputs"]
    latent.update(width=width, height=height, batch_size=1)
    scheduler = graph[_only(graph, "Flux2Scheduler")]["inputs"]
    # The scheduler's shift depends on the size: it must get the latent's.
    scheduler.update(width=width, height=height)
    if steps is not None:
        scheduler["steps"] = steps
    if guidance is not None:
        graph[_only(graph, "FluxGuidance")]["inputs"]["guidance"] = guidance
    vae = _only(graph, "VAELoader")
    _only(graph, "SaveImage")
    guider_id = _only(graph, "BasicGuider", "CFGGuider")
    guider = graph[guider_id]["inputs"]
    slot = (
        "conditioning"
        if graph[guider_id]["class_type"] == "BasicGuider"
        else "positive"
    )
    conditioning = guider[slot]
    next_id = _next_id(graph)
    for index, image in enumerate(reference_images, start=1):
        load, scale, encode, reference = (str(next_id + k) for k in range(4))
        next_id += 4
        graph[load] = {
            "class_type": "LoadImage",
            "inputs": {"image": image},
            "_meta": {"title": f"Reference {index}"},
        }
        graph[scale] = {
            "class_type": "ImageScaleToTotalPixels",
            "inputs": {
                "upscale_method": "lanczos",
                "megapixels": 1,
                "image": [load, 0],
            },
        }
        graph[encode] = {
            "class_type": "VAEEncode",
            "inputs": {"pixels": [scale, 0], "vae": [vae, 0]},
        }
        graph[reference] = {
            "class_type": "ReferenceLatent",
            "inputs": {"conditioning": conditioning, "latent": [encode, 0]},
        }
        conditioning = [reference, 0]
    guider[slot] = conditioning
    return graph


def graph_seed(graph: Any) -> int | None:
    """The RandomNoise seed of a queued graph (as history returns it)."""
    if not isinstance(graph, dict):
        return None
    for node in graph.values():
        if isinstance(node, dict) and node.get("class_type") == "RandomNoise":
            seed = (node.get("inputs") or {}).get("noise_seed")
            return (
                seed if isinstance(seed, int) and not isinstance(seed, bool) else None
            )
    return None


# --- HTTP errors -------------------------------------------------------------------------------

# ComfyUI has no billing: a 402 (from a proxy) is just a refused request.
STATUS = {code: cls for code, cls in STATUS_CLASSES.items() if code != 402}
UNREACHABLE = "cannot reach ComfyUI"


def node_error_messages(node_errors: Any) -> list[str]:
    """One line per error in ComfyUI's `node_errors` map."""
    lines = []
    if not isinstance(node_errors, dict):
        return lines
    for node_id, entry in node_errors.items():
        if not isinstance(entry, dict):
            continue
        class_type = entry.get("class_type") or "?"
        for error in entry.get("errors") or ():
            if not isinstance(error, dict):
                continue
            text = str(error.get("message") or error.get("type") or "error")
            if details := str(error.get("details") or "").strip():
                text += f": {details}"
            lines.append(f"node {node_id} ({class_type}): {text}")
    return lines


def http_error(response: httpx.Response, what: str) -> BackendError:
    """Map a non-2xx ComfyUI answer (or a proxy's in front of it) onto our error classes."""
    code = response.status_code
    body = json_or_none(response)
    parts = []
    details: dict[str, Any] = {}
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            parts.append(str(error.get("message") or error.get("type") or "error"))
            if (
                extra := str(error.get("details") or "").strip()
            ) and extra not in parts[0]:
                parts[0] += f": {extra}"
            details["error"] = error
        elif error:
            parts.append(str(error))
        parts.extend(node_error_messages(body.get("node_errors")))
        if body.get("node_errors"):
            details["node_errors"] = body["node_errors"]
    if not parts:
        parts.append(" ".join(response.text[:300].split()) or response.reason_phrase)
        details["body"] = response.text[:1000]
    return status_error(
        code,
        f"{what}: HTTP {code}: " + "; ".join(parts),
        classes=STATUS,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        details=details,
    )


def _message(messages: Any, kind: str) -> dict[str, Any] | None:
    """The data of the first `kind` event in a history item's status messages."""
    for entry in messages or ():
        if isinstance(entry, list | tuple) and len(entry) == 2 and entry[0] == kind:
            return entry[1] if isinstance(entry[1], dict) else {}
    return None


def _queue_ids(entries: Any) -> list[str]:
    """Prompt ids of `queue_running` / `queue_pending` entries ([number, prompt_id, prompt, ...])."""
    ids = []
    for entry in entries or ():
        if isinstance(entry, list | tuple) and len(entry) > 1:
            ids.append(str(entry[1]))
    return ids


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
        status = item.get("status") if isinstance(item.get("status"), dict) else {}
        status_str = str(status.get("status_str") or "").lower()
        messages = status.get("messages")
        prompt = item.get("prompt")
        seed = (
            graph_seed(prompt[2])
            if isinstance(prompt, list | tuple) and len(prompt) > 2
            else None
        )
        raw = {"status": status_str, "prompt_id": task_id}

        interrupted = _message(messages, "execution_interrupted")
        if interrupted is not None:
            node = interrupted.get("node_type") or interrupted.get("node_id") or "?"
            error = BackendError(
                ErrorClass.PROVIDER_ERROR,
                f"ComfyUI interrupted the prompt at node {node} (canceled).",
                retryable=False,
                details={"canceled": True, "event": interrupted},
            )
            return PollResult(ProviderState.FAILED, error=error, seed=seed, raw=raw)
        failure = _message(messages, "execution_error")
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
        return _queue_ids(body.get("queue_running")), _queue_ids(
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
