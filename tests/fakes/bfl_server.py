"""A fake Black Forest Labs API speaking the documented protocol (docs/providers.md §1) over real
HTTP on 127.0.0.1, for contract tests, the engine's integration tests and the benchmark.

    with FakeBFL(latency=2.0, concurrency=24) as fake:
        backend = BFLBackend(fake.config())                  # or override_settings(**fake.env())
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
import hashlib
import heapq
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from tests.fakes.base import (
    COMMON_FAULTS,
    AsyncFake,
    Exchange,
    FakeServer,
    Fault,
    image_size,
    is_int,
    main,
    result_image,
    steering,
)
from tests.fakes.base import make_image as make_image

# Model → (max input images, output formats). docs/providers.md §1.3/1.4.
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
# Cents: first output MP, each extra output MP, each input MP (docs/providers.md §1.12).
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

HTTP_FAULTS = COMMON_FAULTS | {
    "rate_limit",
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


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def webhook_url(self) -> str | None:
        return self.body.get("webhook_url")

    @property
    def width(self) -> int:
        return int(self.body.get("width") or 1024)

    @property
    def height(self) -> int:
        return int(self.body.get("height") or 1024)

    @property
    def format(self) -> str:
        return str(self.body.get("output_format") or "jpeg")


class _Handler(Exchange):
    """The fake BFL's request handler (its own class, so a caller can tune it alone)."""


class FakeBFL(AsyncFake):
    server_name = "fake-bfl"
    handler = _Handler
    HTTP_FAULTS = frozenset(HTTP_FAULTS)
    OUTCOMES = frozenset(OUTCOMES)  # the module's OUTCOMES maps them to BFL's statuses
    DELIVERY_FAULTS = frozenset(DELIVERY_FAULTS)
    WEBHOOK_FAULTS = frozenset(WEBHOOK_FAULTS)
    API_ENDPOINTS = API_ENDPOINTS
    OTHER_ENDPOINTS = ("webhook",)
    OUTCOME_ENDPOINT = "poll"
    FAULT_STATUS = {**FakeServer.FAULT_STATUS, "bad_request": 400}
    MALFORMED_JSON = b'{"id": "abc", "status": "Pend'

    def __init__(
        self,
        *,
        api_key: str = "bfl_test_key",
        latency: float = 0.0,
        concurrency: int = 24,
        url_ttl: float = 600.0,
        retry_after: float | None = None,
        result_size: tuple[int, int] | None = None,
        credits: float = 1000.0,
        **kw: Any,
    ) -> None:
        """`kw`: slow_seconds, webhook_retry_delays, host, alias, port, seed (AsyncFake's)."""
        super().__init__(api_key=api_key, **kw)
        self.latency = latency
        self.concurrency = concurrency
        self.url_ttl = url_ttl
        self.retry_after = (
            retry_after  # None: seconds until the next active task finishes
        )
        self.result_size = result_size  # None: the requested size
        self.credits = credits
        self.cluster = "fake-eu2"
        self._signing_key = uuid.uuid4().bytes
        self._active: set[str] = set()
        self._heap: list[tuple[float, str]] = []
        self.max_active = 0

    # Where to point a client (config(): FakeServer's)

    @property
    def poll_base(self) -> str:
        """Where polling URLs and result URLs point: the other host alias."""
        return self.delivery_base

    def env(self) -> dict[str, str]:
        """Settings (override_settings) or a worker process's environment:
        BFL_API_KEY, BFL_API_URL, BFL_ALLOWED_HOSTS.
        """
        return {
            "BFL_API_KEY": self.api_key,
            "BFL_API_URL": self.base_url,
            "BFL_ALLOWED_HOSTS": self.allowed_hosts,
        }

    # State for tests (counts: submit_requests, submissions, polls, misrouted_polls, deliveries,
    # rate_limited, credits, faults, fault_<kind>, webhooks_sent, webhooks_failed)

    def active(self) -> int:
        with self._lock:
            self._reap(time.monotonic())
            return len(self._active)

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._active.clear()
            self._heap.clear()
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
                size = image_size(value, raw_base64=True) or (1024, 1024)
                in_pixels += size[0] * size[1]
                in_units += max(1, -(-(size[0] * size[1]) // (1024 * 1024)))
        credits = first + (out_units - 1) * extra + in_units * per_input
        return round(credits, 4), round(in_pixels / 1e6, 2), round(pixels / 1e6, 2)

    def image_bytes(self, task: FakeTask) -> tuple[bytes, str]:
        """A real image of the task's size and format; unique bytes per task."""
        width, height = self.result_size or (task.width, task.height)
        hue = task.seed % 8 * 32
        return result_image(
            width,
            height,
            task.format,
            (hue, 255 - hue, 128),
            f"fake-bfl task {task.id}",
        )

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
            if not is_int(value):
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
        if is_int(width) and is_int(height) and width * height > MAX_PIXELS:
            errors.append(
                _err(
                    "value_error",
                    ["width"],
                    "Value error, width × height must be at most 4 megapixels",
                    width,
                )
            )
        if body.get("seed") is not None and not is_int(body["seed"]):
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
                value.startswith(("http://", "https://"))
                or image_size(value, raw_base64=True)
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
        tag_latency, tag_outcome = steering(
            str(body.get("prompt") or ""), self.OUTCOMES
        )
        latency = self.latency if tag_latency is None else tag_latency
        tag_options: dict[str, Any] = {}
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
                body["seed"] if is_int(body.get("seed")) else self._rng.randrange(2**32)
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
            self._webhooks.schedule(task.id, task.ready_at)
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

    # Faults

    def error_body(
        self, status: int, kind: str, options: dict[str, Any]
    ) -> dict[str, Any]:
        if kind == "rate_limit":
            return {
                "error": "rate_limit_exceeded",
                "message": "Too many active tasks.",
                "retry_after": float(options.get("retry_after", 2)),
            }
        if kind == "validation":
            item = _err(
                "value_error", ["prompt"], "Value error, injected validation fault", ""
            )
            return {"detail": [item]}
        return {
            "server_error": {"detail": "Internal Server Error"},
            "unavailable": {"detail": "Service temporarily unavailable (maintenance)"},
            "unauthorized": {"detail": "Not authenticated"},
            "forbidden": {
                "detail": "Forbidden: this key has no permission for this endpoint"
            },
            "payment_required": {
                "error": "insufficient_credits",
                "message": "Insufficient credits. Add credits to continue.",
            },
            "bad_request": {
                "error": "bad_request",
                "message": "The request could not be processed.",
            },
        }[kind]

    def fault_headers(self, fault: Fault) -> dict[str, str]:
        if fault.kind == "unavailable":
            return {"Retry-After": "1"}
        return super().fault_headers(fault)

    # Routes

    def dispatch(self, ex: Exchange) -> None:
        route = ex.route
        if ex.command == "POST":
            self._submit(ex, route)
        elif ex.command != "GET":
            ex.send_error(501, f"Unsupported method ({ex.command!r})")
        elif route == "/v1/get_result":
            self._poll(ex)
        elif route.startswith("/delivery/"):
            self._deliver(ex, route[len("/delivery/") :])
        elif route == "/v1/credits":
            self.count("credits")
            if not self.http_fault(ex, "credits") and self._authorised(ex):
                ex.json(200, {"credits": self.credits})
        else:
            ex.json(404, {"detail": "Not Found"})

    def _authorised(self, ex: Exchange) -> bool:
        key = ex.headers.get("x-key")
        if not key:
            ex.json(401, {"detail": "Not authenticated"})
            return False
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            ex.json(403, {"detail": "Forbidden"})
            return False
        return True

    def _submit(self, ex: Exchange, path: str) -> None:
        if not path.startswith("/v1/") or path[4:] not in MODELS:
            ex.json(404, {"detail": "Not Found"})
            return
        self.count("submit_requests")
        fault = self.take_fault("submit", self.HTTP_FAULTS | self.OUTCOMES)
        outcome = None
        if fault is not None and fault.kind in self.OUTCOMES:
            outcome = fault
        elif fault is not None and self.answer_fault(ex, fault, "submit"):
            return
        if not self._authorised(ex):
            return
        try:
            body = json.loads(ex.raw_body)
        except ValueError:
            ex.json(
                422, {"detail": [_err("json_invalid", [0], "JSON decode error", "")]}
            )
            return
        model = path[4:]
        errors = self.validate(model, body)
        if errors:
            ex.json(422, {"detail": errors})
            return
        status, answer, headers = self.create_task(model, body, outcome)
        ex.json(status, answer, headers)

    def _poll(self, ex: Exchange) -> None:
        params = ex.query
        self.count("polls")
        host = ex.headers.get("Host", "")
        if host != f"{self.alias}:{self.port}" or params.get("cluster") != self.cluster:
            # The polling_url was rebuilt or its host swapped: BFL's other clusters don't know the task.
            self.count("misrouted_polls")
            ex.json(404, {"detail": "Not Found"})
            return
        fault = self.take_fault("poll", self.HTTP_FAULTS | self.OUTCOMES)
        if (
            fault is not None
            and fault.kind not in self.OUTCOMES
            and self.answer_fault(ex, fault, "poll")
        ):
            return
        if not self._authorised(ex):
            return
        task_id = params.get("id", "")
        if not task_id:
            missing = {
                "type": "missing",
                "loc": ["query", "id"],
                "msg": "Field required",
                "input": None,
            }
            ex.json(422, {"detail": [missing]})
            return
        now = time.monotonic()
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                payload: dict[str, Any] = {
                    "id": task_id,
                    "status": "Task not found",
                    "result": None,
                    "progress": None,
                }
            else:
                task.polls += 1
                if fault is not None and fault.kind in self.OUTCOMES:
                    self._end(task, fault.kind, fault.options, now)
                payload = self.status_payload(task, now)
        ex.json(200, payload)

    def _deliver(self, ex: Exchange, name: str) -> None:
        self.count("deliveries")
        fault = self.take_fault("delivery", self.HTTP_FAULTS | self.DELIVERY_FAULTS)
        expiry = ex.query.get("se", "")
        if fault is not None:
            if fault.kind == "expired":
                self._azure_403(ex, expiry)
                return
            if self.delivery_fault(ex, fault) or self.answer_fault(
                ex, fault, "delivery"
            ):
                return
        if not hmac.compare_digest(
            ex.query.get("sig", "").encode(), self._sas(name, expiry).encode()
        ):
            self._azure_403(ex, expiry)
            return
        try:
            expires = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=UTC
            )
        except ValueError:
            expires = datetime.min.replace(tzinfo=UTC)
        if expires <= datetime.now(UTC):
            self._azure_403(ex, expiry)
            return
        task_id = name.rsplit(".", 1)[0]
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None:
                task.deliveries += 1
        if task is None:
            body = b'<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code></Error>'
            ex.send(404, body, "application/xml")
            return
        data, content_type = self.image_bytes(task)
        ex.send(200, data, content_type)

    @staticmethod
    def _azure_403(ex: Exchange, expiry: str) -> None:
        now = format_datetime(datetime.now(UTC), usegmt=True)
        body = _AZURE_403.format(rid=uuid.uuid4(), now=now, expiry=expiry).encode()
        headers = {"x-ms-error-code": "AuthenticationFailed"}
        ex.send(403, body, "application/xml", headers)

    # Webhooks

    def webhook_message(
        self, task: FakeTask, fault: str | None
    ) -> tuple[bytes, dict[str, str]]:
        """The callback of a finished task, signed X-BFL-Signature with its webhook_secret."""
        with self._lock:
            payload = self.status_payload(task, time.monotonic())
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
        if secret and fault != "unsigned":
            headers["X-BFL-Signature"] = sign(
                body, "wrong-" + secret if fault == "bad_signature" else secret
            )
        return body, headers


def _err(kind: str, loc: list[Any], msg: str, value: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "loc": ["body", *loc],
        "msg": msg,
        "input": value if not isinstance(value, dict) else "…",
    }


def _range(
    body: dict[str, Any], key: str, low: float, high: float, *, integer: bool
) -> list[dict[str, Any]]:
    value = body.get(key)
    if integer and not is_int(value):
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


_AZURE_403 = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to '
    "authenticate the request. Make sure the value of Authorization header is formed correctly including the "
    "signature.\nRequestId:{rid}\nTime:{now}</Message><AuthenticationErrorDetail>Signed expiry time [{expiry}] "
    "must be after signed start time [{now}]</AuthenticationErrorDetail></Error>"
)


if __name__ == "__main__":
    main(
        FakeBFL,
        description="Run the fake BFL API until interrupted.",
        options=(("--concurrency", int, 24), ("--api-key", str, "bfl_test_key")),
    )
