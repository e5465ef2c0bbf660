"""A fake fal.ai queue speaking the documented protocol (providers.md section 2) over real HTTP on
127.0.0.1, for contract tests, the engine's integration tests and benchmarks.

    with FakeFal(latency=2.0) as fake:
        backend = FalBackend(fake.config())              # or os.environ.update(fake.env())
        fake.inject("rate_limit", endpoint="submit", retry_after=3)
        ...
        fake.counts["submissions"], fake.counts["status_polls"], fake.bodies

What it does:
- `POST /{model_id}[/{subpath}]` for the FLUX.2 ids of providers.md 2.1 checks
  `Authorization: Key <key>` (missing or wrong: 401 `{"detail": "Unauthorized"}`) and answers the
  superset submit answer: `request_id`, `gateway_request_id`, `status_url`, `response_url`,
  `cancel_url` (on the app root, without the subpath, as fal does), `status: IN_QUEUE`,
  `queue_position`. `?fal_webhook=<url>` asks for a callback. Inputs are checked against the
  endpoint's schema (2.4) but, like fal, a bad input only shows when the result is fetched.
- `GET …/requests/{id}/status` never blocks: IN_QUEUE for `queue_latency` seconds, then
  IN_PROGRESS until `latency` seconds after the submit, then COMPLETED (each answer repeats the
  three URLs). `GET …/requests/{id}` answers the model output (`v4Output` for [dev]/[klein], `{images,
  seed}` for pro/max/flex) or, for a failed request, the error: 422 `detail` (validation or
  content policy), 500 `detail` (model error) or 504 with `x-fal-request-timeout-type: user`.
- `PUT …/requests/{id}/cancel`: a queued request is canceled (202 `CANCELLATION_REQUESTED`; its
  status becomes CANCELED), a running one gets the signal and finishes anyway (202), a completed
  one answers 400 `ALREADY_COMPLETED`, an unknown one 404 `NOT_FOUND`.
- Result images live on the other host alias (`localhost` when the base URL is `127.0.0.1`) under
  `/files/<id>/out.<ext>`: a real image of the requested size and format (unique bytes per
  request), until `url_ttl` seconds after completion, then 404.
- `GET /.well-known/jwks.json` publishes the Ed25519 key that signs webhooks (providers.md 2.7:
  `X-Fal-Webhook-{Request-Id,User-Id,Timestamp,Signature}`, signature = hex Ed25519 over
  "request_id\\nuser_id\\ntimestamp\\nsha256_hex(body)"). Callbacks are retried after
  `webhook_retry_delays` while the receiver does not answer 2xx.

Faults (`inject(kind, endpoint=..., times=1 | probability=p, **options)`; endpoint "submit",
"status", "result", "cancel", "delivery", "jwks", "webhook" or "api" = submit/status/result/cancel):
    rate_limit (429 with Retry-After; options retry_after=seconds), server_error (500),
    unavailable (503), drop (close the socket without answering), slow (sleep `seconds`, then
    answer normally), malformed (200 with broken JSON; on delivery: corrupt image bytes),
    unauthorized (401), forbidden (403), payment_required (402), validation (422 `detail`);
    request outcomes, on "submit" (the next requests) or "status" (that request from then on):
    nsfw (the output's has_nsfw_concepts is [true]; on pro/max/flex, which have no such flag, a
    422 content_policy_violation), content_policy (422 content_policy_violation with
    options categories=[...]), model_error (500 `detail`), timeout (504, user start timeout),
    invalid (422 validation);
    delivery only: expired (404 from the file host), wrong_content_type (200 text/html),
    redirect (302 to options location=...);
    webhook only: bad_signature (signed with another key), unsigned, stale (timestamp 10 min
    old), skip (send nothing), duplicate (send twice).
A request can also be steered from its prompt: "[fake:nsfw]", "[fake:latency=0.5]".

`FakeProvider` (the lifecycle, fault registry, counters, images and webhook sender) is shared
with tests/fakes/replicate_server.py. Thread-safe; `python -m tests.fakes.fal_server` runs it
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
import shlex
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

_TAG = re.compile(r"\[fake:([a-z_]+)(?:=([0-9.]+))?\]")
PIL_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP"}


def make_image(
    width: int = 64,
    height: int = 64,
    fmt: str = "PNG",
    colour: tuple[int, int, int] = (40, 90, 160),
    comment: str = "",
) -> bytes:
    """A real image (for references in tests and for the fakes' results)."""
    image = Image.new("RGB", (width, height), colour)
    box = [width // 4, height // 4, 3 * width // 4, 3 * height // 4]
    ImageDraw.Draw(image).ellipse(box, fill=(250, 250, 250))
    out = io.BytesIO()
    fmt = PIL_FORMATS.get(fmt.lower(), fmt.upper())
    if fmt == "PNG":
        info = PngInfo()
        info.add_text("Comment", comment)
        image.save(out, format=fmt, pnginfo=info)
    elif fmt == "JPEG":
        image.save(out, format=fmt, comment=comment.encode())
    else:
        image.save(out, format=fmt)
    return out.getvalue()


def image_size(value: Any) -> tuple[int, int] | None:
    """The size of a data: URI image, None when `value` is not one."""
    if not isinstance(value, str) or not value.startswith("data:"):
        return None
    try:
        raw = base64.b64decode(value.partition(",")[2], validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            return image.size
    except (binascii.Error, ValueError, OSError):
        return None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
    model: str  # the provider's model id (fal endpoint, Replicate model name)
    body: dict[str, Any]  # the input as received
    created: float  # monotonic
    queued_until: float
    ready_at: float
    width: int
    height: int
    format: str
    outcome: str = "ok"
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    canceled: bool = False
    webhook_url: str | None = None
    polls: int = 0
    deliveries: int = 0
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    block_on_close = False
    fake: FakeProvider

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the game


class Exchange(BaseHTTPRequestHandler):
    """One HTTP request; the fake's `dispatch` routes it and answers through these helpers."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end after a minute
    server: _Server
    raw_body = b""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.raw_body = self.rfile.read(length) if length else b""
        self.server.fake.dispatch(self)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def send(
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

    def json(
        self, status: int, data: Any, headers: dict[str, str] | None = None
    ) -> None:
        self.send(status, json.dumps(data).encode(), headers=headers)

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class FakeProvider:
    """Lifecycle, faults, counters, result images and webhook delivery shared by the fakes."""

    server_name: ClassVar[str] = "fake-provider"
    HTTP_FAULTS: ClassVar[frozenset[str]] = frozenset(
        {
            "rate_limit",
            "server_error",
            "unavailable",
            "drop",
            "slow",
            "malformed",
            "unauthorized",
            "forbidden",
            "payment_required",
            "validation",
        }
    )
    DELIVERY_FAULTS: ClassVar[frozenset[str]] = frozenset(
        {"expired", "wrong_content_type", "redirect"}
    )
    WEBHOOK_FAULTS: ClassVar[frozenset[str]] = frozenset(
        {"bad_signature", "unsigned", "stale", "skip", "duplicate"}
    )
    OUTCOMES: ClassVar[frozenset[str]] = frozenset()
    API_ENDPOINTS: ClassVar[tuple[str, ...]] = ()
    OTHER_ENDPOINTS: ClassVar[tuple[str, ...]] = ("delivery", "webhook")
    OUTCOME_ENDPOINT: ClassVar[str] = "poll"

    def __init__(
        self,
        *,
        api_key: str,
        latency: float = 0.0,
        queue_latency: float = 0.0,
        slow_seconds: float = 2.0,
        url_ttl: float = 3600.0,
        webhook_retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0),
        result_size: tuple[int, int] | None = None,
        host: str = "127.0.0.1",
        alias: str | None = None,
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.queue_latency = queue_latency
        self.slow_seconds = slow_seconds
        self.url_ttl = url_ttl
        self.webhook_retry_delays = webhook_retry_delays
        self.result_size = result_size  # None: the requested size
        self.host = host
        self.alias = alias or ("localhost" if host == "127.0.0.1" else "127.0.0.1")
        self._port = port
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._tasks: dict[str, FakeTask] = {}
        self._faults: list[Fault] = []
        self._counts: Counter[str] = Counter()
        self._bodies: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._images: dict[str, tuple[bytes, str]] = {}
        self.webhook_log: list[dict[str, Any]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._webhooks = WebhookSender(self)

    # Lifecycle

    def start(self) -> FakeProvider:
        server = _Server((self.host, self._port), Exchange)
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

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def delivery_base(self) -> str:
        return f"http://{self.alias}:{self._port}"

    @property
    def allowed_hosts(self) -> str:
        return f"{self.host},{self.alias}"

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
                self.OUTCOME_ENDPOINT
                if kind in self.OUTCOMES
                else "delivery"
                if kind in self.DELIVERY_FAULTS
                else "webhook"
                if kind in self.WEBHOOK_FAULTS
                else "api"
            )
        known = (
            self.HTTP_FAULTS
            | self.OUTCOMES
            | self.DELIVERY_FAULTS
            | self.WEBHOOK_FAULTS
        )
        if kind not in known:
            raise ValueError(
                f"unknown fault {kind!r}; known: {', '.join(sorted(known))}"
            )
        if endpoint not in (*self.API_ENDPOINTS, *self.OTHER_ENDPOINTS, "api"):
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

    def take_fault(
        self, endpoint: str, kinds: frozenset[str] | set[str]
    ) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                api = fault.endpoint == "api" and endpoint in self.API_ENDPOINTS
                if fault.endpoint != endpoint and not api:
                    continue
                if fault.kind not in kinds:
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

    def http_fault(self, ex: Exchange, endpoint: str) -> bool:
        """Answer an injected HTTP-level fault; True when the request has been answered."""
        fault = self.take_fault(endpoint, self.HTTP_FAULTS)
        if fault is None:
            return False
        kind = fault.kind
        if kind == "drop":
            ex.drop()
            return True
        if kind == "slow":
            time.sleep(float(fault.options.get("seconds", self.slow_seconds)))
            return False
        if kind == "malformed":
            if endpoint == "delivery":
                ex.send(200, b"\x89PNG\r\n\x1a\n not really a png", "image/png")
            else:
                ex.send(200, b'{"status": "IN_QUEUE", "request_', "application/json")
            return True
        status = {
            "rate_limit": 429,
            "server_error": 500,
            "unavailable": 503,
            "unauthorized": 401,
            "forbidden": 403,
            "payment_required": 402,
            "validation": 422,
        }[kind]
        headers: dict[str, str] = {}
        if kind == "rate_limit":
            after = float(fault.options.get("retry_after", 2))
            if fault.options.get("header", "seconds") == "date":
                when = datetime.now(UTC) + timedelta(seconds=after)
                headers["Retry-After"] = format_datetime(when, usegmt=True)
            elif fault.options.get("header", "seconds") == "seconds":
                headers["Retry-After"] = str(int(after))
        ex.json(status, self.error_body(status, kind, fault.options), headers)
        return True

    def error_body(
        self, status: int, kind: str, options: dict[str, Any]
    ) -> dict[str, Any]:
        return {"detail": options.get("message") or f"injected {kind}"}

    # Counters and state for tests

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    @property
    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

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

    @property
    def submit_headers(self) -> list[dict[str, str]]:
        """The headers of accepted submissions (lower-cased names), in order."""
        with self._lock:
            return list(self._headers)

    def reset(self) -> None:
        with self._lock:
            self._tasks.clear()
            self._faults.clear()
            self._counts.clear()
            self._bodies.clear()
            self._headers.clear()
            self._images.clear()
            self.webhook_log.clear()

    def finish(self, task_id: str, outcome: str | None = None, **options: Any) -> None:
        """Complete a request now, with `outcome` ("ok" or one of OUTCOMES) if given."""
        with self._lock:
            task = self._tasks[task_id]
            if outcome is not None:
                task.outcome, task.options = outcome, options
            now = time.monotonic()
            task.queued_until = min(task.queued_until, now)
            task.ready_at = min(task.ready_at, now)
        if task.webhook_url:
            self._webhooks.schedule(task.id, time.monotonic())

    def new_task(
        self,
        model: str,
        body: dict[str, Any],
        *,
        width: int,
        height: int,
        fmt: str,
        outcome: Fault | None,
        webhook_url: str | None,
        headers: dict[str, str],
    ) -> FakeTask:
        """Create a request, steered by an injected outcome or by prompt tags."""
        latency, chosen, options = self.latency, "ok", {}
        for name, value in _TAG.findall(str(body.get("prompt") or "")):
            if name == "latency" and value:
                latency = float(value)
            elif name in self.OUTCOMES:
                chosen = name
        if outcome is not None:
            chosen, options = outcome.kind, dict(outcome.options)
        now = time.monotonic()
        seed = body.get("seed") if is_int(body.get("seed")) else None
        with self._lock:
            task = FakeTask(
                id=self.new_id(),
                model=model,
                body=body,
                created=now,
                queued_until=now + min(self.queue_latency, latency),
                ready_at=now + latency,
                width=width,
                height=height,
                format=fmt,
                outcome=chosen,
                options=options,
                seed=seed if seed is not None else self._rng.randrange(2**32),
                webhook_url=webhook_url,
            )
            self._tasks[task.id] = task
            self._bodies.append(body)
            self._headers.append({k.lower(): v for k, v in headers.items()})
            self._counts["submissions"] += 1
        if webhook_url:
            self._webhooks.schedule(task.id, task.ready_at)
        return task

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def image_bytes(self, task: FakeTask) -> tuple[bytes, str]:
        """A real image of the request's size and format, unique per request."""
        with self._lock:
            cached = self._images.get(task.id)
        if cached is not None:
            return cached
        width, height = self.result_size or (task.width, task.height)
        fmt = PIL_FORMATS.get(task.format, "PNG")
        hue = task.seed % 8 * 32
        data = make_image(
            width, height, fmt, (hue, 255 - hue, 128), f"{self.server_name} {task.id}"
        )
        result = (data, Image.MIME[fmt])
        with self._lock:
            self._images[task.id] = result
        return result

    def deliver(self, ex: Exchange, task_id: str) -> None:
        """Serve a result image, with the delivery faults."""
        self.count("deliveries")
        fault = self.take_fault("delivery", self.DELIVERY_FAULTS)
        if fault is not None:
            if fault.kind == "expired":
                ex.send(404, b"File not found or expired", "text/plain")
            elif fault.kind == "wrong_content_type":
                ex.send(200, b"<html><body><h1>Sign in</h1></body></html>", "text/html")
            else:
                location = str(fault.options.get("location", "http://169.254.169.254/"))
                ex.send(302, b"", "text/plain", {"Location": location})
            return
        if self.http_fault(ex, "delivery"):
            return
        with self._lock:
            task = self._tasks.get(task_id)
            live = task is not None and time.monotonic() < task.ready_at + self.url_ttl
            if live and task is not None:
                task.deliveries += 1
        if task is None or not live:
            ex.send(404, b"File not found or expired", "text/plain")
            return
        data, content_type = self.image_bytes(task)
        ex.send(200, data, content_type)

    # Subclasses

    def dispatch(self, ex: Exchange) -> None:
        raise NotImplementedError

    def webhook_message(
        self, task: FakeTask, fault: str | None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the callback for a finished `task`."""
        raise NotImplementedError

    def webhook_ready(self, task: FakeTask, now: float) -> bool:
        return task.ready_at <= now


class WebhookSender:
    """Delivers callbacks when requests finish, from one scheduler thread and a small pool."""

    def __init__(self, fake: FakeProvider) -> None:
        self.fake = fake
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._pool: ThreadPoolExecutor | None = None
        self._client: httpx.Client | None = None

    def start(self) -> None:
        self._stopped = False
        self._pool = ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="fake-webhook"
        )
        self._client = httpx.Client(timeout=10.0)
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def schedule(self, task_id: str, at: float, attempt: int = 0) -> None:
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._seq), task_id, attempt))
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
            now = time.monotonic()
            with self.fake._lock:
                task = self.fake._tasks.get(task_id)
                if task is None:
                    continue
                if task.ready_at > now:  # finishes later than planned: try again then
                    later: float | None = task.ready_at
                elif not self.fake.webhook_ready(task, now):
                    continue
                elif attempt == 0 and task.extra.get("webhook_sent"):
                    continue  # finish() and the original schedule both asked for it
                else:
                    later = None
                    task.extra["webhook_sent"] = True
            if later is not None:
                self.schedule(task_id, later, attempt)
                continue
            if self._pool is not None:
                try:
                    self._pool.submit(self.send, task, attempt)
                except RuntimeError:
                    return

    def send(self, task: FakeTask, attempt: int = 0, url: str | None = None) -> bool:
        """POST the callback of `task` (to `url` or the request's webhook URL); True on 2xx."""
        fake = self.fake
        fault = fake.take_fault("webhook", fake.WEBHOOK_FAULTS)
        kind = fault.kind if fault else None
        if kind == "skip":
            return False
        body, headers = fake.webhook_message(task, kind)
        target = url or task.webhook_url or ""
        ok = False
        for _ in range(2 if kind == "duplicate" else 1):
            entry: dict[str, Any] = {
                "task_id": task.id,
                "attempt": attempt,
                "kind": kind,
            }
            try:
                client = self._client or httpx.Client(timeout=10.0)
                response = client.post(target, content=body, headers=headers)
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
        if not ok and url is None and attempt < len(fake.webhook_retry_delays):
            delay = fake.webhook_retry_delays[attempt]
            self.schedule(task.id, time.monotonic() + delay, attempt + 1)
        return ok


# --- fal ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    family: str  # "bfl" (pro/max), "flex", "dev", "klein"
    edit: bool
    max_refs: int
    formats: tuple[str, ...]
    default_format: str
    min_side: int = 64
    max_side: int = 4096


def _endpoints() -> dict[str, Endpoint]:
    table: dict[str, Endpoint] = {}
    for name, family in (
        ("fal-ai/flux-2-pro", "bfl"),
        ("fal-ai/flux-2-max", "bfl"),
        ("fal-ai/flux-2-flex", "flex"),
    ):
        table[name] = Endpoint(family, False, 0, ("jpeg", "png"), "jpeg")
        table[f"{name}/edit"] = Endpoint(family, True, 8, ("jpeg", "png"), "jpeg")
    for name, family in (
        ("fal-ai/flux-2", "dev"),
        ("fal-ai/flux-2/klein/4b", "klein"),
        ("fal-ai/flux-2/klein/9b", "klein"),
    ):
        fmts = ("jpeg", "png", "webp")
        table[name] = Endpoint(family, False, 0, fmts, "png", 512, 2048)
        table[f"{name}/edit"] = Endpoint(family, True, 4, fmts, "png", 512, 2048)
    return table


# providers.md 2.1 / 2.4. Edit endpoints of pro/max/flex: 8 references (assumed, 8.5).
ENDPOINTS: dict[str, Endpoint] = _endpoints()
PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
FIELDS = {
    "bfl": {"prompt", "image_size", "seed", "safety_tolerance", "enable_safety_checker"}
    | {"output_format", "sync_mode"},
    "dev": {"prompt", "image_size", "num_inference_steps", "guidance_scale", "seed"}
    | {"num_images", "acceleration", "enable_prompt_expansion", "enable_safety_checker"}
    | {"output_format", "sync_mode"},
    "klein": {"prompt", "image_size", "num_inference_steps", "seed", "num_images"}
    | {"output_format", "enable_safety_checker", "sync_mode"},
}
FIELDS["flex"] = FIELDS["bfl"] | {
    "guidance_scale",
    "num_inference_steps",
    "enable_prompt_expansion",
}


def _err(kind: str, loc: list[Any], msg: str, value: Any = None) -> dict[str, Any]:
    item = {"type": kind, "loc": ["body", *loc], "msg": msg}
    if not isinstance(value, dict | list):
        item["input"] = value
    return item


def _range(
    body: dict[str, Any], key: str, low: float, high: float, *, integer: bool
) -> list:
    value = body.get(key)
    if integer and not is_int(value):
        return [_err("int_type", [key], "Input should be a valid integer", value)]
    if not integer and not is_number(value):
        return [_err("float_type", [key], "Input should be a valid number", value)]
    if not low <= value <= high:
        return [
            _err(
                "value_error",
                [key],
                f"Input should be between {low:g} and {high:g}",
                value,
            )
        ]
    return []


class FakeFal(FakeProvider):
    server_name = "fake-fal"
    OUTCOMES = frozenset(
        {"nsfw", "content_policy", "model_error", "timeout", "invalid"}
    )
    API_ENDPOINTS = ("submit", "status", "result", "cancel")
    OTHER_ENDPOINTS = ("delivery", "jwks", "webhook")
    OUTCOME_ENDPOINT = "submit"

    def __init__(
        self,
        *,
        api_key: str = "fal-test-key",
        user_id: str = "fake-user",
        omit_urls: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(api_key=api_key, **kw)
        self.user_id = user_id
        # Answer like fal's webhook docs show it: submit and status without the three URLs.
        self.omit_urls = omit_urls
        self.signing_key = Ed25519PrivateKey.generate()
        self.other_key = Ed25519PrivateKey.generate()  # for bad_signature

    # Where to point a client

    def config(self, **extra: str) -> Any:
        """A BackendConfig for FalBackend pointing here (extra: read_timeout=..., ...)."""
        from generation.backends.base import BackendConfig

        return BackendConfig(
            api_key=self.api_key,
            base_url=self.base_url,
            extra={
                "allowed_hosts": self.allowed_hosts,
                "jwks_url": self.jwks_url,
                **extra,
            },
        )

    def env(self) -> dict[str, str]:
        """Environment for a worker process (FAL_ALLOWED_HOSTS / FAL_JWKS_URL: registry extras)."""
        return {
            "FAL_KEY": self.api_key,
            "FAL_QUEUE_URL": self.base_url,
            "FAL_ALLOWED_HOSTS": self.allowed_hosts,
            "FAL_JWKS_URL": self.jwks_url,
        }

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    def jwks(self) -> dict[str, Any]:
        raw = self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "fake-1"}]}

    # Protocol

    def dispatch(self, ex: Exchange) -> None:
        route = ex.route
        method = ex.command
        if method == "GET" and route == "/.well-known/jwks.json":
            self.count("jwks")
            if not self.http_fault(ex, "jwks"):
                ex.json(200, self.jwks())
            return
        if method == "GET" and route.startswith("/files/"):
            self.deliver(ex, route.split("/")[2])
            return
        match = re.fullmatch(
            r"/([^/]+/[^/]+)/requests/([^/]+)(/status|/cancel)?/?", route
        )
        if match and method != "POST":
            app, request_id, leaf = match.groups()
            if leaf == "/status" and method == "GET":
                self._status(ex, app, request_id)
            elif leaf == "/cancel" and method == "PUT":
                self._cancel(ex, app, request_id)
            elif leaf is None and method == "GET":
                self._result(ex, app, request_id)
            else:
                ex.json(405, {"detail": "Method Not Allowed"})
            return
        endpoint = route.strip("/")
        if method == "POST" and endpoint in ENDPOINTS:
            self._submit(ex, endpoint)
            return
        ex.json(404, {"detail": f"Application '{endpoint}' not found"})

    def _authorised(self, ex: Exchange) -> bool:
        given = ex.headers.get("Authorization") or ""
        if not hmac.compare_digest(given.encode(), f"Key {self.api_key}".encode()):
            ex.json(401, {"detail": "Unauthorized"})
            return False
        return True

    def _urls(self, task: FakeTask) -> dict[str, str]:
        if self.omit_urls:
            return {}
        app = "/".join(task.model.split("/")[:2])
        root = f"{self.base_url}/{app}/requests/{task.id}"
        return {
            "response_url": root,
            "status_url": f"{root}/status",
            "cancel_url": f"{root}/cancel",
        }

    def _submit(self, ex: Exchange, endpoint: str) -> None:
        self.count("submit_requests")
        if self.http_fault(ex, "submit") or not self._authorised(ex):
            return
        fault = self.take_fault("submit", self.OUTCOMES)
        try:
            body = json.loads(ex.raw_body)
        except ValueError:
            ex.json(422, {"detail": [_err("json_invalid", [0], "JSON decode error")]})
            return
        if not isinstance(body, dict):
            ex.json(
                422,
                {
                    "detail": [
                        _err("model_attributes_type", [], "Input should be an object")
                    ]
                },
            )
            return
        spec = ENDPOINTS[endpoint]
        width, height = self._size(body.get("image_size"), spec)
        fmt = (
            body.get("output_format")
            if body.get("output_format") in spec.formats
            else None
        )
        task = self.new_task(
            endpoint,
            body,
            width=width,
            height=height,
            fmt=fmt or spec.default_format,
            outcome=fault,
            webhook_url=ex.query.get("fal_webhook"),
            headers=dict(ex.headers.items()),
        )
        errors = self.validate(endpoint, body)
        if errors and task.outcome == "ok":
            with self._lock:
                task.outcome, task.options = "invalid", {"errors": errors}
        answer = {
            "request_id": task.id,
            "gateway_request_id": task.id,
            **self._urls(task),
            "status": "IN_QUEUE",
            "queue_position": 0,
        }
        ex.json(200, answer, {"x-fal-request-id": task.id})

    @staticmethod
    def _size(value: Any, spec: Endpoint) -> tuple[int, int]:
        if (
            isinstance(value, dict)
            and is_int(value.get("width"))
            and is_int(value.get("height"))
        ):
            return value["width"], value["height"]
        if isinstance(value, str) and value in PRESETS:
            return PRESETS[value]
        return (1024, 1024) if spec.edit else PRESETS["landscape_4_3"]

    def validate(self, endpoint: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """FastAPI-style validation errors for an input (empty when valid), providers.md 2.4."""
        spec = ENDPOINTS[endpoint]
        allowed = FIELDS[spec.family] | ({"image_urls"} if spec.edit else set())
        errors = [
            _err("extra_forbidden", [k], "Extra inputs are not permitted", v)
            for k, v in body.items()
            if k not in allowed
        ]
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            errors.append(_err("missing", ["prompt"], "Field required"))
        size = body.get("image_size")
        if isinstance(size, dict):
            for key in ("width", "height"):
                value = size.get(key)
                if not is_int(value):
                    errors.append(
                        _err(
                            "int_type",
                            ["image_size", key],
                            "Input should be a valid integer",
                            value,
                        )
                    )
                elif not spec.min_side <= value <= spec.max_side:
                    msg = f"Input should be between {spec.min_side} and {spec.max_side}"
                    errors.append(_err("value_error", ["image_size", key], msg, value))
            w, h = size.get("width"), size.get("height")
            if is_int(w) and is_int(h) and w * h > 4 * 1024 * 1024:
                msg = "Value error, image_size must be at most 4 megapixels"
                errors.append(_err("value_error", ["image_size"], msg))
        elif (
            size is not None
            and size not in PRESETS
            and not (size == "auto" and spec.edit)
        ):
            errors.append(
                _err(
                    "enum",
                    ["image_size"],
                    "Input should be a preset or {width, height}",
                    size,
                )
            )
        if spec.edit:
            urls = body.get("image_urls")
            if not isinstance(urls, list) or not urls:
                errors.append(_err("missing", ["image_urls"], "Field required"))
            else:
                if len(urls) > spec.max_refs and spec.family not in ("dev", "klein"):
                    msg = f"List should have at most {spec.max_refs} items"
                    errors.append(_err("too_long", ["image_urls"], msg))
                for index, url in enumerate(urls):
                    ok = isinstance(url, str) and (
                        url.startswith("https://") or image_size(url)
                    )
                    if not ok:
                        errors.append(
                            _err(
                                "value_error",
                                ["image_urls", index],
                                "Invalid image URL or data URI",
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
        fmt = body.get("output_format")
        if fmt is not None and fmt not in spec.formats:
            errors.append(
                _err(
                    "enum",
                    ["output_format"],
                    f"Input should be one of {spec.formats}",
                    fmt,
                )
            )
        if "safety_tolerance" in body and body["safety_tolerance"] not in (
            "1",
            "2",
            "3",
            "4",
            "5",
        ):
            value = body["safety_tolerance"]
            msg = "Input should be '1', '2', '3', '4' or '5'"
            errors.append(_err("enum", ["safety_tolerance"], msg, value))
        steps = {"flex": (2, 50), "dev": (4, 50), "klein": (4, 8)}.get(spec.family)
        if steps and "num_inference_steps" in body:
            errors += _range(body, "num_inference_steps", *steps, integer=True)
        guidance = {"flex": (1.5, 10), "dev": (0, 20)}.get(spec.family)
        if guidance and "guidance_scale" in body:
            errors += _range(body, "guidance_scale", *guidance, integer=False)
        for key in ("enable_prompt_expansion", "enable_safety_checker", "sync_mode"):
            if key in body and not isinstance(body[key], bool):
                errors.append(
                    _err(
                        "bool_type", [key], "Input should be a valid boolean", body[key]
                    )
                )
        return errors

    def state(self, task: FakeTask, now: float) -> str:
        if task.canceled:
            return "CANCELED"
        if now < task.queued_until:
            return "IN_QUEUE"
        if now < task.ready_at:
            return "IN_PROGRESS"
        return "COMPLETED"

    def _find(self, ex: Exchange, app: str, request_id: str) -> FakeTask | None:
        with self._lock:
            task = self._tasks.get(request_id)
        if task is None or "/".join(task.model.split("/")[:2]) != app:
            # fal routes status/result/cancel by the app root; a client that adds the subpath
            # (or rebuilds the URL wrongly) gets 404.
            self.count("misrouted")
            ex.json(404, {"detail": "Request not found", "status": "NOT_FOUND"})
            return None
        return task

    def _status(self, ex: Exchange, app: str, request_id: str) -> None:
        self.count("status_polls")
        fault = self.take_fault("status", self.OUTCOMES)
        if self.http_fault(ex, "status") or not self._authorised(ex):
            return
        task = self._find(ex, app, request_id)
        if task is None:
            return
        now = time.monotonic()
        with self._lock:
            task.polls += 1
            if fault is not None:
                task.outcome, task.options = fault.kind, dict(fault.options)
            state = self.state(task, now)
        answer: dict[str, Any] = {
            "status": state,
            "request_id": task.id,
            **self._urls(task),
        }
        if state == "IN_QUEUE":
            answer["queue_position"] = 0
        elif state in ("IN_PROGRESS", "COMPLETED"):
            answer["logs"] = [] if ex.query.get("logs") == "1" else None
        if state == "COMPLETED":
            answer["metrics"] = {
                "inference_time": round(task.ready_at - task.created, 3)
            }
        ex.json(200, answer)

    def output(self, task: FakeTask) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(HTTP status, body, headers) of the result of a completed request."""
        family = ENDPOINTS[task.model].family
        outcome = task.outcome
        if outcome == "nsfw" and family in ("bfl", "flex"):
            outcome = "content_policy"
        if outcome == "invalid":
            errors = task.options.get("errors") or [
                _err("value_error", ["image_urls", 0], "Could not download the image")
            ]
            return 422, {"detail": errors}, {"X-Fal-Retryable": "false"}
        if outcome == "content_policy":
            categories = task.options.get("categories") or ["sexual"]
            item = _err(
                "content_policy_violation",
                ["prompt"],
                "The content could not be processed because it contained material flagged by a content checker.",
                task.body.get("prompt"),
            )
            item |= {
                "url": "https://docs.fal.ai/errors#content_policy_violation",
                "categories": categories,
            }
            return 422, {"detail": [item]}, {"X-Fal-Retryable": "false"}
        if outcome == "model_error":
            message = (
                task.options.get("message") or "Internal error while running the model."
            )
            return 500, {"detail": message}, {"X-Fal-Retryable": "true"}
        if outcome == "timeout":
            detail = {"detail": "Request timed out before it could start."}
            return (
                504,
                detail,
                {"x-fal-request-timeout-type": "user", "X-Fal-Retryable": "false"},
            )
        ext = "jpg" if task.format == "jpeg" else task.format
        image = {
            "url": f"{self.delivery_base}/files/{task.id}/out.{ext}",
            "content_type": f"image/{task.format}",
            "file_name": f"out.{ext}",
            "width": self.result_size[0] if self.result_size else task.width,
            "height": self.result_size[1] if self.result_size else task.height,
        }
        body: dict[str, Any] = {"images": [image], "seed": task.seed}
        if family in ("dev", "klein"):
            body["prompt"] = task.body.get("prompt")
            body["has_nsfw_concepts"] = [outcome == "nsfw"]
            body["timings"] = {"inference": round(task.ready_at - task.created, 3)}
        return 200, body, {}

    def _result(self, ex: Exchange, app: str, request_id: str) -> None:
        self.count("result_requests")
        if self.http_fault(ex, "result") or not self._authorised(ex):
            return
        task = self._find(ex, app, request_id)
        if task is None:
            return
        with self._lock:
            state = self.state(task, time.monotonic())
        if state in ("IN_QUEUE", "IN_PROGRESS"):
            ex.json(400, {"detail": "Request is still in progress", "status": state})
            return
        if state == "CANCELED":
            ex.json(400, {"detail": "Request was cancelled", "status": "CANCELED"})
            return
        status, body, headers = self.output(task)
        ex.json(status, body, headers)

    def _cancel(self, ex: Exchange, app: str, request_id: str) -> None:
        self.count("cancels")
        if self.http_fault(ex, "cancel") or not self._authorised(ex):
            return
        task = self._find(ex, app, request_id)
        if task is None:
            return
        with self._lock:
            state = self.state(task, time.monotonic())
            if state == "IN_QUEUE":
                task.canceled = True
        if state in ("COMPLETED", "CANCELED"):
            ex.json(400, {"status": "ALREADY_COMPLETED"})
        else:
            ex.json(202, {"status": "CANCELLATION_REQUESTED"})

    # Webhooks

    def webhook_ready(self, task: FakeTask, now: float) -> bool:
        return task.ready_at <= now and not task.canceled

    def webhook_payload(self, task: FakeTask) -> dict[str, Any]:
        status, output, _ = self.output(task)
        base = {"request_id": task.id, "gateway_request_id": task.id}
        if status == 200:
            return {**base, "status": "OK", "payload": output}
        return {
            **base,
            "status": "ERROR",
            "error": f"Invalid status code: {status}",
            "payload": output,
        }

    def sign(
        self,
        request_id: str,
        body: bytes,
        *,
        timestamp: int | None = None,
        key: Any = None,
    ) -> dict[str, str]:
        """The four X-Fal-Webhook-* headers for `body`."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hashlib.sha256(body).hexdigest()
        message = f"{request_id}\n{self.user_id}\n{stamp}\n{digest}".encode()
        signature = (key or self.signing_key).sign(message).hex()
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": self.user_id,
            "X-Fal-Webhook-Timestamp": stamp,
            "X-Fal-Webhook-Signature": signature,
        }

    def webhook_message(
        self, task: FakeTask, fault: str | None
    ) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(self.webhook_payload(task)).encode()
        headers = {"Content-Type": "application/json"}
        if fault != "unsigned":
            stamp = int(time.time()) - (600 if fault == "stale" else 0)
            key = self.other_key if fault == "bad_signature" else None
            headers |= self.sign(task.id, body, timestamp=stamp, key=key)
        return body, headers

    def send_webhook(self, task_id: str, url: str | None = None) -> bool:
        """Send the callback of a request now (to `url` or its fal_webhook); True on 2xx."""
        return self._webhooks.send(self.task(task_id), url=url)


class WebhookReceiver:
    """A tiny HTTP endpoint on 127.0.0.1 that records the callbacks a fake sends.

    with WebhookReceiver() as hooks:  ...  hooks.url, hooks.wait(1), hooks.received
    """

    def __init__(self, *, status: int = 200) -> None:
        self.status = status  # what to answer; a non-2xx makes the fakes retry
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._cond:
                    receiver.received.append((dict(self.headers.items()), body))
                    receiver._cond.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None, "use WebhookReceiver as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def wait(
        self, count: int = 1, timeout: float = 5.0
    ) -> list[tuple[dict[str, str], bytes]]:
        """Block until `count` callbacks arrived (or `timeout`); return all received so far."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)


def main(factory: Callable[..., FakeProvider] = FakeFal) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run the fake until interrupted.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=2.0)
    args = parser.parse_args()
    fake = factory(latency=args.latency, port=args.port)
    with fake:
        for key, value in fake.env().items():  # type: ignore[attr-defined]
            print(f"export {key}={shlex.quote(value)}")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
