"""A fake Cloudflare Workers AI REST API for FLUX.2 (docs/providers.md §4) over real HTTP on
127.0.0.1, for contract tests and the engine's integration tests.

    with FakeCloudflare(latency=0.5) as fake:
        backend = CloudflareBackend(fake.config())          # or override_settings(**fake.env())
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
  | ".../flux-2-pro-preview", "input": {...}}` (the proxied BFL models, docs/providers.md §4.4) answers
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

Thread-safe: one lock around all state. The HTTP server, fault registry and counters come from
FakeServer in tests/fakes/base.py.
"""

from __future__ import annotations

import base64
import hmac
import io
import itertools
import json
import random
import time
import uuid
from typing import Any

from PIL import Image

from tests.fakes.base import (
    COMMON_FAULTS,
    Exchange,
    FakeServer,
    Fault,
    Part,
    parse_multipart,
    result_image,
    retry_after_headers,
)
from tests.fakes.base import make_image as make_image

HOSTED_MODELS = ("flux-2-dev", "flux-2-klein-4b", "flux-2-klein-9b")
PROXIED_MODELS = (
    "black-forest-labs/flux-2-flex",
    "black-forest-labs/flux-2-pro-preview",
)
MIN_SIDE, MAX_SIDE = 256, 1920
MAX_REFERENCES = 4
REFERENCE_MAX_SIDE = 512
FORM_FIELDS = {"prompt", "width", "height", "steps", "guidance", "seed"}

HTTP_FAULTS = COMMON_FAULTS | {
    "rate_limit",
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


def envelope_error(code: int, message: str) -> dict[str, Any]:
    return {
        "result": None,
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
    }


# kind -> (status, Cloudflare error code, message) of the faults answered with an error envelope.
ENVELOPE_FAULTS: dict[str, tuple[int, int, str]] = {
    "rate_limit": (429, 3040, "Capacity temporarily exceeded, please try again."),
    "server_error": (500, 3043, "Internal server error"),
    "unavailable": (503, 3043, "Service unavailable"),
    "unauthorized": (401, 10000, "Authentication error"),
    "forbidden": (403, 10000, "Authentication error"),
    "quota": (
        429,
        4006,
        "you have used up your daily free allocation of 10,000 neurons, please upgrade",
    ),
    "moderation": (400, 3030, "Input prompt contains NSFW content."),
    "bad_request": (400, 5006, "Error: oneOf at '/' not met"),
    "envelope_error": (200, 3000, "Unknown internal error"),
}


class FakeCloudflare(FakeServer):
    server_name = "fake-cloudflare"
    HTTP_FAULTS = frozenset(HTTP_FAULTS)
    OUTCOMES = frozenset(PROXIED_OUTCOMES)
    DELIVERY_FAULTS = frozenset(DELIVERY_FAULTS)
    API_ENDPOINTS = ("run", "proxied")
    OTHER_ENDPOINTS = ("delivery",)
    OUTCOME_ENDPOINT = "proxied"
    MALFORMED_JSON = b'{"result": {"image": "/9j/4AAQ'

    def __init__(
        self,
        *,
        api_token: str = "cf-test-token",
        account_id: str = "0123456789abcdef0123456789abcdef",
        latency: float = 0.0,
        **kw: Any,
    ) -> None:
        """`kw`: slow_seconds, host, port, seed (FakeServer's)."""
        super().__init__(api_key=api_token, **kw)
        self.account_id = account_id
        self.latency = latency
        self._requests: list[dict[str, Any]] = []
        self._deliveries: dict[str, bytes] = {}
        self._serial = itertools.count(1)

    # Where to point a client (config(): FakeServer's)

    @property
    def api_token(self) -> str:
        return self.api_key

    @api_token.setter
    def api_token(self, value: str) -> None:
        self.api_key = value

    @property
    def base_url(self) -> str:
        """The API base, like https://api.cloudflare.com/client/v4."""
        return f"{self.root_url}/client/v4"

    def config_extra(self) -> dict[str, str]:
        return {"account_id": self.account_id}

    def env(self) -> dict[str, str]:
        """Settings (override_settings) or a worker process's environment:
        CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID, CLOUDFLARE_API_URL.
        """
        return {
            "CLOUDFLARE_API_TOKEN": self.api_token,
            "CLOUDFLARE_ACCOUNT_ID": self.account_id,
            "CLOUDFLARE_API_URL": self.base_url,
        }

    # State for tests (counts: requests, runs (images made), proxied_runs, deliveries, rejected,
    # faults, fault_<kind>)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Accepted runs in order: {"model", "fields", "files", "headers" (lower-case names)} (hosted) or {"model", "json"}."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._requests.clear()
            self._deliveries.clear()

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
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        return result_image(width, height, fmt, colour, f"fake cloudflare #{serial}")[0]

    def store_delivery(self, data: bytes) -> str:
        name = f"{uuid.uuid4().hex}.jpeg"
        with self._lock:
            self._deliveries[name] = data
        return f"{self.root_url}/delivery/{name}"

    # Faults

    def response_headers(self) -> dict[str, str]:
        return {"cf-ray": f"{uuid.uuid4().hex[:16]}-FAKE"}

    def fault_response(self, ex: Exchange, fault: Fault, endpoint: str) -> None:
        kind = fault.kind
        if kind in ENVELOPE_FAULTS:
            status, code, message = ENVELOPE_FAULTS[kind]
            headers = (
                retry_after_headers(fault.options)
                if kind == "rate_limit"
                else {"Retry-After": "1"}
                if kind == "unavailable"
                else None
            )
            _error(ex, status, code, message, headers)
        elif kind == "malformed" and endpoint == "delivery":
            ex.send(200, b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")
        elif kind == "malformed":
            super().fault_response(ex, fault, endpoint)
        elif kind == "wrong_content_type":
            ex.send(200, b"<html><body>Bad gateway</body></html>", "text/html")
        elif kind in ("bad_base64", "not_image"):
            image = (
                "***not base64***"
                if kind == "bad_base64"
                else base64.b64encode(b"plain text, not an image").decode()
            )
            ex.json(
                200,
                {
                    "result": {"image": image},
                    "success": True,
                    "errors": [],
                    "messages": [],
                },
            )
        elif kind == "expired":
            ex.send(
                403,
                b"<Error><Code>AuthenticationFailed</Code></Error>",
                "application/xml",
            )

    def _authorised(self, ex: Exchange) -> bool:
        header = ex.headers.get("Authorization") or ""
        if not header:
            _error(ex, 401, 10000, "Authentication error")
            return False
        expected = f"Bearer {self.api_token}"
        if not hmac.compare_digest(header.encode(), expected.encode()):
            _error(ex, 403, 10000, "Authentication error")
            return False
        return True

    # Routes

    def dispatch(self, ex: Exchange) -> None:
        if ex.command == "POST":
            self._run(ex)
        elif ex.command == "GET":
            self._deliver(ex)
        else:
            ex.send_error(501, f"Unsupported method ({ex.command!r})")

    def _run(self, ex: Exchange) -> None:
        self.count("requests")
        path = ex.route
        prefix = "/client/v4/accounts/"
        if not path.startswith(prefix) or "/ai/run" not in path:
            _error(ex, 404, 7000, "No route for that URI")
            return
        account, _, rest = path[len(prefix) :].partition("/")
        endpoint = "proxied" if rest == "ai/run" else "run"
        kinds = (
            self.HTTP_FAULTS | self.OUTCOMES
            if endpoint == "proxied"
            else self.HTTP_FAULTS
        )
        fault = self.take_fault(endpoint, kinds)
        outcome = fault if fault is not None and fault.kind in self.OUTCOMES else None
        if (
            fault is not None
            and outcome is None
            and self.answer_fault(ex, fault, endpoint)
        ):
            return
        if not self._authorised(ex):
            return
        if account != self.account_id:
            _error(
                ex,
                404,
                7003,
                f"Could not route to {path}, perhaps your object identifier is invalid?",
            )
            return
        if endpoint == "proxied":
            self._proxied(ex, outcome)
            return
        model = rest.removeprefix("ai/run/@cf/black-forest-labs/")
        if (
            not rest.startswith("ai/run/@cf/black-forest-labs/")
            or model not in HOSTED_MODELS
        ):
            _error(
                ex, 400, 5007, f"No such model {rest.removeprefix('ai/run/')} or task"
            )
            return
        try:
            parts = parse_multipart(ex.headers.get("Content-Type", ""), ex.raw_body)
        except ValueError as exc:
            self.count("rejected")
            _error(ex, 400, 5006, f"Type mismatch: {exc}")
            return
        fields, files, problems = self.validate_form(parts)
        if problems:
            self.count("rejected")
            _error(ex, 400, 5006, "; ".join(problems))
            return
        if self.latency:
            time.sleep(self.latency)
        width, height = int(fields.get("width", 1024)), int(fields.get("height", 768))
        image = self.render(width, height, int(fields.get("seed", 0)))
        with self._lock:
            self._counts["runs"] += 1
            self._requests.append(
                {
                    "model": model,
                    "fields": fields,
                    "files": files,
                    "headers": {k.lower(): v for k, v in ex.headers.items()},
                }
            )
        body = {
            "result": {"image": base64.b64encode(image).decode()},
            "success": True,
            "errors": [],
            "messages": [],
        }
        ex.json(200, body)

    def _proxied(self, ex: Exchange, outcome: Fault | None) -> None:
        try:
            body = json.loads(ex.raw_body)
        except ValueError:
            _error(ex, 400, 5006, "the body is not JSON")
            return
        model = body.get("model") if isinstance(body, dict) else None
        values = body.get("input") if isinstance(body, dict) else None
        if model not in PROXIED_MODELS:
            _error(ex, 400, 5007, f"No such model {model}")
            return
        if not isinstance(values, dict) or not str(values.get("prompt") or "").strip():
            _error(ex, 400, 5006, "input.prompt: required")
            return
        with self._lock:
            self._counts["proxied_runs"] += 1
            self._requests.append({"model": model, "json": body})
        if outcome is not None:
            ex.json(
                200,
                {
                    "state": PROXIED_OUTCOMES[outcome.kind],
                    "result": None,
                    "gatewayMetadata": {"keySource": "Unified"},
                },
            )
            return
        if self.latency:
            time.sleep(self.latency)
        image = self.render(
            int(values.get("width") or 1024),
            int(values.get("height") or 1024),
            int(values.get("seed") or 0),
        )
        url = self.store_delivery(image)
        ex.json(
            200,
            {
                "state": "Completed",
                "result": {"image": url},
                "gatewayMetadata": {"keySource": "Unified"},
            },
        )

    def _deliver(self, ex: Exchange) -> None:
        path = ex.route
        if not path.startswith("/delivery/"):
            _error(ex, 404, 7000, "No route for that URI")
            return
        self.count("deliveries")
        fault = self.take_fault("delivery", self.HTTP_FAULTS | self.DELIVERY_FAULTS)
        if fault is not None and self.answer_fault(ex, fault, "delivery"):
            return
        with self._lock:
            data = self._deliveries.get(path[len("/delivery/") :])
        if data is None:
            ex.send(404, b"<Error><Code>BlobNotFound</Code></Error>", "application/xml")
            return
        ex.send(200, data, "image/jpeg")


def _int(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None


def _error(
    ex: Exchange,
    status: int,
    code: int,
    message: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer with Cloudflare's v4 error envelope."""
    ex.json(status, envelope_error(code, message), headers)
