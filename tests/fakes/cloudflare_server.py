"""A fake Cloudflare Workers AI REST API for FLUX.2 (providers.md section 4) over real HTTP on
127.0.0.1, for contract tests and the engine's integration tests.

    with FakeCloudflare(latency=0.5) as fake:
        backend = CloudflareBackend(fake.config())          # or os.environ.update(fake.env())
        fake.inject("rate_limit", retry_after=7)
        ...
        fake.requests[-1]["fields"], fake.counts["runs"]

What it does:
- `POST /client/v4/accounts/{account}/ai/run/@cf/black-forest-labs/{flux-2-dev|flux-2-klein-4b|
  flux-2-klein-9b}` checks `Authorization: Bearer <token>` (missing or wrong: 401/403 with
  Cloudflare's code 10000), the account in the path (another: 404, code 7003), then parses the
  **multipart/form-data** body strictly: a JSON or urlencoded body is refused; `prompt` is required;
  `width`/`height` are integers 256–1920; `steps`, `seed` integers, `guidance` a number; files only
  as `input_image_0` … `input_image_3`, each a decodable image of at most 512×512; unknown fields
  are refused. Errors use the v4 envelope `{"success": false, "errors": [{"code", "message"}]}`.
  After `latency` seconds it answers `{"result": {"image": <base64 JPEG of the requested size>},
  "success": true, "errors": [], "messages": []}` with a `cf-ray` header.
- `POST /client/v4/accounts/{account}/ai/run` with JSON `{"model": "black-forest-labs/flux-2-flex"
  | ".../flux-2-pro-preview", "input": {...}}` (the proxied BFL models, providers.md 4.4) answers
  `{"state": "Completed", "result": {"image": "<URL on this server>"}, "gatewayMetadata": {...}}`;
  `GET /delivery/<id>.jpeg` serves that image.

Faults (`inject(kind, endpoint=..., times=1 | probability=p, **options)`; endpoint "run" (hosted
models), "proxied", "delivery" or "api" = run and proxied):
    rate_limit (429; options retry_after=seconds, header="seconds"|"date"|"none"), server_error
    (500), unavailable (503 with Retry-After: 1), drop (close the socket without answering), slow
    (sleep `seconds`, then answer normally), malformed (200 with broken JSON; on delivery: corrupt
    image bytes), unauthorized (401, code 10000), forbidden (403, code 10000), quota (429, code 4006
    "daily free allocation" - seen in the wild, unconfirmed), moderation (400 "NSFW" - Workers AI
    documents none, our assumption), bad_request (400), wrong_content_type (200 text/html),
    envelope_error (200 with success false), bad_base64 (200, result.image not base64), not_image
    (200, base64 of bytes that are no image); proxied only: failed (state "Failed"), moderated
    (state "Content Moderated"); delivery only: expired (403).

Thread-safe (one lock around all state); ThreadingHTTPServer with daemon threads and HTTP/1.1.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import hmac
import io
import itertools
import json
import random
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

HOSTED_MODELS = ("flux-2-dev", "flux-2-klein-4b", "flux-2-klein-9b")
PROXIED_MODELS = (
    "black-forest-labs/flux-2-flex",
    "black-forest-labs/flux-2-pro-preview",
)
MIN_SIDE, MAX_SIDE = 256, 1920
MAX_REFERENCES = 4
REFERENCE_MAX_SIDE = 512
FORM_FIELDS = {"prompt", "width", "height", "steps", "guidance", "seed"}

HTTP_FAULTS = {
    "rate_limit",
    "server_error",
    "unavailable",
    "drop",
    "slow",
    "malformed",
    "unauthorized",
    "forbidden",
    "quota",
    "moderation",
    "bad_request",
    "wrong_content_type",
    "envelope_error",
    "bad_base64",
    "not_image",
}
PROXIED_OUTCOMES = {"failed": "Failed", "moderated": "Content Moderated"}
DELIVERY_FAULTS = {"expired"}
ENDPOINTS = ("run", "proxied", "delivery")


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


def envelope_error(code: int, message: str) -> dict[str, Any]:
    return {
        "result": None,
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
    }


@dataclass
class Fault:
    kind: str
    endpoint: str
    times: int | None  # None: until cleared
    probability: float | None
    options: dict[str, Any]
    fired: int = 0


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    block_on_close = False
    fake: FakeCloudflare

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the game


class FakeCloudflare:
    def __init__(
        self,
        *,
        api_token: str = "cf-test-token",
        account_id: str = "0123456789abcdef0123456789abcdef",
        latency: float = 0.0,
        slow_seconds: float = 2.0,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.api_token = api_token
        self.account_id = account_id
        self.latency = latency
        self.slow_seconds = slow_seconds
        self.host = host
        self._port = port
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._faults: list[Fault] = []
        self._counts: Counter[str] = Counter()
        self._requests: list[dict[str, Any]] = []
        self._deliveries: dict[str, bytes] = {}
        self._serial = itertools.count(1)
        self._server: _Server | None = None

    # Lifecycle

    def start(self) -> FakeCloudflare:
        server = _Server((self.host, self._port), _Handler)
        server.fake = self
        self._server = server
        self._port = server.server_address[1]
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeCloudflare:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Where to point a client

    @property
    def port(self) -> int:
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The API base, like https://api.cloudflare.com/client/v4."""
        return f"{self.root_url}/client/v4"

    def config(self, **extra: str) -> Any:
        """A BackendConfig for CloudflareBackend pointing here (extra: read_timeout=..., ...)."""
        from generation.backends.base import BackendConfig

        return BackendConfig(
            api_key=self.api_token,
            base_url=self.base_url,
            extra={"account_id": self.account_id, **extra},
        )

    def env(self) -> dict[str, str]:
        """Environment for a worker process: CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID, CLOUDFLARE_API_URL."""
        return {
            "CLOUDFLARE_API_TOKEN": self.api_token,
            "CLOUDFLARE_ACCOUNT_ID": self.account_id,
            "CLOUDFLARE_API_URL": self.base_url,
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
                "delivery"
                if kind in DELIVERY_FAULTS
                else "proxied"
                if kind in PROXIED_OUTCOMES
                else "api"
            )
        known = HTTP_FAULTS | set(PROXIED_OUTCOMES) | DELIVERY_FAULTS
        if kind not in known:
            raise ValueError(
                f"unknown fault {kind!r}; known: {', '.join(sorted(known))}"
            )
        if endpoint not in (*ENDPOINTS, "api"):
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

    def _take_fault(self, endpoint: str, kinds: set[str]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint != endpoint and not (
                    fault.endpoint == "api" and endpoint in ("run", "proxied")
                ):
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

    # State for tests

    @property
    def counts(self) -> Counter[str]:
        """A snapshot: requests, runs (images made), proxied_runs, deliveries, rejected, faults, fault_<kind>."""
        with self._lock:
            return Counter(self._counts)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Accepted runs in order: {"model", "fields", "files", "headers" (lower-case names)} (hosted) or {"model", "json"}."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._counts.clear()
            self._requests.clear()
            self._deliveries.clear()

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    # The model

    def validate_form(
        self, parts: list[Part]
    ) -> tuple[dict[str, str], dict[str, dict[str, Any]], list[str]]:
        """(fields, files, problems) of a hosted model's multipart body."""
        fields: dict[str, str] = {}
        files: dict[str, dict[str, Any]] = {}
        problems: list[str] = []
        allowed_files = {f"input_image_{i}" for i in range(MAX_REFERENCES)}
        for part in parts:
            if part.name in fields or part.name in files:
                problems.append(f"{part.name}: given twice")
            elif part.name in FORM_FIELDS:
                if part.filename is not None:
                    problems.append(f"{part.name}: must be a plain field, not a file")
                fields[part.name] = part.data.decode("utf-8", "replace")
            elif part.name in allowed_files:
                try:
                    with Image.open(io.BytesIO(part.data)) as image:
                        image.load()
                        width, height = image.size
                except Exception:
                    problems.append(f"{part.name}: not a decodable image")
                    continue
                if width > REFERENCE_MAX_SIDE or height > REFERENCE_MAX_SIDE:
                    problems.append(
                        f"{part.name}: {width}x{height} is larger than 512x512"
                    )
                files[part.name] = {
                    "filename": part.filename,
                    "content_type": part.content_type,
                    "width": width,
                    "height": height,
                    "bytes": part.data,
                }
            else:
                problems.append(f"{part.name}: unknown field")
        if not fields.get("prompt", "").strip():
            problems.append("prompt: required")
        for name in ("width", "height"):
            if name in fields:
                value = _int(fields[name])
                if value is None or not MIN_SIDE <= value <= MAX_SIDE:
                    problems.append(
                        f"{name}: must be an integer between {MIN_SIDE} and {MAX_SIDE}"
                    )
        for name in ("steps", "seed"):
            if name in fields and _int(fields[name]) is None:
                problems.append(f"{name}: must be an integer")
        if "guidance" in fields:
            try:
                float(fields["guidance"])
            except ValueError:
                problems.append("guidance: must be a number")
        expected = [f"input_image_{i}" for i in range(len(files))]
        if sorted(files) != expected:
            problems.append(
                f"input images must be numbered from input_image_0 without gaps, got {sorted(files)}"
            )
        return fields, files, problems

    def render(self, width: int, height: int, seed: int, fmt: str = "JPEG") -> bytes:
        """A real image of the requested size; unique bytes per call."""
        serial = next(self._serial)
        rng = random.Random(seed * 7919 + serial)
        image = Image.new(
            "RGB",
            (width, height),
            (rng.randrange(256), rng.randrange(256), rng.randrange(256)),
        )
        ImageDraw.Draw(image).text(
            (8, 8), f"fake cloudflare #{serial}", fill=(255, 255, 255)
        )
        out = io.BytesIO()
        image.save(out, format=fmt, quality=80)
        return out.getvalue()

    def store_delivery(self, data: bytes) -> str:
        name = f"{uuid.uuid4().hex}.jpeg"
        with self._lock:
            self._deliveries[name] = data
        return f"{self.root_url}/delivery/{name}"


def _int(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-cloudflare/1.0"
    timeout = 60
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
        self.send_header("cf-ray", f"{uuid.uuid4().hex[:16]}-FAKE")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(
        self, status: int, data: Any, headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(data).encode(), headers=headers)

    def _error(
        self,
        status: int,
        code: int,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._json(status, envelope_error(code, message), headers)

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
            self._error(
                429, 3040, "Capacity temporarily exceeded, please try again.", headers
            )
        elif kind == "server_error":
            self._error(500, 3043, "Internal server error")
        elif kind == "unavailable":
            self._error(503, 3043, "Service unavailable", {"Retry-After": "1"})
        elif kind == "malformed":
            if endpoint == "delivery":
                self._send(200, b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")
            else:
                self._send(200, b'{"result": {"image": "/9j/4AAQ', "application/json")
        elif kind == "unauthorized":
            self._error(401, 10000, "Authentication error")
        elif kind == "forbidden":
            self._error(403, 10000, "Authentication error")
        elif kind == "quota":
            self._error(
                429,
                4006,
                "you have used up your daily free allocation of 10,000 neurons, please upgrade",
            )
        elif kind == "moderation":
            self._error(400, 3030, "Input prompt contains NSFW content.")
        elif kind == "bad_request":
            self._error(400, 5006, "Error: oneOf at '/' not met")
        elif kind == "wrong_content_type":
            self._send(200, b"<html><body>Bad gateway</body></html>", "text/html")
        elif kind == "envelope_error":
            self._json(200, envelope_error(3000, "Unknown internal error"))
        elif kind == "bad_base64":
            self._json(
                200,
                {
                    "result": {"image": "***not base64***"},
                    "success": True,
                    "errors": [],
                    "messages": [],
                },
            )
        elif kind == "not_image":
            text = base64.b64encode(b"plain text, not an image").decode()
            self._json(
                200,
                {
                    "result": {"image": text},
                    "success": True,
                    "errors": [],
                    "messages": [],
                },
            )
        elif kind == "expired":
            self._send(
                403,
                b"<Error><Code>AuthenticationFailed</Code></Error>",
                "application/xml",
            )
        return True

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization") or ""
        if not header:
            self._error(401, 10000, "Authentication error")
            return False
        expected = f"Bearer {self.server.fake.api_token}"
        if not hmac.compare_digest(header.encode(), expected.encode()):
            self._error(403, 10000, "Authentication error")
            return False
        return True

    # Routes

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake = self.server.fake
        fake._count("requests")
        path = urlsplit(self.path).path
        prefix = "/client/v4/accounts/"
        if not path.startswith(prefix) or "/ai/run" not in path:
            self._error(404, 7000, "No route for that URI")
            return
        account, _, rest = path[len(prefix) :].partition("/")
        endpoint = "proxied" if rest == "ai/run" else "run"
        kinds = (
            HTTP_FAULTS | set(PROXIED_OUTCOMES)
            if endpoint == "proxied"
            else HTTP_FAULTS
        )
        fault = fake._take_fault(endpoint, kinds)
        outcome = (
            fault if fault is not None and fault.kind in PROXIED_OUTCOMES else None
        )
        if fault is not None and outcome is None and self._http_fault(fault, endpoint):
            return
        if not self._authorised():
            return
        if account != fake.account_id:
            self._error(
                404,
                7003,
                f"Could not route to {path}, perhaps your object identifier is invalid?",
            )
            return
        if endpoint == "proxied":
            self._proxied(raw, outcome)
            return
        model = rest.removeprefix("ai/run/@cf/black-forest-labs/")
        if (
            not rest.startswith("ai/run/@cf/black-forest-labs/")
            or model not in HOSTED_MODELS
        ):
            self._error(
                400, 5007, f"No such model {rest.removeprefix('ai/run/')} or task"
            )
            return
        try:
            parts = parse_multipart(self.headers.get("Content-Type", ""), raw)
        except ValueError as exc:
            fake._count("rejected")
            self._error(400, 5006, f"Type mismatch: {exc}")
            return
        fields, files, problems = fake.validate_form(parts)
        if problems:
            fake._count("rejected")
            self._error(400, 5006, "; ".join(problems))
            return
        if fake.latency:
            time.sleep(fake.latency)
        width, height = int(fields.get("width", 1024)), int(fields.get("height", 768))
        image = fake.render(width, height, int(fields.get("seed", 0)))
        with fake._lock:
            fake._counts["runs"] += 1
            fake._requests.append(
                {
                    "model": model,
                    "fields": fields,
                    "files": files,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }
            )
        body = {
            "result": {"image": base64.b64encode(image).decode()},
            "success": True,
            "errors": [],
            "messages": [],
        }
        self._json(200, body)

    def _proxied(self, raw: bytes, outcome: Fault | None) -> None:
        fake = self.server.fake
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, 5006, "the body is not JSON")
            return
        model = body.get("model") if isinstance(body, dict) else None
        values = body.get("input") if isinstance(body, dict) else None
        if model not in PROXIED_MODELS:
            self._error(400, 5007, f"No such model {model}")
            return
        if not isinstance(values, dict) or not str(values.get("prompt") or "").strip():
            self._error(400, 5006, "input.prompt: required")
            return
        with fake._lock:
            fake._counts["proxied_runs"] += 1
            fake._requests.append({"model": model, "json": body})
        if outcome is not None:
            self._json(
                200,
                {
                    "state": PROXIED_OUTCOMES[outcome.kind],
                    "result": None,
                    "gatewayMetadata": {"keySource": "Unified"},
                },
            )
            return
        if fake.latency:
            time.sleep(fake.latency)
        image = fake.render(
            int(values.get("width") or 1024),
            int(values.get("height") or 1024),
            int(values.get("seed") or 0),
        )
        url = fake.store_delivery(image)
        self._json(
            200,
            {
                "state": "Completed",
                "result": {"image": url},
                "gatewayMetadata": {"keySource": "Unified"},
            },
        )

    def do_GET(self) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path
        if not path.startswith("/delivery/"):
            self._error(404, 7000, "No route for that URI")
            return
        fake._count("deliveries")
        fault = fake._take_fault("delivery", HTTP_FAULTS | DELIVERY_FAULTS)
        if fault is not None and self._http_fault(fault, "delivery"):
            return
        with fake._lock:
            data = fake._deliveries.get(path[len("/delivery/") :])
        if data is None:
            self._send(
                404, b"<Error><Code>BlobNotFound</Code></Error>", "application/xml"
            )
            return
        self._send(200, data, "image/jpeg")
