"""A fake ComfyUI server (docs/providers.md §5) over real HTTP on 127.0.0.1, for contract tests and
the engine's integration tests.

    with FakeComfyUI(latency=0.5) as fake:
        backend = ComfyUIBackend(fake.config())             # or override_settings(**fake.env())
        fake.inject("execution_error", exception_message="CUDA error")
        ...
        fake.graphs[prompt_id], fake.uploads, fake.counts["prompts"]

What it does (every route also under `/api`):
- `POST /upload/image` (multipart `image`, `type`, `subfolder`, `overwrite`) stores the file and
  answers `{"name", "subfolder", "type"}`; a clash with different content is renamed `name (1).png`
  unless `overwrite`, identical content keeps its name.
- `POST /prompt {"prompt", "client_id", "prompt_id"?}` validates the graph like ComfyUI (no prompt,
  missing class_type, unknown node class, no output node: 400 `error`; bad inputs: 400
  `node_errors` per node - missing required input, link to a missing node or a bad link, value not
  in the model list, LoadImage of a file never uploaded) plus checks that catch our own mistakes:
  the prompt text is a non-empty string in the CLIPTextEncode, the seed an integer in RandomNoise,
  the latent and the scheduler share one size (multiples of 16), and there are as many
  ReferenceLatent nodes as LoadImage nodes, chained one after another into the guider. Accepted
  prompts are queued (`prompt_id` kept when given, like newer servers) and answer `{"prompt_id",
  "number", "node_errors": {}}`.
- Execution is simulated without threads: the head of the queue runs for `latency` seconds, then
  its history item is written (status `success` with a real PNG of the latent's size in `outputs`,
  or `error` with `execution_error` / `execution_interrupted`) and the next one starts.
  `hold()` stops prompts from finishing until `release()`.
- `GET /history/{id}` (`{}` until finished), `GET /history`, `GET /queue`, `POST /queue {"delete":
  [...]} | {"clear": true}`, `POST /interrupt` (optional `{"prompt_id"}`: only that prompt), `GET
  /view?filename=&subfolder=&type=` (400 on `..` or an absolute name, 404 when missing), `GET
  /prompt`, `GET /system_stats`.
- `restart()` forgets the queue and the history, as a restarted ComfyUI does.
- Optional auth (a reverse proxy in front of ComfyUI): `token=` wants `Authorization: Bearer`,
  `basic=(user, password)` wants basic auth; otherwise 401.

Faults (`inject(kind, endpoint=..., times=1 | probability=p, **options)`; endpoint "prompt",
"upload", "history", "queue", "interrupt", "view" or "api" = all but "view"):
    server_error (500), unavailable (503), drop (close the socket without answering), slow (sleep
    `seconds`, then answer normally), malformed (200 with broken JSON; on view: corrupt PNG bytes),
    unauthorized (401), forbidden (403), not_found (404), wrong_content_type (200 text/html);
    outcomes for the next accepted prompts (endpoint "prompt"): node_errors (400, options node_id,
    message), execution_error (options exception_type, exception_message), oom (an
    execution_error with torch.OutOfMemoryError), no_output (success without images).

Thread-safe (one lock around all state). Serving, faults and counters: FakeServer
(tests/fakes/base.py).
"""

from __future__ import annotations

import hmac
import itertools
import json
import posixpath
import time
import uuid
from base64 import b64encode
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.base import (
    COMMON_FAULTS,
    Exchange,
    FakeServer,
    Fault,
    make_image,
    parse_multipart,
    result_image,
)

__all__ = ["FakeComfyUI", "make_image"]

HTTP_FAULTS = COMMON_FAULTS | {"not_found", "wrong_content_type"}
OUTCOMES = {"node_errors", "execution_error", "oom", "no_output"}
ENDPOINTS = ("prompt", "upload", "history", "queue", "interrupt", "view")
# kind -> (status, body, content type, headers) of the HTTP-level faults.
FAULT_ANSWERS: dict[str, tuple[int, bytes, str, dict[str, str]]] = {
    "server_error": (
        500,
        b"500 Internal Server Error\n\nServer got itself in trouble",
        "text/plain",
        {},
    ),
    "unavailable": (
        503,
        b"<html><body>503 Service Unavailable</body></html>",
        "text/html",
        {"Retry-After": "1"},
    ),
    "unauthorized": (401, b"401: Unauthorized", "text/plain", {}),
    "forbidden": (403, b"403: Forbidden", "text/plain", {}),
    "not_found": (404, b"404: Not Found", "text/plain", {}),
    "wrong_content_type": (200, b"<html><body>Login</body></html>", "text/html", {}),
}

LINK = "link"
# class_type → {input: kind}; kind LINK, "str", "int", "float", or a model folder name (a value that
# must be in that folder's list). Inputs named in OPTIONAL may be left out.
NODES: dict[str, dict[str, str]] = {
    "CLIPTextEncode": {"text": "str", "clip": LINK},
    "ConditioningZeroOut": {"conditioning": LINK},
    "VAEDecode": {"samples": LINK, "vae": LINK},
    "VAEEncode": {"pixels": LINK, "vae": LINK},
    "SaveImage": {"filename_prefix": "str", "images": LINK},
    "VAELoader": {"vae_name": "vae"},
    "UNETLoader": {"unet_name": "diffusion_models", "weight_dtype": "str"},
    "CLIPLoader": {"clip_name": "text_encoders", "type": "str", "device": "str"},
    "SamplerCustomAdvanced": {
        "noise": LINK,
        "guider": LINK,
        "sampler": LINK,
        "sigmas": LINK,
        "latent_image": LINK,
    },
    "KSamplerSelect": {"sampler_name": "str"},
    "BasicGuider": {"model": LINK, "conditioning": LINK},
    "CFGGuider": {"model": LINK, "positive": LINK, "negative": LINK, "cfg": "float"},
    "RandomNoise": {"noise_seed": "int"},
    "FluxGuidance": {"guidance": "float", "conditioning": LINK},
    "EmptyFlux2LatentImage": {"width": "int", "height": "int", "batch_size": "int"},
    "Flux2Scheduler": {"steps": "int", "width": "int", "height": "int"},
    "ReferenceLatent": {"conditioning": LINK, "latent": LINK},
    "ImageScaleToTotalPixels": {
        "upscale_method": "str",
        "megapixels": "float",
        "image": LINK,
    },
    "LoadImage": {"image": "str"},
}
OPTIONAL = {("CLIPLoader", "device"), ("ReferenceLatent", "latent")}
OUTPUT_NODES = {"SaveImage"}
DEFAULT_MODELS: dict[str, list[str]] = {
    "diffusion_models": [
        "flux2_dev_fp8mixed.safetensors",
        "flux2-dev.safetensors",
        "flux-2-klein-9b.safetensors",
    ],
    "text_encoders": [
        "mistral_3_small_flux2_bf16.safetensors",
        "mistral_3_small_flux2_fp8.safetensors",
        "qwen_3_8b_fp8mixed.safetensors",
    ],
    "vae": ["flux2-vae.safetensors"],
}


@dataclass
class Job:
    prompt_id: str
    number: int
    graph: dict[str, Any]
    client_id: str
    outcome: Fault | None
    started: float | None = None  # monotonic; set when it reaches the head of the queue
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def output_nodes(self) -> list[str]:
        return [k for k, n in self.graph.items() if n.get("class_type") in OUTPUT_NODES]

    def entry(self) -> list[Any]:
        """The /queue and history `prompt` tuple."""
        return [
            self.number,
            self.prompt_id,
            self.graph,
            {"client_id": self.client_id},
            self.output_nodes,
        ]


class FakeComfyUI(FakeServer):
    server_name = "fake-comfyui"
    HTTP_FAULTS = frozenset(HTTP_FAULTS)
    OUTCOMES = frozenset(OUTCOMES)
    API_ENDPOINTS = ("prompt", "upload", "history", "queue", "interrupt")
    OTHER_ENDPOINTS = ("view",)
    OUTCOME_ENDPOINT = "prompt"
    IMAGE_ENDPOINTS = ("view",)
    MALFORMED_JSON = b'{"prompt_id": "abc", "numb'

    def __init__(
        self,
        *,
        latency: float = 0.0,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        honour_prompt_id: bool = True,
        models: dict[str, list[str]] | None = None,
        **kw: Any,
    ) -> None:
        """`kw`: slow_seconds, host, port, seed (FakeServer's)."""
        super().__init__(**kw)
        self.latency = latency
        self.token = token
        self.basic = basic
        self.honour_prompt_id = honour_prompt_id
        self.models = {k: list(v) for k, v in (models or DEFAULT_MODELS).items()}
        self._files: dict[
            tuple[str, str, str], bytes
        ] = {}  # (type, subfolder, name) → bytes
        self._queue: list[Job] = []
        self._history: dict[str, dict[str, Any]] = {}
        self._graphs: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count(0)
        self._image_counter = itertools.count(1)
        self._held = False

    # Where to point a client

    def config(self, **extra: str) -> Any:
        """A BackendConfig for ComfyUIBackend pointing here (with this fake's auth, if any)."""
        from generation.backends.base import BackendConfig

        if self.basic:
            extra = {"username": self.basic[0], "password": self.basic[1], **extra}
        return BackendConfig(
            api_key=self.token or "", base_url=self.base_url, extra=extra
        )

    def env(self) -> dict[str, str]:
        return {"COMFYUI_URL": self.base_url}

    # Control and state for tests (counts: requests, uploads, prompts, rejected_prompts,
    # history_reads, queue_reads, interrupts, deletes, views, executed, faults, fault_<kind>)

    @property
    def graphs(self) -> dict[str, dict[str, Any]]:
        """Accepted graphs by prompt id."""
        with self._lock:
            return dict(self._graphs)

    @property
    def uploads(self) -> dict[tuple[str, str, str], bytes]:
        """Stored files by (type, subfolder, name)."""
        with self._lock:
            return dict(self._files)

    def hold(self) -> None:
        """Keep the running prompt running (and the rest queued) until release()."""
        with self._lock:
            self._held = True

    def release(self) -> None:
        with self._lock:
            self._held = False

    def state(self, prompt_id: str) -> str:
        """ "running", "pending", "done" or "unknown" (after advancing the clock)."""
        with self._lock:
            self._advance(time.monotonic())
            if prompt_id in self._history:
                return "done"
            for index, job in enumerate(self._queue):
                if job.prompt_id == prompt_id:
                    return "running" if index == 0 else "pending"
            return "unknown"

    def restart(self) -> None:
        with self._lock:
            self._queue.clear()
            self._history.clear()

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._files.clear()
            self._queue.clear()
            self._history.clear()
            self._graphs.clear()
            self._held = False

    # Uploads and views

    def store_upload(
        self, data: bytes, name: str, kind: str, subfolder: str, overwrite: bool
    ) -> dict[str, str]:
        base, dot, ext = name.rpartition(".")
        if not dot:
            base, ext = name, ""
        candidate = name
        with self._lock:
            for n in itertools.count(1):
                existing = self._files.get((kind, subfolder, candidate))
                if existing is None or existing == data or overwrite:
                    break
                candidate = f"{base} ({n}).{ext}" if ext else f"{base} ({n})"
            self._files[(kind, subfolder, candidate)] = data
            self._counts["uploads"] += 1
        return {"name": candidate, "subfolder": subfolder, "type": kind}

    def input_exists(self, value: str) -> bool:
        subfolder, _, name = value.rpartition("/")
        with self._lock:
            return ("input", subfolder, name) in self._files

    # Graph validation

    def validate(self, graph: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(error, node_errors) as ComfyUI's /prompt answers them; (None, {}) when the graph is good."""
        if not isinstance(graph, dict) or not graph:
            return _error("no_prompt", "No prompt provided", ""), {}
        for node_id, node in graph.items():
            if not isinstance(node, dict) or "class_type" not in node:
                return _error(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node_id}'",
                ), {}
            if node["class_type"] not in NODES:
                return _error(
                    "invalid_prompt",
                    f"Cannot execute because node {node['class_type']} does not exist.",
                    f"Node ID '#{node_id}'",
                ), {}
            if not isinstance(node.get("inputs"), dict):
                return _error(
                    "invalid_prompt", "Node has no inputs.", f"Node ID '#{node_id}'"
                ), {}
        if not any(node["class_type"] in OUTPUT_NODES for node in graph.values()):
            return _error("prompt_no_outputs", "Prompt has no outputs", ""), {}

        node_errors: dict[str, Any] = {}

        def problem(node_id: str, kind: str, message: str, details: str) -> None:
            entry = node_errors.setdefault(
                node_id,
                {
                    "errors": [],
                    "dependent_outputs": [],
                    "class_type": graph[node_id]["class_type"],
                },
            )
            entry["errors"].append(
                {"type": kind, "message": message, "details": details, "extra_info": {}}
            )

        for node_id, node in graph.items():
            class_type, inputs = node["class_type"], node["inputs"]
            for name, kind in NODES[class_type].items():
                if name not in inputs:
                    if (class_type, name) not in OPTIONAL:
                        problem(
                            node_id,
                            "required_input_missing",
                            "Required input is missing",
                            name,
                        )
                    continue
                value = inputs[name]
                if kind == LINK:
                    if not (
                        isinstance(value, list)
                        and len(value) == 2
                        and isinstance(value[0], str)
                        and isinstance(value[1], int)
                    ):
                        problem(
                            node_id,
                            "bad_linked_input",
                            "Bad linked input, must be a length-2 list of [string, int]",
                            f"{name}: {value!r}",
                        )
                    elif value[0] not in graph:
                        problem(
                            node_id,
                            "invalid_input_link",
                            "Linked node does not exist",
                            f"{name}: node {value[0]}",
                        )
                elif kind == "str" and not isinstance(value, str):
                    problem(
                        node_id,
                        "invalid_input_type",
                        "Value is not a string",
                        f"{name}: {value!r}",
                    )
                elif kind == "int" and (
                    isinstance(value, bool) or not isinstance(value, int)
                ):
                    problem(
                        node_id,
                        "invalid_input_type",
                        "Failed to convert an input value to a INT value",
                        f"{name}, {value!r}",
                    )
                elif kind == "float" and (
                    isinstance(value, bool) or not isinstance(value, int | float)
                ):
                    problem(
                        node_id,
                        "invalid_input_type",
                        "Failed to convert an input value to a FLOAT value",
                        f"{name}, {value!r}",
                    )
                elif kind in self.models and value not in self.models[kind]:
                    problem(
                        node_id,
                        "value_not_in_list",
                        "Value not in list",
                        f"{name}: '{value}' not in {self.models[kind]}",
                    )
            if (
                class_type == "LoadImage"
                and isinstance(inputs.get("image"), str)
                and not self.input_exists(inputs["image"])
            ):
                problem(
                    node_id,
                    "custom_validation_failed",
                    "Custom validation failed for node",
                    f"Invalid image file: {inputs['image']}",
                )
            if class_type == "EmptyFlux2LatentImage":
                for side in ("width", "height"):
                    value = inputs.get(side)
                    if isinstance(value, int) and (value < 16 or value % 16):
                        problem(
                            node_id,
                            "value_not_multiple",
                            "Value is not a multiple of 16",
                            f"{side}: {value}",
                        )
        if node_errors:
            return _error(
                "prompt_outputs_failed_validation",
                "Prompt outputs failed validation",
                "",
            ), node_errors
        mistake = _flux_mistake(graph)
        if mistake:
            node_id, message = mistake
            problem(
                node_id,
                "fake_graph_check",
                "The fake's FLUX.2 graph check failed",
                message,
            )
            return _error(
                "prompt_outputs_failed_validation",
                "Prompt outputs failed validation",
                "",
            ), node_errors
        return None, {}

    # Execution (lock held)

    def enqueue(
        self,
        graph: dict[str, Any],
        client_id: str,
        prompt_id: str | None,
        outcome: Fault | None,
    ) -> Job:
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            job = Job(
                prompt_id or str(uuid.uuid4()),
                next(self._numbers),
                graph,
                client_id,
                outcome,
            )
            if not self._queue:
                job.started = now
            self._queue.append(job)
            self._graphs[job.prompt_id] = graph
            self._counts["prompts"] += 1
            return job

    def _advance(self, now: float) -> None:  # lock held
        while self._queue and not self._held:
            head = self._queue[0]
            if head.started is None:
                head.started = now
            if now < head.started + self.latency:
                return
            finished = head.started + self.latency
            self._queue.pop(0)
            self._finish(head)
            if self._queue:
                self._queue[0].started = finished

    def _finish(self, job: Job, *, interrupted: bool = False) -> None:  # lock held
        stamp = int(time.time() * 1000)
        messages: list[Any] = [
            ["execution_start", {"prompt_id": job.prompt_id, "timestamp": stamp}]
        ]
        messages.append(
            [
                "execution_cached",
                {"prompt_id": job.prompt_id, "nodes": [], "timestamp": stamp},
            ]
        )
        outputs: dict[str, Any] = {}
        kind = job.outcome.kind if job.outcome is not None else "success"
        options = job.outcome.options if job.outcome is not None else {}
        sampler = next(
            (
                k
                for k, n in job.graph.items()
                if n["class_type"] == "SamplerCustomAdvanced"
            ),
            "13",
        )
        if interrupted:
            messages.append(
                [
                    "execution_interrupted",
                    {
                        "prompt_id": job.prompt_id,
                        "timestamp": stamp,
                        "node_id": sampler,
                        "node_type": "SamplerCustomAdvanced",
                        "executed": [],
                    },
                ]
            )
            status = "error"
        elif kind in ("execution_error", "oom"):
            oom = kind == "oom"
            messages.append(
                [
                    "execution_error",
                    {
                        "prompt_id": job.prompt_id,
                        "timestamp": stamp,
                        "node_id": options.get("node_id", sampler),
                        "node_type": options.get("node_type", "SamplerCustomAdvanced"),
                        "executed": [],
                        "exception_message": options.get(
                            "exception_message",
                            "Allocation on device"
                            if oom
                            else "mat1 and mat2 shapes cannot be multiplied",
                        ),
                        "exception_type": options.get(
                            "exception_type",
                            "torch.OutOfMemoryError" if oom else "RuntimeError",
                        ),
                        "traceback": [
                            "Traceback (most recent call last):\n",
                            "  ...\n",
                        ],
                        "current_inputs": {},
                        "current_outputs": {},
                    },
                ]
            )
            status = "error"
        else:
            if kind != "no_output":
                for node_id in job.output_nodes:
                    outputs[node_id] = {"images": [self._render(job, node_id)]}
            messages.append(
                ["execution_success", {"prompt_id": job.prompt_id, "timestamp": stamp}]
            )
            status = "success"
        self._history[job.prompt_id] = {
            "prompt": job.entry(),
            "outputs": outputs,
            "status": {
                "status_str": status,
                "completed": status == "success",
                "messages": messages,
            },
            "meta": {
                node_id: {
                    "node_id": node_id,
                    "display_node": node_id,
                    "prompt_id": job.prompt_id,
                }
                for node_id in outputs
            },
        }
        self._counts["executed"] += 1

    def _render(self, job: Job, node_id: str) -> dict[str, str]:  # lock held
        latent = next(
            (
                n["inputs"]
                for n in job.graph.values()
                if n["class_type"] == "EmptyFlux2LatentImage"
            ),
            {},
        )
        width, height = int(latent.get("width", 1024)), int(latent.get("height", 1024))
        serial = next(self._image_counter)
        colour = (
            self._rng.randrange(256),
            self._rng.randrange(256),
            self._rng.randrange(256),
        )
        data, _ = result_image(width, height, "PNG", colour, f"fake comfyui #{serial}")
        prefix = str(job.graph[node_id]["inputs"].get("filename_prefix") or "ComfyUI")
        subfolder, _, stem = prefix.rpartition("/")
        name = f"{stem}_{serial:05}_.png"
        self._files[("output", subfolder, name)] = data
        return {"filename": name, "subfolder": subfolder, "type": "output"}

    def queue_snapshot(self) -> tuple[list[list[Any]], list[list[Any]]]:
        with self._lock:
            self._advance(time.monotonic())
            entries = [job.entry() for job in self._queue]
            return entries[:1], entries[1:]

    def history_item(self, prompt_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._advance(time.monotonic())
            return self._history.get(prompt_id)

    def history_all(self, max_items: int | None) -> dict[str, Any]:
        with self._lock:
            self._advance(time.monotonic())
            items = list(self._history.items())
            return dict(items[-max_items:] if max_items else items)

    def delete(self, prompt_ids: list[str]) -> None:
        with self._lock:
            self._advance(time.monotonic())
            # The running prompt (the head) is not deleted; only the pending ones are.
            self._queue[1:] = [
                job for job in self._queue[1:] if job.prompt_id not in prompt_ids
            ]
            self._counts["deletes"] += 1

    def clear_queue(self) -> None:
        with self._lock:
            self._queue[1:] = []

    def interrupt(self, prompt_id: str | None) -> None:
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            self._counts["interrupts"] += 1
            if not self._queue or (
                prompt_id is not None and self._queue[0].prompt_id != prompt_id
            ):
                return
            head = self._queue.pop(0)
            self._finish(head, interrupted=True)
            if self._queue:
                self._queue[0].started = now

    # Faults

    def fault_response(self, ex: Exchange, fault: Fault, endpoint: str) -> None:
        if fault.kind == "malformed":
            super().fault_response(ex, fault, endpoint)
            return
        status, body, content_type, headers = FAULT_ANSWERS[fault.kind]
        ex.send(status, body, content_type, headers)

    def _authorised(self, ex: Exchange) -> bool:
        if self.token is None and self.basic is None:
            return True
        header = ex.headers.get("Authorization") or ""
        expected = []
        if self.token is not None:
            expected.append(f"Bearer {self.token}")
        if self.basic is not None:
            expected.append(
                "Basic "
                + b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            )
        if any(hmac.compare_digest(header.encode(), e.encode()) for e in expected):
            return True
        ex.send(
            401,
            b"401: Unauthorized",
            "text/plain",
            {"WWW-Authenticate": 'Basic realm="comfyui"'},
        )
        return False

    def _prelude(self, ex: Exchange, endpoint: str) -> bool:
        """Count, answer an injected fault, check auth. False: already answered."""
        self.count("requests")
        return not self.http_fault(ex, endpoint) and self._authorised(ex)

    # Routes (every one also under /api)

    def dispatch(self, ex: Exchange) -> None:
        route = ex.route
        path = route.removeprefix("/api") if route.startswith("/api/") else route
        if ex.command == "GET":
            self._get(ex, path)
        elif ex.command == "POST":
            self._post(ex, path)
        else:
            ex.send_error(501, f"Unsupported method ({ex.command!r})")

    def _get(self, ex: Exchange, path: str) -> None:
        query = ex.query
        if path.startswith("/history"):
            if not self._prelude(ex, "history"):
                return
            self.count("history_reads")
            prompt_id = path[len("/history/") :] if path.startswith("/history/") else ""
            if prompt_id:
                item = self.history_item(prompt_id)
                ex.json(200, {prompt_id: item} if item is not None else {})
            else:
                max_items = query.get("max_items", "")
                ex.json(
                    200,
                    self.history_all(int(max_items) if max_items.isdigit() else None),
                )
        elif path == "/queue":
            if not self._prelude(ex, "queue"):
                return
            self.count("queue_reads")
            running, pending = self.queue_snapshot()
            ex.json(200, {"queue_running": running, "queue_pending": pending})
        elif path == "/view":
            if not self._prelude(ex, "view"):
                return
            self.count("views")
            self._view(ex, query)
        elif path == "/prompt":
            if self._prelude(ex, "queue"):
                running, pending = self.queue_snapshot()
                ex.json(
                    200, {"exec_info": {"queue_remaining": len(running) + len(pending)}}
                )
        elif path == "/system_stats":
            if self._prelude(ex, "queue"):
                ex.json(
                    200,
                    {
                        "system": {"os": "posix", "comfyui_version": "0.3.99-fake"},
                        "devices": [],
                    },
                )
        else:
            ex.send(404, b"404: Not Found", "text/plain")

    def _view(self, ex: Exchange, query: dict[str, str]) -> None:
        name = query.get("filename", "")
        subfolder = query.get("subfolder", "")
        kind = query.get("type", "output")
        if (
            not name
            or ".." in name
            or name.startswith("/")
            or kind not in ("output", "input", "temp")
        ):
            ex.send(400, b"400: Bad Request", "text/plain")
            return
        if posixpath.isabs(subfolder) or ".." in subfolder.split("/"):
            ex.send(403, b"403: Forbidden", "text/plain")
            return
        with self._lock:
            data = self._files.get((kind, subfolder, name))
        if data is None:
            ex.send(404, b"404: Not Found", "text/plain")
            return
        ex.send(200, data, "image/png", {"Content-Disposition": f'filename="{name}"'})

    def _post(self, ex: Exchange, path: str) -> None:
        raw = ex.raw_body
        if path == "/upload/image":
            if self._prelude(ex, "upload"):
                self._upload(ex)
        elif path == "/prompt":
            if self._prelude(ex, "prompt"):
                self._prompt(ex)
        elif path == "/queue":
            if not self._prelude(ex, "queue"):
                return
            body = _json_or_none(raw) or {}
            if body.get("clear"):
                self.clear_queue()
            if isinstance(body.get("delete"), list):
                self.delete([str(i) for i in body["delete"]])
            ex.send(200, b"", "text/plain")
        elif path == "/interrupt":
            if not self._prelude(ex, "interrupt"):
                return
            body = _json_or_none(raw)
            prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
            self.interrupt(str(prompt_id) if prompt_id else None)
            ex.send(200, b"", "text/plain")
        else:
            ex.send(404, b"404: Not Found", "text/plain")

    def _upload(self, ex: Exchange) -> None:
        try:
            parts = {
                part.name: part
                for part in parse_multipart(
                    ex.headers.get("Content-Type", ""), ex.raw_body
                )
            }
        except ValueError:
            ex.send(400, b"400: Bad Request", "text/plain")
            return
        image = parts.get("image")
        if image is None or not image.filename:
            ex.send(400, b"400: Bad Request", "text/plain")
            return
        kind = parts["type"].data.decode() if "type" in parts else "input"
        subfolder = parts["subfolder"].data.decode() if "subfolder" in parts else ""
        overwrite = (
            parts["overwrite"].data.decode().lower() in ("true", "1")
            if "overwrite" in parts
            else False
        )
        name = posixpath.basename(image.filename)
        if (
            kind not in ("input", "temp", "output")
            or ".." in subfolder.split("/")
            or posixpath.isabs(subfolder)
        ):
            ex.send(400, b"400: Bad Request", "text/plain")
            return
        ex.json(200, self.store_upload(image.data, name, kind, subfolder, overwrite))

    def _prompt(self, ex: Exchange) -> None:
        body = _json_or_none(ex.raw_body)
        if not isinstance(body, dict) or "prompt" not in body:
            self.count("rejected_prompts")
            ex.json(
                400,
                {
                    "error": _error("no_prompt", "No prompt provided", ""),
                    "node_errors": {},
                },
            )
            return
        error, node_errors = self.validate(body["prompt"])
        outcome = None
        if error is None:
            outcome = self.take_fault("prompt", self.OUTCOMES)
            if outcome is not None and outcome.kind == "node_errors":
                node_id = str(
                    outcome.options.get("node_id", next(iter(body["prompt"])))
                )
                node = body["prompt"].get(node_id, {})
                error = _error(
                    "prompt_outputs_failed_validation",
                    "Prompt outputs failed validation",
                    "",
                )
                message = outcome.options.get("message", "Value not in list")
                details = outcome.options.get(
                    "details", "unet_name: 'flux2_dev_fp8mixed.safetensors' not in []"
                )
                node_errors = {
                    node_id: {
                        "errors": [
                            {
                                "type": "value_not_in_list",
                                "message": message,
                                "details": details,
                                "extra_info": {},
                            }
                        ],
                        "dependent_outputs": [],
                        "class_type": node.get("class_type", "?"),
                    }
                }
                outcome = None
        if error is not None:
            self.count("rejected_prompts")
            ex.json(400, {"error": error, "node_errors": node_errors})
            return
        prompt_id = body.get("prompt_id") if self.honour_prompt_id else None
        job = self.enqueue(
            body["prompt"],
            str(body.get("client_id") or ""),
            str(prompt_id) if prompt_id else None,
            outcome,
        )
        ex.json(
            200, {"prompt_id": job.prompt_id, "number": job.number, "node_errors": {}}
        )


def _error(kind: str, message: str, details: str) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def _flux_mistake(graph: dict[str, Any]) -> tuple[str, str] | None:
    """A structural mistake in a FLUX.2 graph that ComfyUI would execute but get wrong."""

    def ids(class_type: str) -> list[str]:
        return [k for k, n in graph.items() if n["class_type"] == class_type]

    for node_id in ids("CLIPTextEncode"):
        text = graph[node_id]["inputs"].get("text")
        if not isinstance(text, str) or not text.strip():
            return node_id, "the prompt text is empty"
    for node_id in ids("RandomNoise"):
        seed = graph[node_id]["inputs"].get("noise_seed")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            return node_id, f"noise_seed {seed!r} is not a 64-bit unsigned integer"
    latents, schedulers = ids("EmptyFlux2LatentImage"), ids("Flux2Scheduler")
    for latent in latents:
        for scheduler in schedulers:
            a, b = graph[latent]["inputs"], graph[scheduler]["inputs"]
            if (a.get("width"), a.get("height")) != (b.get("width"), b.get("height")):
                return (
                    scheduler,
                    "the scheduler's width/height differ from the latent's",
                )
    references, loads = ids("ReferenceLatent"), ids("LoadImage")
    if len(references) != len(loads):
        return (references or loads)[
            0
        ], f"{len(references)} ReferenceLatent nodes for {len(loads)} LoadImage nodes"
    if not references:
        return None
    guiders = ids("BasicGuider") + ids("CFGGuider")
    if len(guiders) != 1:
        return references[0], "reference latents need exactly one guider"
    guider = graph[guiders[0]]
    link = guider["inputs"].get(
        "conditioning" if guider["class_type"] == "BasicGuider" else "positive"
    )
    chained = 0
    while (
        isinstance(link, list)
        and graph.get(link[0], {}).get("class_type") == "ReferenceLatent"
    ):
        chained += 1
        node = graph[link[0]]["inputs"]
        latent = node.get("latent")
        if not (
            isinstance(latent, list)
            and graph.get(latent[0], {}).get("class_type") == "VAEEncode"
        ):
            return link[0], "a ReferenceLatent's latent is not a VAEEncode"
        link = node.get("conditioning")
    if chained != len(references):
        return (
            references[0],
            f"only {chained} of {len(references)} ReferenceLatent nodes are chained into the guider",
        )
    return None


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
