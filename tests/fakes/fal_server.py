"""A fake fal.ai queue speaking the documented protocol (docs/providers.md §2) over real HTTP on
127.0.0.1, for contract tests, the engine's integration tests and benchmarks.

    with FakeFal(latency=2.0) as fake:
        backend = FalBackend(fake.config())              # or override_settings(**fake.env())
        fake.inject("rate_limit", endpoint="submit", retry_after=3)
        ...
        fake.counts["submissions"], fake.counts["status_polls"], fake.bodies

What it does:
- `POST /{model_id}[/{subpath}]` for the FLUX.2 ids of docs/providers.md §2.1 checks
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
- `GET /.well-known/jwks.json` publishes the Ed25519 key that signs webhooks (docs/providers.md §2.7:
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

The lifecycle, fault registry, counters, images and webhook sender are `FakeProvider`'s
(tests/fakes/base.py). Thread-safe; `python -m tests.fakes.fal_server` runs it standalone and
prints the environment to point the studio at it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.fakes.base import (
    Exchange,
    FakeProvider,
    FakeTask,
    image_size,
    is_int,
    is_number,
    main,
)
from tests.fakes.base import WebhookReceiver as WebhookReceiver
from tests.fakes.base import make_image as make_image

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


# docs/providers.md §2.1 / 2.4. Edit endpoints of pro/max/flex: 8 references (assumed, 8.5).
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
STATES = {
    "canceled": "CANCELED",
    "queued": "IN_QUEUE",
    "running": "IN_PROGRESS",
    "done": "COMPLETED",
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

    def config_extra(self) -> dict[str, str]:
        """FalBackend's extra: the allowed hosts and this fake's JWKS."""
        return {"allowed_hosts": self.allowed_hosts, "jwks_url": self.jwks_url}

    def env(self) -> dict[str, str]:
        """Settings (override_settings) or a worker process's environment
        (FAL_ALLOWED_HOSTS / FAL_JWKS_URL: registry extras).
        """
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
        """FastAPI-style validation errors for an input (empty when valid), docs/providers.md §2.4."""
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
        return STATES[self.phase(task, now)]

    def _find(
        self, ex: Exchange, endpoint: str, app: str, request_id: str
    ) -> FakeTask | None:
        """The request a status/result/cancel call names, after its injected faults and the
        key check; None when the call has been answered."""
        if self.http_fault(ex, endpoint) or not self._authorised(ex):
            return None
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
        task = self._find(ex, "status", app, request_id)
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
        task = self._find(ex, "result", app, request_id)
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
        task = self._find(ex, "cancel", app, request_id)
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

    def webhook_signature(
        self, task: FakeTask, body: bytes, timestamp: int, *, forged: bool
    ) -> dict[str, str]:
        key = self.other_key if forged else None
        return self.sign(task.id, body, timestamp=timestamp, key=key)


if __name__ == "__main__":
    main(FakeFal)
