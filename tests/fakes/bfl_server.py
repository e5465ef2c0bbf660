"""A fake Black Forest Labs API speaking the documented protocol (providers.md section 1) over real
HTTP on 127.0.0.1, for contract tests, the engine's integration tests and the benchmark.

    with FakeBFL(latency=2.0, concurrency=24) as fake:
        backend = BFLBackend(fake.config())                  # or os.environ.update(fake.env())
        fake.inject("rate_limit", endpoint="submit", times=2, retry_after=3)
        ...
        fake.counts["submissions"], fake.counts["polls"], fake.max_active

What it does:
- `POST /v1/{model}` checks `x-key` (missing: 401, wrong: 403), validates the documented body per
  model strictly (unknown fields too) and answers 422 in FastAPI's `detail` shape; beyond
  `concurrency` active tasks it answers 429 with Retry-After. It answers `{id, polling_url, cost,
  input_mp, output_mp}`; `polling_url` names the other host alias (`localhost` when the base URL is
  `127.0.0.1`) and carries a `cluster` parameter: a poll that arrives on another host or without
  it gets 404, so a client that rebuilds the URL is caught (counted as `misrouted_polls`).
- `GET /v1/get_result?id=` never blocks: a task is Pending (with progress) until `latency`
  seconds after its submit, then Ready with `result.sample` = a signed delivery URL on this server
  (`/delivery/<id>.<ext>?se=<expiry>&...&sig=`) that serves a real JPEG/PNG/WebP of the requested
  size (unique bytes per task) until `url_ttl` seconds after it became ready, then answers 403
  `AuthenticationFailed` like Azure does.
- `GET /v1/credits` answers `{"credits": ...}`.
- With `webhook_url` in the body it POSTs the result there when the task finishes, signed
  `X-BFL-Signature: sha256=<hex>` with the body's `webhook_secret`, retrying after
  `webhook_retry_delays` seconds when the receiver does not answer 2xx.

Faults (`inject(kind, endpoint=..., times=1 | probability=p, **options)`; endpoint "submit",
"poll", "delivery", "credits", "webhook" or "api" = any of the first four):
    rate_limit (429; options retry_after=seconds, header="seconds"|"date"|"none" - "none" puts
    retry_after only in the body), server_error (500), unavailable (503), drop (close the socket
    without answering), slow (sleep `seconds`, default `slow_seconds`, then answer normally - a slow
    submit still creates its task), malformed (200 with broken JSON; on delivery: corrupt image
    bytes), unauthorized (401), forbidden (403), payment_required (402), bad_request (400,
    error/message body), validation (422, detail body);
    task outcomes, on "poll" (that poll and the task from then on) or "submit" (the next tasks
    created; request_moderated shows at once, the others after the latency): request_moderated,
    content_moderated (options reasons=[...]), error, failed, not_found;
    delivery only: expired (403 AuthenticationFailed), wrong_content_type (200 text/html),
    redirect (302 to options location=...);
    webhook only: bad_signature, unsigned, skip (send nothing), duplicate (send twice).
A task can also be steered from its prompt: "[fake:content_moderated]", "[fake:latency=0.5]".

Thread-safe; handles hundreds of concurrent connections (ThreadingHTTPServer, daemon threads,
listen backlog 1024, HTTP/1.1 keep-alive). `python -m tests.fakes.bfl_server --latency 2` runs it
standalone and prints the environment to point the studio at it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import heapq
import hmac
import io
import itertools
import json
import random
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from PIL import Image, ImageDraw

# Model → (max input images, output formats). providers.md 1.3/1.4.
MODELS: dict[str, tuple[int, tuple[str, ...]]] = {
    "flux-2-pro": (8, ("jpeg", "png")),
    "flux-2-pro-preview": (8, ("jpeg", "png")),
    "flux-2-max": (8, ("jpeg", "png")),
    "flux-2-flex": (8, ("jpeg", "png")),
    "flux-2-klein-4b": (4, ("jpeg", "png")),
    "flux-2-klein-9b": (4, ("jpeg", "png")),
    "flux-2-klein-9b-preview": (4, ("jpeg", "png", "webp")),
}
FLEX_FIELDS = ("steps", "guidance", "prompt_upsampling", "input_image_blob_path")
# Cents: first output MP, each extra output MP, each input MP (providers.md 1.12).
PRICES: dict[str, tuple[float, float, float]] = {
    "flux-2-pro": (3, 1.5, 1.5),
    "flux-2-pro-preview": (3, 1.5, 1.5),
    "flux-2-max": (7, 3, 3),
    "flux-2-flex": (5, 5, 5),
    "flux-2-klein-4b": (1.4, 0.1, 0.1),
    "flux-2-klein-9b": (1.5, 0.2, 0.2),
    "flux-2-klein-9b-preview": (1.5, 0.2, 0.2),
}
MAX_PIXELS = 2048 * 2048

HTTP_FAULTS = {
    "rate_limit",
    "server_error",
    "unavailable",
    "drop",
    "slow",
    "malformed",
    "unauthorized",
    "forbidden",
    "payment_required",
    "bad_request",
    "validation",
}
OUTCOMES = {
    "request_moderated": "Request Moderated",
    "content_moderated": "Content Moderated",
    "error": "Error",
    "failed": "Failed",
    "not_found": "Task not found",
}
DELIVERY_FAULTS = {"expired", "wrong_content_type", "redirect"}
WEBHOOK_FAULTS = {"bad_signature", "unsigned", "skip", "duplicate"}
API_ENDPOINTS = ("submit", "poll", "delivery", "credits")
_TAG = re.compile(r"\[fake:([a-z_]+)(?:=([0-9.]+))?\]")


def make_image(
    width: int = 64,
    height: int = 64,
    fmt: str = "PNG",
    colour: tuple[int, int, int] = (40, 90, 160),
) -> bytes:
    """A small real image (for references in tests)."""
    image = Image.new("RGB", (width, height), colour)
    ImageDraw.Draw(image).rectangle(
        [width // 4, height // 4, width // 2, height // 2], fill=(240, 200, 40)
    )
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Fault:
    kind: str
    endpoint: str
    times: int | None  # None: until cleared
    probability: float | None
    options: dict[str, Any]
    fired: int = 0


@dataclass
class FakeTask:
    id: str
    model: str
    body: dict[str, Any]
    created: float  # monotonic
    ready_at: float  # monotonic
    ready_wall: datetime
    outcome: str = "ready"  # or a key of OUTCOMES
    outcome_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    polls: int = 0
    deliveries: int = 0
    webhooks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def width(self) -> int:
        return int(self.body.get("width") or 1024)

    @property
    def height(self) -> int:
        return int(self.body.get("height") or 1024)

    @property
    def format(self) -> str:
        return str(self.body.get("output_format") or "jpeg")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    block_on_close = False
    fake: FakeBFL

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the game


class FakeBFL:
    def __init__(
        self,
        *,
        api_key: str = "bfl_test_key",
        latency: float = 0.0,
        concurrency: int = 24,
        url_ttl: float = 600.0,
        slow_seconds: float = 2.0,
        retry_after: float | None = None,
        result_size: tuple[int, int] | None = None,
        webhook_retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0),
        credits: float = 1000.0,
        host: str = "127.0.0.1",
        alias: str | None = None,
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.concurrency = concurrency
        self.url_ttl = url_ttl
        self.slow_seconds = slow_seconds
        self.retry_after = (
            retry_after  # None: seconds until the next active task finishes
        )
        self.result_size = result_size  # None: the requested size
        self.webhook_retry_delays = webhook_retry_delays
        self.credits = credits
        self.host = host
        self.alias = alias or ("localhost" if host == "127.0.0.1" else "127.0.0.1")
        self.cluster = "fake-eu2"
        self._port = port
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._signing_key = uuid.uuid4().bytes
        self._tasks: dict[str, FakeTask] = {}
        self._active: set[str] = set()
        self._heap: list[tuple[float, str]] = []
        self._faults: list[Fault] = []
        self._counts: Counter[str] = Counter()
        self._bodies: list[dict[str, Any]] = []
        self._images: dict[tuple[int, int, str, int], bytes] = {}
        self.max_active = 0
        self.webhook_log: list[dict[str, Any]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._webhooks = _WebhookSender(self)

    # Lifecycle

    def start(self) -> FakeBFL:
        server = _Server((self.host, self._port), _Handler)
        server.fake = self
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._webhooks.start()
        return self

    def stop(self) -> None:
        self._webhooks.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBFL:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Where to point a client

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def poll_base(self) -> str:
        return f"http://{self.alias}:{self._port}"

    @property
    def allowed_hosts(self) -> str:
        return f"{self.host},{self.alias}"

    def config(self, **extra: str) -> Any:
        """A BackendConfig for BFLBackend pointing here (extra: read_timeout=..., ...)."""
        from generation.backends.base import BackendConfig

        return BackendConfig(
            api_key=self.api_key,
            base_url=self.base_url,
            extra={"allowed_hosts": self.allowed_hosts, **extra},
        )

    def env(self) -> dict[str, str]:
        """Environment for a worker process: BFL_API_KEY, BFL_API_URL, BFL_ALLOWED_HOSTS."""
        return {
            "BFL_API_KEY": self.api_key,
            "BFL_API_URL": self.base_url,
            "BFL_ALLOWED_HOSTS": self.allowed_hosts,
        }

    # Faults

    def inject(
        self,
        kind: str,
        *,
        endpoint: str | None = None,
        times: int | None = None,
        probability: float | None = None,
        **options: Any,
    ) -> Fault:
        """Make the next `times` matching requests (default 1), or each with `probability`, fail."""
        if endpoint is None:
            endpoint = (
                "poll"
                if kind in OUTCOMES
                else "delivery"
                if kind in DELIVERY_FAULTS
                else "webhook"
                if kind in WEBHOOK_FAULTS
                else "api"
            )
        known = HTTP_FAULTS | set(OUTCOMES) | DELIVERY_FAULTS | WEBHOOK_FAULTS
        if kind not in known:
            raise ValueError(
                f"unknown fault {kind!r}; known: {', '.join(sorted(known))}"
            )
        if endpoint not in (*API_ENDPOINTS, "api", "webhook"):
            raise ValueError(f"unknown endpoint {endpoint!r}")
        if times is None and probability is None:
            times = 1
        fault = Fault(kind, endpoint, times, probability, options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, endpoint: str, kinds: set[str] | None = None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint != endpoint and not (
                    fault.endpoint == "api" and endpoint in API_ENDPOINTS
                ):
                    continue
                if kinds is not None and fault.kind not in kinds:
                    continue
                if (
                    fault.probability is not None
                    and self._rng.random() >= fault.probability
                ):
                    continue
                fault.fired += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                self._counts["faults"] += 1
                self._counts[f"fault_{fault.kind}"] += 1
                return fault
        return None

    # Counters and state for tests

    @property
    def counts(self) -> Counter[str]:
        """A snapshot: submit_requests, submissions, polls, misrouted_polls, deliveries, rate_limited,
        credits, faults, fault_<kind>, webhooks_sent, webhooks_failed."""
        with self._lock:
            return Counter(self._counts)

    def active(self) -> int:
        with self._lock:
            self._reap(time.monotonic())
            return len(self._active)

    def task(self, task_id: str) -> FakeTask:
        with self._lock:
            return self._tasks[task_id]

    @property
    def task_ids(self) -> list[str]:
        with self._lock:
            return list(self._tasks)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of accepted submissions, in order."""
        with self._lock:
            return list(self._bodies)

    def reset(self) -> None:
        with self._lock:
            self._tasks.clear()
            self._active.clear()
            self._heap.clear()
            self._faults.clear()
            self._counts.clear()
            self._bodies.clear()
            self.webhook_log.clear()
            self.max_active = 0

    def finish(self, task_id: str, outcome: str = "ready", **options: Any) -> None:
        """End a task now with `outcome` ("ready" or a key of OUTCOMES)."""
        with self._lock:
            self._end(self._tasks[task_id], outcome, options, time.monotonic())

    # Internals (called with the lock held where noted)

    def _reap(self, now: float) -> None:  # lock held
        while self._heap and self._heap[0][0] <= now:
            _, task_id = heapq.heappop(self._heap)
            task = self._tasks.get(task_id)
            if task is None or task.ready_at <= now:
                self._active.discard(task_id)

    def _end(
        self, task: FakeTask, outcome: str, options: dict[str, Any], now: float
    ) -> None:  # lock held
        task.outcome = outcome
        task.outcome_options = options
        if task.ready_at > now:
            task.ready_wall -= timedelta(seconds=task.ready_at - now)
            task.ready_at = now
        self._active.discard(task.id)

    def _retry_after(self, now: float) -> float:  # lock held
        if self.retry_after is not None:
            return self.retry_after
        if self._heap:
            return max(1.0, float(int(self._heap[0][0] - now + 0.999)))
        return 1.0

    def status_payload(self, task: FakeTask, now: float) -> dict[str, Any]:
        """The ResultResponse for `task` at monotonic time `now`."""
        payload: dict[str, Any] = {
            "id": task.id,
            "result": None,
            "progress": None,
            "details": None,
            "preview": None,
        }
        if task.outcome == "request_moderated" or (
            task.outcome != "ready" and now >= task.ready_at
        ):
            status = OUTCOMES[task.outcome]
            payload["status"] = status
            if "Moderated" in status:
                reasons = task.outcome_options.get("reasons") or [
                    "Derivative Works Filter"
                ]
                payload["details"] = {"Moderation Reasons": list(reasons)}
            elif task.outcome in ("error", "failed"):
                payload["details"] = {
                    "error": task.outcome_options.get(
                        "message", "Internal processing error"
                    )
                }
            return payload
        if now < task.ready_at:
            span = task.ready_at - task.created
            payload["status"] = "Pending"
            payload["progress"] = (
                round(min(0.99, (now - task.created) / span), 3) if span > 0 else 0.0
            )
            return payload
        payload["status"] = "Ready"
        payload["result"] = {
            "sample": self._sample_url(task),
            "prompt": task.body.get("prompt"),
            "seed": task.seed,
            "duration": round(task.ready_at - task.created, 3),
        }
        payload["cost"] = self._cost(task.model, task.body)[0]
        return payload

    def _sample_url(self, task: FakeTask) -> str:
        expiry = (task.ready_wall + timedelta(seconds=self.url_ttl)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        name = f"{task.id}.{task.format}"
        sig = self._sas(name, expiry)
        return (
            f"{self.poll_base}/delivery/{name}?se={quote(expiry, safe='')}&sp=r&sv=2024-11-04&sr=b"
            f"&rsct=image/{task.format}&sig={quote(sig, safe='')}"
        )

    def _sas(self, name: str, expiry: str) -> str:
        return base64.b64encode(
            hmac.new(
                self._signing_key, f"{name}|{expiry}".encode(), hashlib.sha256
            ).digest()
        ).decode()

    def _cost(self, model: str, body: dict[str, Any]) -> tuple[float, float, float]:
        """(credits, input_mp, output_mp) the way BFL reports them."""
        first, extra, per_input = PRICES[model]
        pixels = int(body.get("width") or 1024) * int(body.get("height") or 1024)
        out_units = max(1, -(-pixels // (1024 * 1024)))
        in_units = 0
        in_pixels = 0
        for key, value in body.items():
            if (
                key.startswith("input_image")
                and key != "input_image_blob_path"
                and isinstance(value, str)
            ):
                size = _image_size(value) or (1024, 1024)
                in_pixels += size[0] * size[1]
                in_units += max(1, -(-(size[0] * size[1]) // (1024 * 1024)))
        credits = first + (out_units - 1) * extra + in_units * per_input
        return round(credits, 4), round(in_pixels / 1e6, 2), round(pixels / 1e6, 2)

    def image_bytes(self, task: FakeTask) -> tuple[bytes, str]:
        width, height = self.result_size or (task.width, task.height)
        fmt = task.format
        colour_index = task.seed % 8
        key = (width, height, fmt, colour_index)
        base = self._images.get(key)
        if base is None:
            hue = colour_index * 32
            image = Image.new("RGB", (width, height), (hue, 255 - hue, 128))
            ImageDraw.Draw(image).ellipse(
                [width // 4, height // 4, 3 * width // 4, 3 * height // 4],
                fill=(250, 250, 250),
            )
            out = io.BytesIO()
            image.save(out, format={"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt])
            base = out.getvalue()
            self._images[key] = base
        marker = f"fake-bfl task {task.id}".encode()
        if fmt == "png":  # a tEXt chunk after IHDR: unique bytes per task, same pixels
            chunk = b"tEXt" + b"Comment\0" + marker
            data = (
                base[:33]
                + struct.pack(">I", len(chunk) - 4)
                + chunk
                + struct.pack(">I", zlib.crc32(chunk))
                + base[33:]
            )
        elif fmt == "jpeg":  # a COM segment after SOI
            data = (
                base[:2]
                + b"\xff\xfe"
                + struct.pack(">H", len(marker) + 2)
                + marker
                + base[2:]
            )
        else:
            data = base
        return data, f"image/{fmt}"

    def validate(self, model: str, body: Any) -> list[dict[str, Any]]:
        """FastAPI-style validation errors for a submit body (empty when valid)."""
        if not isinstance(body, dict):
            return [
                _err(
                    "model_attributes_type",
                    [],
                    "Input should be a valid dictionary or object",
                    body,
                )
            ]
        max_refs, formats = MODELS[model]
        allowed = {
            "prompt",
            "seed",
            "width",
            "height",
            "safety_tolerance",
            "output_format",
            "webhook_url",
            "webhook_secret",
        }
        allowed |= {"input_image"} | {
            f"input_image_{i}" for i in range(2, max_refs + 1)
        }
        if model == "flux-2-flex":
            allowed |= set(FLEX_FIELDS)
        errors = [
            _err("extra_forbidden", [k], "Extra inputs are not permitted", v)
            for k, v in body.items()
            if k not in allowed
        ]

        prompt = body.get("prompt")
        if prompt is None:
            errors.append(_err("missing", ["prompt"], "Field required", body))
        elif not isinstance(prompt, str):
            errors.append(
                _err(
                    "string_type", ["prompt"], "Input should be a valid string", prompt
                )
            )
        for key in ("width", "height"):
            value = body.get(key)
            if value is None:
                continue
            if not _is_int(value):
                errors.append(
                    _err("int_type", [key], "Input should be a valid integer", value)
                )
            elif value != 0 and value < 64:
                errors.append(
                    _err(
                        "greater_than_equal",
                        [key],
                        "Input should be greater than or equal to 64",
                        value,
                    )
                )
            elif value % 16:
                errors.append(
                    _err(
                        "value_error",
                        [key],
                        f"Value error, {key} must be a multiple of 16",
                        value,
                    )
                )
        width, height = body.get("width"), body.get("height")
        if _is_int(width) and _is_int(height) and width * height > MAX_PIXELS:
            errors.append(
                _err(
                    "value_error",
                    ["width"],
                    "Value error, width × height must be at most 4 megapixels",
                    width,
                )
            )
        if body.get("seed") is not None and not _is_int(body["seed"]):
            errors.append(
                _err(
                    "int_type",
                    ["seed"],
                    "Input should be a valid integer",
                    body["seed"],
                )
            )
        if "safety_tolerance" in body:
            errors += _range(body, "safety_tolerance", 0, 5, integer=True)
        fmt = body.get("output_format")
        if fmt is not None and fmt not in formats:
            choices = " or ".join(f"'{f}'" for f in formats)
            errors.append(
                _err("enum", ["output_format"], f"Input should be {choices}", fmt)
            )
        for index in range(1, max_refs + 1):
            key = "input_image" if index == 1 else f"input_image_{index}"
            value = body.get(key)
            if value is None:
                continue
            previous = "input_image" if index == 2 else f"input_image_{index - 1}"
            if index > 1 and body.get(previous) is None:
                errors.append(
                    _err(
                        "value_error",
                        [key],
                        f"Value error, {key} given without {previous}",
                        "…",
                    )
                )
            if not isinstance(value, str) or not (
                value.startswith(("http://", "https://")) or _image_size(value)
            ):
                errors.append(
                    _err(
                        "value_error",
                        [key],
                        "Value error, expected an image URL or base64 image data",
                        "…",
                    )
                )
        if model == "flux-2-flex":
            if "steps" in body:
                errors += _range(body, "steps", 1, 50, integer=True)
            if "guidance" in body:
                errors += _range(body, "guidance", 1.5, 10, integer=False)
            upsampling = body.get("prompt_upsampling")
            if upsampling is not None and not isinstance(upsampling, bool):
                errors.append(
                    _err(
                        "bool_type",
                        ["prompt_upsampling"],
                        "Input should be a valid boolean",
                        upsampling,
                    )
                )
        hook = body.get("webhook_url")
        if hook is not None and (
            not isinstance(hook, str)
            or not 1 <= len(hook) <= 2083
            or not hook.startswith("http")
        ):
            errors.append(
                _err(
                    "url_parsing", ["webhook_url"], "Input should be a valid URL", hook
                )
            )
        secret = body.get("webhook_secret")
        if secret is not None and not isinstance(secret, str):
            errors.append(
                _err(
                    "string_type",
                    ["webhook_secret"],
                    "Input should be a valid string",
                    secret,
                )
            )
        return errors

    def create_task(
        self, model: str, body: dict[str, Any], outcome: Fault | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Admit a valid submission (or refuse it at the concurrency cap)."""
        prompt = str(body.get("prompt") or "")
        latency = self.latency
        tag_outcome, tag_options = None, {}
        for name, value in _TAG.findall(prompt):
            if name == "latency" and value:
                latency = float(value)
            elif name in OUTCOMES:
                tag_outcome = name
        if outcome is not None:
            tag_outcome, tag_options = outcome.kind, outcome.options
        credits, input_mp, output_mp = self._cost(
            model, body
        )  # decodes references: outside the lock
        now = time.monotonic()
        with self._lock:
            self._reap(now)
            if len(self._active) >= self.concurrency:
                self._counts["rate_limited"] += 1
                after = self._retry_after(now)
                return (
                    429,
                    {
                        "error": "rate_limit_exceeded",
                        "message": f"You have reached the limit of {self.concurrency} active tasks.",
                        "retry_after": after,
                    },
                    {
                        "Retry-After": str(int(after)),
                        "X-RateLimit-Limit": str(self.concurrency),
                        "X-RateLimit-Remaining": "0",
                    },
                )
            task_id = str(uuid.uuid4())
            seed = (
                body["seed"]
                if _is_int(body.get("seed"))
                else self._rng.randrange(2**32)
            )
            ready_at = now if tag_outcome == "request_moderated" else now + latency
            task = FakeTask(
                id=task_id,
                model=model,
                body=body,
                created=now,
                ready_at=ready_at,
                ready_wall=datetime.now(UTC) + timedelta(seconds=ready_at - now),
                outcome=tag_outcome or "ready",
                outcome_options=dict(tag_options),
                seed=seed,
            )
            self._tasks[task_id] = task
            self._bodies.append(body)
            self._counts["submissions"] += 1
            if ready_at > now:
                self._active.add(task_id)
                heapq.heappush(self._heap, (ready_at, task_id))
                self.max_active = max(self.max_active, len(self._active))
        if body.get("webhook_url"):
            self._webhooks.schedule(task)
        polling_url = (
            f"{self.poll_base}/v1/get_result?id={task_id}&cluster={self.cluster}"
        )
        answer = {
            "id": task_id,
            "polling_url": polling_url,
            "cost": credits,
            "input_mp": input_mp,
            "output_mp": output_mp,
        }
        return 200, answer, {}


def _err(kind: str, loc: list[Any], msg: str, value: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "loc": ["body", *loc],
        "msg": msg,
        "input": value if not isinstance(value, dict) else "…",
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range(
    body: dict[str, Any], key: str, low: float, high: float, *, integer: bool
) -> list[dict[str, Any]]:
    value = body.get(key)
    if integer and not _is_int(value):
        return [_err("int_type", [key], "Input should be a valid integer", value)]
    if not integer and (isinstance(value, bool) or not isinstance(value, int | float)):
        return [_err("float_type", [key], "Input should be a valid number", value)]
    if value < low:
        return [
            _err(
                "greater_than_equal",
                [key],
                f"Input should be greater than or equal to {low:g}",
                value,
            )
        ]
    if value > high:
        return [
            _err(
                "less_than_equal",
                [key],
                f"Input should be less than or equal to {high:g}",
                value,
            )
        ]
    return []


def _image_size(value: str) -> tuple[int, int] | None:
    """The size of base64 image data (raw or a data: URI), None when it is not one."""
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        raw = base64.b64decode(value, validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            return image.size
    except (binascii.Error, ValueError, OSError):
        return None


_AZURE_403 = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to '
    "authenticate the request. Make sure the value of Authorization header is formed correctly including the "
    "signature.\nRequestId:{rid}\nTime:{now}</Message><AuthenticationErrorDetail>Signed expiry time [{expiry}] "
    "must be after signed start time [{now}]</AuthenticationErrorDetail></Error>"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-bfl/1.0"
    timeout = 60  # idle keep-alive connections end after a minute
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # Plumbing

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(
        self, status: int, data: Any, headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(data).encode(), headers=headers)

    def _http_fault(self, fault: Fault, endpoint: str) -> bool:
        """Answer an HTTP-level fault; False when the request should go on (slow)."""
        fake = self.server.fake
        kind = fault.kind
        if kind == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if kind == "slow":
            time.sleep(float(fault.options.get("seconds", fake.slow_seconds)))
            return False
        if kind == "rate_limit":
            after = float(fault.options.get("retry_after", 2))
            style = fault.options.get("header", "seconds")
            headers = {}
            if style == "seconds":
                headers["Retry-After"] = str(int(after))
            elif style == "date":
                headers["Retry-After"] = format_datetime(
                    datetime.now(UTC) + timedelta(seconds=after), usegmt=True
                )
            body = {
                "error": "rate_limit_exceeded",
                "message": "Too many active tasks.",
                "retry_after": after,
            }
            self._json(429, body, headers)
        elif kind == "server_error":
            self._json(500, {"detail": "Internal Server Error"})
        elif kind == "unavailable":
            self._json(
                503,
                {"detail": "Service temporarily unavailable (maintenance)"},
                {"Retry-After": "1"},
            )
        elif kind == "malformed":
            if endpoint == "delivery":
                self._send(200, b"\x89PNG\r\n\x1a\n not really a png", "image/png")
            else:
                self._send(200, b'{"id": "abc", "status": "Pend', "application/json")
        elif kind == "unauthorized":
            self._json(401, {"detail": "Not authenticated"})
        elif kind == "forbidden":
            self._json(
                403,
                {"detail": "Forbidden: this key has no permission for this endpoint"},
            )
        elif kind == "payment_required":
            self._json(
                402,
                {
                    "error": "insufficient_credits",
                    "message": "Insufficient credits. Add credits to continue.",
                },
            )
        elif kind == "bad_request":
            self._json(
                400,
                {
                    "error": "bad_request",
                    "message": "The request could not be processed.",
                },
            )
        elif kind == "validation":
            self._json(
                422,
                {
                    "detail": [
                        _err(
                            "value_error",
                            ["prompt"],
                            "Value error, injected validation fault",
                            "",
                        )
                    ]
                },
            )
        return True

    def _authorised(self) -> bool:
        key = self.headers.get("x-key")
        if not key:
            self._json(401, {"detail": "Not authenticated"})
            return False
        if not hmac.compare_digest(key.encode(), self.server.fake.api_key.encode()):
            self._json(403, {"detail": "Forbidden"})
            return False
        return True

    def _count(self, name: str) -> None:
        with self.server.fake._lock:
            self.server.fake._counts[name] += 1

    # Routes

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        fake = self.server.fake
        if not path.startswith("/v1/") or path[4:] not in MODELS:
            self._json(404, {"detail": "Not Found"})
            return
        self._count("submit_requests")
        fault = fake._take_fault("submit", HTTP_FAULTS | set(OUTCOMES))
        outcome = None
        if fault is not None and fault.kind in OUTCOMES:
            outcome = fault
        elif fault is not None and self._http_fault(fault, "submit"):
            return
        if not self._authorised():
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._json(
                422, {"detail": [_err("json_invalid", [0], "JSON decode error", "")]}
            )
            return
        model = path[4:]
        errors = fake.validate(model, body)
        if errors:
            self._json(422, {"detail": errors})
            return
        status, answer, headers = fake.create_task(model, body, outcome)
        self._json(status, answer, headers)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/v1/get_result":
            self._poll(parts.query)
        elif parts.path.startswith("/delivery/"):
            self._deliver(parts.path[len("/delivery/") :], parts.query)
        elif parts.path == "/v1/credits":
            self._count("credits")
            fault = self.server.fake._take_fault("credits", HTTP_FAULTS)
            if fault is not None and self._http_fault(fault, "credits"):
                return
            if self._authorised():
                self._json(200, {"credits": self.server.fake.credits})
        else:
            self._json(404, {"detail": "Not Found"})

    def _poll(self, query: str) -> None:
        fake = self.server.fake
        params = parse_qs(query)
        self._count("polls")
        host = self.headers.get("Host", "")
        if host != f"{fake.alias}:{fake.port}" or params.get("cluster") != [
            fake.cluster
        ]:
            # The polling_url was rebuilt or its host swapped: BFL's other clusters don't know the task.
            self._count("misrouted_polls")
            self._json(404, {"detail": "Not Found"})
            return
        fault = fake._take_fault("poll", HTTP_FAULTS | set(OUTCOMES))
        if (
            fault is not None
            and fault.kind not in OUTCOMES
            and self._http_fault(fault, "poll")
        ):
            return
        if not self._authorised():
            return
        task_id = (params.get("id") or [""])[0]
        if not task_id:
            self._json(
                422,
                {
                    "detail": [
                        {
                            "type": "missing",
                            "loc": ["query", "id"],
                            "msg": "Field required",
                            "input": None,
                        }
                    ]
                },
            )
            return
        now = time.monotonic()
        with fake._lock:
            task = fake._tasks.get(task_id)
            if task is None:
                payload: dict[str, Any] = {
                    "id": task_id,
                    "status": "Task not found",
                    "result": None,
                    "progress": None,
                }
            else:
                task.polls += 1
                if fault is not None and fault.kind in OUTCOMES:
                    fake._end(task, fault.kind, fault.options, now)
                payload = fake.status_payload(task, now)
        self._json(200, payload)

    def _deliver(self, name: str, query: str) -> None:
        fake = self.server.fake
        self._count("deliveries")
        fault = fake._take_fault("delivery", HTTP_FAULTS | DELIVERY_FAULTS)
        now_text = format_datetime(datetime.now(UTC), usegmt=True)
        params = {k: v[0] for k, v in parse_qs(query).items()}
        expiry = params.get("se", "")
        azure_403 = _AZURE_403.format(
            rid=uuid.uuid4(), now=now_text, expiry=expiry
        ).encode()
        if fault is not None:
            if fault.kind == "expired":
                self._send(
                    403,
                    azure_403,
                    "application/xml",
                    {"x-ms-error-code": "AuthenticationFailed"},
                )
                return
            if fault.kind == "wrong_content_type":
                self._send(
                    200,
                    b"<html><body><h1>Sign in</h1></body></html>",
                    "text/html; charset=utf-8",
                )
                return
            if fault.kind == "redirect":
                self._send(
                    302,
                    b"",
                    "text/plain",
                    {
                        "Location": str(
                            fault.options.get("location", "http://169.254.169.254/")
                        )
                    },
                )
                return
            if self._http_fault(fault, "delivery"):
                return
        if not hmac.compare_digest(
            params.get("sig", "").encode(), fake._sas(name, expiry).encode()
        ):
            self._send(
                403,
                azure_403,
                "application/xml",
                {"x-ms-error-code": "AuthenticationFailed"},
            )
            return
        try:
            expires = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=UTC
            )
        except ValueError:
            expires = datetime.min.replace(tzinfo=UTC)
        if expires <= datetime.now(UTC):
            self._send(
                403,
                azure_403,
                "application/xml",
                {"x-ms-error-code": "AuthenticationFailed"},
            )
            return
        task_id = name.rsplit(".", 1)[0]
        with fake._lock:
            task = fake._tasks.get(task_id)
            if task is not None:
                task.deliveries += 1
        if task is None:
            body = b'<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code></Error>'
            self._send(404, body, "application/xml")
            return
        data, content_type = fake.image_bytes(task)
        self._send(200, data, content_type)


class _WebhookSender:
    """Delivers webhooks when tasks finish, from one scheduler thread and a small pool."""

    def __init__(self, fake: FakeBFL) -> None:
        self.fake = fake
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._client: httpx.Client | None = None

    def start(self) -> None:
        self._stopped = False
        self._pool = ThreadPoolExecutor(
            max_workers=16, thread_name_prefix="fake-bfl-webhook"
        )
        self._client = httpx.Client(timeout=10.0)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def schedule(
        self, task: FakeTask, attempt: int = 0, at: float | None = None
    ) -> None:
        with self._cond:
            heapq.heappush(
                self._heap,
                (
                    at if at is not None else task.ready_at,
                    next(self._seq),
                    task.id,
                    attempt,
                ),
            )
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (
                    not self._heap or self._heap[0][0] > time.monotonic()
                ):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout=wait)
                if self._stopped:
                    return
                _, _, task_id, attempt = heapq.heappop(self._heap)
            task = self.fake._tasks.get(task_id)
            if (
                task is not None and task.ready_at > time.monotonic()
            ):  # finished later than planned
                self.schedule(task, attempt)
                continue
            if task is not None and self._pool is not None:
                try:
                    self._pool.submit(self._deliver, task, attempt)
                except RuntimeError:
                    return

    def _deliver(self, task: FakeTask, attempt: int) -> None:
        fake = self.fake
        fault = fake._take_fault("webhook", WEBHOOK_FAULTS)
        kind = fault.kind if fault else None
        if kind == "skip":
            return
        with fake._lock:
            payload = fake.status_payload(task, time.monotonic())
        payload = {k: v for k, v in payload.items() if v is not None or k == "result"}
        if payload["status"] in ("Error", "Failed"):
            payload["error"] = "internal_error"
            payload["message"] = str(
                (payload.get("details") or {}).get("error", "Processing failed")
            )
        payload["timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        secret = task.body.get("webhook_secret")
        if secret and kind != "unsigned":
            headers["X-BFL-Signature"] = sign(
                body, "wrong-" + secret if kind == "bad_signature" else secret
            )
        for _ in range(2 if kind == "duplicate" else 1):
            entry: dict[str, Any] = {
                "task_id": task.id,
                "attempt": attempt,
                "status": payload["status"],
                "kind": kind,
            }
            try:
                assert self._client is not None
                response = self._client.post(
                    task.body["webhook_url"], content=body, headers=headers
                )
                entry["http_status"] = response.status_code
                ok = 200 <= response.status_code < 300
            except httpx.HTTPError as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
                ok = False
            entry["ok"] = ok
            with fake._lock:
                fake.webhook_log.append(entry)
                task.webhooks.append(entry)
                fake._counts["webhooks_sent" if ok else "webhooks_failed"] += 1
            if not ok and attempt < len(fake.webhook_retry_delays):
                self.schedule(
                    task,
                    attempt + 1,
                    time.monotonic() + fake.webhook_retry_delays[attempt],
                )
                return


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="Run the fake BFL API until interrupted."
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--api-key", default="bfl_test_key")
    args = parser.parse_args()
    fake = FakeBFL(
        api_key=args.api_key,
        latency=args.latency,
        concurrency=args.concurrency,
        port=args.port,
    )
    with fake:
        for key, value in fake.env().items():
            print(f"export {key}={value}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
