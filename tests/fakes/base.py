"""The machinery the fake provider servers share; each fake module keeps only its protocol.

- `FakeServer`: a ThreadingHTTPServer on a free port of 127.0.0.1 in a daemon thread (`start()` /
  `stop()` or a `with` block), requests handed to the fake's `dispatch(ex)` as an `Exchange`, the
  fault registry (`inject(kind, endpoint=..., times=1 | probability=p, **options)`), counters
  (`counts`), HTTP-level faults (drop, slow, status answers, malformed bodies) and the URLs and
  BackendConfig that point a client here.
- `AsyncFake`: a FakeServer whose submissions become tasks that finish later and may call back:
  tasks and bodies for tests, and a `WebhookSender` that POSTs each finished task's callback,
  retrying after `webhook_retry_delays` while the receiver does not answer 2xx.
- `FakeProvider`: an AsyncFake with a queue (queued, running, done), result images on a delivery
  host and the delivery faults (fal and Replicate).
- `WebhookReceiver`, a tiny endpoint that records callbacks; `make_image` / `result_image` (real
  PNG/JPEG/WebP bytes); `parse_multipart`; `main` to run a fake standalone.

Answers go out with TCP_NODELAY: http.server writes headers and body separately, and with Nagle
on each answer would wait ~40 ms for the client's delayed ACK, which no production API does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.parser
import email.policy
import functools
import heapq
import io
import itertools
import json
import random
import re
import shlex
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

import httpx
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

PIL_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
CORRUPT_PNG = b"\x89PNG\r\n\x1a\n not really a png"
# Steering from the prompt: "[fake:content_moderated]", "[fake:latency=0.5]".
TAG = re.compile(r"\[fake:([a-z_]+)(?:=([0-9.]+))?\]")


# --- Values and images ---------------------------------------------------------------------------


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def image_size(value: Any, *, raw_base64: bool = False) -> tuple[int, int] | None:
    """The size of a data: URI image (or, with `raw_base64`, plain base64 image data)."""
    if not isinstance(value, str):
        return None
    if value.startswith("data:"):
        value = value.partition(",")[2]
    elif not raw_base64:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            return image.size
    except (binascii.Error, ValueError, OSError):
        return None


def steering(prompt: str, outcomes: frozenset[str]) -> tuple[float | None, str | None]:
    """(latency, outcome) asked for by `[fake:...]` tags in a prompt, None where not given."""
    latency, outcome = None, None
    for name, value in TAG.findall(prompt):
        if name == "latency" and value:
            latency = float(value)
        elif name in outcomes:
            outcome = name
    return latency, outcome


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


@functools.lru_cache(maxsize=64)
def _plain_image(
    width: int, height: int, fmt: str, colour: tuple[int, int, int]
) -> bytes:
    return make_image(width, height, fmt, colour)


def result_image(
    width: int, height: int, fmt: str, colour: tuple[int, int, int], marker: str
) -> tuple[bytes, str]:
    """(bytes, MIME type) of a real image whose bytes are unique per `marker` (a PNG tEXt chunk
    or a JPEG COM segment; WebP gets none). Each size, format and colour is encoded once."""
    fmt = PIL_FORMATS.get(fmt.lower(), fmt.upper())
    base = _plain_image(width, height, fmt, colour)
    tag = marker.encode()
    if fmt == "PNG":  # a tEXt chunk after IHDR: same pixels, unique bytes
        chunk = b"tEXt" + b"Comment\0" + tag
        data = (
            base[:33]
            + struct.pack(">I", len(chunk) - 4)
            + chunk
            + struct.pack(">I", zlib.crc32(chunk))
            + base[33:]
        )
    elif fmt == "JPEG":  # a COM segment after SOI
        data = base[:2] + b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag + base[2:]
    else:
        data = base
    return data, Image.MIME[fmt]


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """The parts of a multipart/form-data body (raises ValueError when it is not one)."""
    if (
        not content_type.lower().startswith("multipart/form-data")
        or "boundary=" not in content_type
    ):
        raise ValueError(
            f"expected multipart/form-data with a boundary, got {content_type or 'nothing'}"
        )
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ValueError("the multipart body could not be parsed")
    parts = []
    for item in message.iter_parts():
        name = item.get_param("name", header="content-disposition")
        if not name:
            raise ValueError("a part has no name")
        payload = item.get_payload(decode=True) or b""
        parts.append(
            Part(str(name), item.get_filename(), item.get_content_type(), payload)
        )
    return parts


# --- Faults --------------------------------------------------------------------------------------

# The HTTP-level faults every fake answers (each adds its own).
COMMON_FAULTS = frozenset(
    {
        "server_error",
        "unavailable",
        "drop",
        "slow",
        "malformed",
        "unauthorized",
        "forbidden",
    }
)


@dataclass
class Fault:
    kind: str
    endpoint: str
    times: int | None  # None: until cleared
    probability: float | None
    options: dict[str, Any]
    fired: int = 0


def retry_after_headers(options: Mapping[str, Any]) -> dict[str, str]:
    """The Retry-After of a rate_limit fault: options retry_after=seconds (default 2),
    header="seconds" | "date" | "none"."""
    after = float(options.get("retry_after", 2))
    style = options.get("header", "seconds")
    if style == "seconds":
        return {"Retry-After": str(int(after))}
    if style == "date":
        when = datetime.now(UTC) + timedelta(seconds=after)
        return {"Retry-After": format_datetime(when, usegmt=True)}
    return {}


# --- The server ----------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    block_on_close = False
    fake: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the game


class Exchange(BaseHTTPRequestHandler):
    """One HTTP request; the fake's `dispatch` routes it and answers through these helpers."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end after a minute
    disable_nagle_algorithm = True  # see the module docstring
    server: _Server
    raw_body = b""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return f"{self.server.fake.server_name}/1.0 {self.sys_version}"

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
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in {
            **self.server.fake.response_headers(),
            **(headers or {}),
        }.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def json(
        self, status: int, data: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send(status, json.dumps(data).encode(), headers=headers)

    def drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class FakeServer:
    """Lifecycle, fault registry, counters and HTTP-level faults of a fake provider."""

    server_name: ClassVar[str] = "fake-provider"
    handler: ClassVar[type[Exchange]] = Exchange
    # Fault kinds: answered at the HTTP level, outcomes of a request, delivery-only, webhook-only.
    HTTP_FAULTS: ClassVar[frozenset[str]] = frozenset()
    OUTCOMES: ClassVar[frozenset[str]] = frozenset()
    DELIVERY_FAULTS: ClassVar[frozenset[str]] = frozenset()
    WEBHOOK_FAULTS: ClassVar[frozenset[str]] = frozenset()
    # Endpoints that "api" covers, other endpoints, and where an outcome goes by default.
    API_ENDPOINTS: ClassVar[tuple[str, ...]] = ()
    OTHER_ENDPOINTS: ClassVar[tuple[str, ...]] = ()
    OUTCOME_ENDPOINT: ClassVar[str] = "poll"
    # fault_response's defaults: a status and error_body per kind; malformed bodies.
    FAULT_STATUS: ClassVar[Mapping[str, int]] = {
        "rate_limit": 429,
        "server_error": 500,
        "unavailable": 503,
        "unauthorized": 401,
        "forbidden": 403,
        "payment_required": 402,
        "validation": 422,
    }
    IMAGE_ENDPOINTS: ClassVar[tuple[str, ...]] = ("delivery",)
    MALFORMED_JSON: ClassVar[bytes] = b'{"status": "IN_QUEUE", "request_'

    def __init__(
        self,
        *,
        api_key: str = "",
        slow_seconds: float = 2.0,
        host: str = "127.0.0.1",
        alias: str | None = None,
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.slow_seconds = slow_seconds
        self.host = host
        self.alias = alias or ("localhost" if host == "127.0.0.1" else "127.0.0.1")
        self._port = port
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._faults: list[Fault] = []
        self._counts: Counter[str] = Counter()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> Self:
        server = _Server((self.host, self._port), self.handler)
        server.fake = self
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.on_start()
        return self

    def stop(self) -> None:
        self.on_stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def on_start(self) -> None:
        """Start helpers (webhook delivery) once the server listens."""

    def on_stop(self) -> None:
        """Stop helpers before the server goes."""

    # Where to point a client

    @property
    def port(self) -> int:
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        return self.root_url

    @property
    def delivery_base(self) -> str:
        """The same server under the other host alias (`localhost` for 127.0.0.1)."""
        return f"http://{self.alias}:{self._port}"

    @property
    def allowed_hosts(self) -> str:
        return f"{self.host},{self.alias}"

    def config(self, **extra: str) -> Any:
        """A BackendConfig for this provider's backend pointing here (extra: read_timeout=...)."""
        from generation.backends.base import BackendConfig

        return BackendConfig(
            api_key=self.api_key,
            base_url=self.base_url,
            extra={**self.config_extra(), **extra},
        )

    def config_extra(self) -> dict[str, str]:
        """BackendConfig.extra of `config()` before the caller's additions."""
        return {"allowed_hosts": self.allowed_hosts}

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
        """The first injected fault of `kinds` for `endpoint` that fires now, counted."""
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
        return fault is not None and self.answer_fault(ex, fault, endpoint)

    def answer_fault(self, ex: Exchange, fault: Fault, endpoint: str) -> bool:
        """Answer an HTTP-level fault; False when the request should go on (slow)."""
        if fault.kind == "drop":
            ex.drop()
            return True
        if fault.kind == "slow":
            time.sleep(float(fault.options.get("seconds", self.slow_seconds)))
            return False
        self.fault_response(ex, fault, endpoint)
        return True

    def fault_response(self, ex: Exchange, fault: Fault, endpoint: str) -> None:
        """The answer to a fault: broken bytes for malformed, else FAULT_STATUS + error_body."""
        kind = fault.kind
        if kind == "malformed":
            if endpoint in self.IMAGE_ENDPOINTS:
                ex.send(200, CORRUPT_PNG, "image/png")
            else:
                ex.send(200, self.MALFORMED_JSON, "application/json")
            return
        status = self.FAULT_STATUS[kind]
        ex.json(
            status,
            self.error_body(status, kind, fault.options),
            self.fault_headers(fault),
        )

    def fault_headers(self, fault: Fault) -> dict[str, str]:
        """Headers of a fault's answer: Retry-After for rate_limit."""
        return retry_after_headers(fault.options) if fault.kind == "rate_limit" else {}

    def error_body(
        self, status: int, kind: str, options: dict[str, Any]
    ) -> dict[str, Any]:
        return {"detail": options.get("message") or f"injected {kind}"}

    def delivery_fault(self, ex: Exchange, fault: Fault) -> bool:
        """Answer a delivery-only fault (expired, wrong_content_type, redirect)."""
        if fault.kind == "expired":
            ex.send(404, b"File not found or expired", "text/plain")
        elif fault.kind == "wrong_content_type":
            ex.send(200, b"<html><body><h1>Sign in</h1></body></html>", "text/html")
        elif fault.kind == "redirect":
            location = str(fault.options.get("location", "http://169.254.169.254/"))
            ex.send(302, b"", "text/plain", {"Location": location})
        else:
            return False
        return True

    # Counters and state for tests

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    @property
    def counts(self) -> Counter[str]:
        """A snapshot of the counters (faults, fault_<kind> and the fake's own)."""
        with self._lock:
            return Counter(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._counts.clear()

    # Subclasses

    def dispatch(self, ex: Exchange) -> None:
        """Route and answer one request."""
        raise NotImplementedError

    def response_headers(self) -> dict[str, str]:
        """Headers sent with every answer."""
        return {}


# --- Tasks that finish later and call back -------------------------------------------------------


class AsyncFake(FakeServer):
    """A fake whose submissions are tasks (`task.id`, `task.ready_at`, `task.webhook_url`,
    `task.webhooks`, `task.extra`) that finish later, with callbacks by a WebhookSender."""

    def __init__(
        self,
        *,
        webhook_retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0),
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.webhook_retry_delays = webhook_retry_delays
        self.webhook_log: list[dict[str, Any]] = []
        self._tasks: dict[str, Any] = {}
        self._bodies: list[dict[str, Any]] = []
        self._webhooks = WebhookSender(self)

    def on_start(self) -> None:
        self._webhooks.start()

    def on_stop(self) -> None:
        self._webhooks.stop()

    def task(self, task_id: str) -> Any:
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
            super().reset()
            self._tasks.clear()
            self._bodies.clear()
            self.webhook_log.clear()

    def send_webhook(self, task_id: str, url: str | None = None) -> bool:
        """Send the callback of a task now (to `url` or its webhook URL); True on 2xx."""
        return self._webhooks.send(self.task(task_id), url=url)

    def webhook_ready(self, task: Any, now: float) -> bool:
        """Whether a finished task's callback goes out."""
        return task.ready_at <= now

    def webhook_message(
        self, task: Any, fault: str | None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the callback for a finished `task`."""
        raise NotImplementedError


class WebhookSender:
    """Delivers callbacks when tasks finish, from one scheduler thread and a small pool."""

    def __init__(self, fake: AsyncFake) -> None:
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
            max_workers=16, thread_name_prefix="fake-webhook"
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

    def send(self, task: Any, attempt: int = 0, url: str | None = None) -> bool:
        """POST the callback of `task` (to `url` or the task's webhook URL); True on 2xx."""
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


# --- A queue of requests with result files (fal, Replicate) --------------------------------------


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


class FakeProvider(AsyncFake):
    """Requests queued for `queue_latency`, done `latency` seconds after the submit, with
    result images on the delivery host until `url_ttl` seconds after they are done."""

    HTTP_FAULTS: ClassVar[frozenset[str]] = COMMON_FAULTS | {
        "rate_limit",
        "payment_required",
        "validation",
    }
    DELIVERY_FAULTS: ClassVar[frozenset[str]] = frozenset(
        {"expired", "wrong_content_type", "redirect"}
    )
    WEBHOOK_FAULTS: ClassVar[frozenset[str]] = frozenset(
        {"bad_signature", "unsigned", "stale", "skip", "duplicate"}
    )
    OTHER_ENDPOINTS: ClassVar[tuple[str, ...]] = ("delivery", "webhook")

    def __init__(
        self,
        *,
        api_key: str,
        latency: float = 0.0,
        queue_latency: float = 0.0,
        url_ttl: float = 3600.0,
        result_size: tuple[int, int] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(api_key=api_key, **kw)
        self.latency = latency
        self.queue_latency = queue_latency
        self.url_ttl = url_ttl
        self.result_size = result_size  # None: the requested size
        self._headers: list[dict[str, str]] = []
        self._images: dict[str, tuple[bytes, str]] = {}

    @property
    def submit_headers(self) -> list[dict[str, str]]:
        """The headers of accepted submissions (lower-cased names), in order."""
        with self._lock:
            return list(self._headers)

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._headers.clear()
            self._images.clear()

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
        tag_latency, tag_outcome = steering(
            str(body.get("prompt") or ""), self.OUTCOMES
        )
        latency = self.latency if tag_latency is None else tag_latency
        chosen, options = tag_outcome or "ok", {}
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

    def phase(self, task: FakeTask, now: float) -> str:
        """ "canceled", "queued", "running" or "done" (each fake names them its own way)."""
        if task.canceled:
            return "canceled"
        if now < task.queued_until:
            return "queued"
        if now < task.ready_at:
            return "running"
        return "done"

    def webhook_ready(self, task: FakeTask, now: float) -> bool:
        return task.ready_at <= now and not task.canceled

    def webhook_message(
        self, task: FakeTask, fault: str | None
    ) -> tuple[bytes, dict[str, str]]:
        """The callback of a finished request: signed, unless the webhook `fault` is unsigned;
        stale dates it 10 minutes back, bad_signature signs it with another key."""
        body = json.dumps(self.webhook_payload(task)).encode()
        headers = {"Content-Type": "application/json"}
        if fault != "unsigned":
            stamp = int(time.time()) - (600 if fault == "stale" else 0)
            forged = fault == "bad_signature"
            headers |= self.webhook_signature(task, body, stamp, forged=forged)
        return body, headers

    def webhook_payload(self, task: FakeTask) -> dict[str, Any]:
        """The JSON body of a request's callback."""
        raise NotImplementedError

    def webhook_signature(
        self, task: FakeTask, body: bytes, timestamp: int, *, forged: bool
    ) -> dict[str, str]:
        """The signature headers of a callback (`forged`: signed with the wrong key)."""
        raise NotImplementedError

    def image_bytes(self, task: FakeTask) -> tuple[bytes, str]:
        """A real image of the request's size and format, unique per request."""
        with self._lock:
            cached = self._images.get(task.id)
        if cached is not None:
            return cached
        width, height = self.result_size or (task.width, task.height)
        hue = task.seed % 8 * 32
        result = result_image(
            width,
            height,
            task.format if task.format in PIL_FORMATS else "png",
            (hue, 255 - hue, 128),
            f"{self.server_name} {task.id}",
        )
        with self._lock:
            self._images[task.id] = result
        return result

    def deliver(self, ex: Exchange, task_id: str) -> None:
        """Serve a result image, with the delivery faults."""
        self.count("deliveries")
        fault = self.take_fault("delivery", self.DELIVERY_FAULTS)
        if fault is not None and self.delivery_fault(ex, fault):
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


# --- Receiving callbacks, running standalone -----------------------------------------------------


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


def main(
    factory: Callable[..., Any],
    *,
    description: str = "Run the fake until interrupted.",
    options: Sequence[tuple[str, type, Any]] = (),
) -> None:
    """Run a fake standalone (`--port`, `--latency` and `options`: (flag, type, default)),
    printing the environment that points the studio at it."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=2.0)
    for flag, kind, default in options:
        parser.add_argument(flag, type=kind, default=default)
    fake = factory(**vars(parser.parse_args()))
    with fake:
        for key, value in fake.env().items():
            print(f"export {key}={shlex.quote(value)}")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
