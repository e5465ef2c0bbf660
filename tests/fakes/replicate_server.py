"""A fake Replicate predictions API for the black-forest-labs FLUX.2 models (docs/providers.md §3)
over real HTTP on 127.0.0.1, for contract tests, the engine's integration tests and benchmarks.

    with FakeReplicate(latency=2.0) as fake:
        backend = ReplicateBackend(fake.config())        # or override_settings(**fake.env())
        fake.inject("rate_limit", endpoint="submit", retry_after=3)
        ...
        fake.counts["submissions"], fake.counts["polls"], fake.bodies

What it does:
- `POST /v1/models/black-forest-labs/{name}/predictions` checks `Authorization: Bearer <token>`
  (missing or wrong: 401), validates `input` strictly against the model's schema (3.3: unknown
  fields, `input_images` vs `images`, reference counts, ranges) and answers 422 in Replicate's
  `{title, detail, status, invalid_fields}` shape, else 201 with the prediction (`starting`,
  `urls.get`, `urls.cancel`). Like Replicate, it *rounds* custom width/height to the model's step
  (32 on pro/flex/dev, 16 on max; `flex_step`) and computes klein's size from its aspect ratio
  and `output_megapixels`, so the image size shows what the real service would make.
  A `Prefer` header is recorded (`counts["prefer_wait"]`) but never makes it wait.
- `GET /v1/predictions/{id}` never blocks: `starting` for `queue_latency` seconds, `processing`
  until `latency` seconds after the submit, then `succeeded` with `output` = one URL (pro, max,
  flex, dev) or a list of URLs (klein) on the other host alias (`localhost` when the base URL is
  `127.0.0.1`), serving a real image of that size and format; after `url_ttl` seconds the file is
  gone (404) and the prediction shows `data_removed: true`, `output: null`.
- `POST /v1/predictions/{id}/cancel` cancels a running prediction and answers it (a finished one
  is answered unchanged; an unknown one 404).
- `GET /v1/webhooks/default/secret` answers `{"key": "whsec_…"}`; callbacks (body = the
  prediction) are signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
  `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`) for the events in
  `webhook_events_filter` ("completed" only is sent; "start"/"output"/"logs" are not simulated).

Faults (`inject(kind, endpoint=..., times=1 | probability=p, **options)`; endpoint "submit",
"poll", "cancel", "secret", "delivery", "webhook" or "api" = submit/poll/cancel/secret):
    rate_limit (429 "Request was throttled. Your rate limit resets in ~Ns." with Retry-After;
    options retry_after=seconds, header="seconds"|"date"|"none"), server_error (500),
    unavailable (503), drop, slow (options seconds=...), malformed (200 with broken JSON; on
    delivery: corrupt image bytes), unauthorized (401), forbidden (403), payment_required (402
    "Insufficient credit"), validation (422);
    prediction outcomes, on "submit" (the next predictions) or "poll" (that prediction from then
    on): failed (status failed, options message=...), nsfw (status failed with the NSFW message),
    aborted, data_removed (succeeded, but the output is already deleted);
    delivery only: expired (404), wrong_content_type (200 text/html), redirect (302, location=...);
    webhook only: bad_signature, unsigned, stale, skip, duplicate.
A prediction can also be steered from its prompt: "[fake:nsfw]", "[fake:latency=0.5]".

Thread-safe; `python -m tests.fakes.replicate_server` runs it standalone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.base import (
    Exchange,
    FakeProvider,
    FakeTask,
    image_size,
    is_int,
    is_number,
    main,
)

OWNER = "black-forest-labs"
ASPECT_RATIOS = ("1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")
RESOLUTIONS = {"0.5 MP": 0.5, "1 MP": 1.0, "2 MP": 2.0, "4 MP": 4.0}
KLEIN_MEGAPIXELS = ("0.25", "0.5", "1", "2", "4")  # assumed enum; default 1
NSFW_MESSAGE = "NSFW content detected. Try running it again, or try a different prompt."


@dataclass(frozen=True)
class Model:
    kind: str  # "pro" (pro/max/flex), "dev", "klein"
    images_field: str
    max_images: int
    step: int
    max_side: int
    list_output: bool
    default_format: str
    extra_fields: frozenset[str] = frozenset()


_PRO_FIELDS = {
    "prompt",
    "input_images",
    "aspect_ratio",
    "resolution",
    "width",
    "height",
    "safety_tolerance",
    "seed",
    "output_format",
    "output_quality",
}
_DEV_FIELDS = {
    "prompt",
    "input_images",
    "go_fast",
    "aspect_ratio",
    "width",
    "height",
    "seed",
    "output_format",
    "output_quality",
    "disable_safety_checker",
}
_KLEIN_FIELDS = {
    "prompt",
    "images",
    "aspect_ratio",
    "output_megapixels",
    "seed",
    "go_fast",
    "output_format",
    "output_quality",
    "disable_safety_checker",
}
FIELDS = {"pro": _PRO_FIELDS, "dev": _DEV_FIELDS, "klein": _KLEIN_FIELDS}


def models(flex_step: int = 32) -> dict[str, Model]:
    """docs/providers.md §3.1 / 3.3."""
    flex_extra = frozenset({"steps", "guidance", "prompt_upsampling"})
    return {
        "flux-2-pro": Model("pro", "input_images", 8, 32, 2048, False, "webp"),
        "flux-2-max": Model("pro", "input_images", 8, 16, 2048, False, "webp"),
        "flux-2-flex": Model(
            "pro", "input_images", 10, flex_step, 2048, False, "webp", flex_extra
        ),
        "flux-2-dev": Model("dev", "input_images", 4, 32, 1440, False, "webp"),
        "flux-2-klein-4b": Model("klein", "images", 5, 16, 2048, True, "jpg"),
        "flux-2-klein-9b": Model("klein", "images", 5, 16, 2048, True, "jpg"),
    }


def _round(value: int, step: int) -> int:
    return max(step, int(round(value / step)) * step)


def size_for(ratio: str, megapixels: float, step: int = 16) -> tuple[int, int]:
    """How the fake turns an aspect ratio and megapixels (of 1024×1024 px) into pixels."""
    w_ratio, h_ratio = (int(p) for p in ratio.split(":"))
    pixels = megapixels * 1024 * 1024
    width = math.sqrt(pixels * w_ratio / h_ratio)
    return _round(int(width), step), _round(int(pixels / width), step)


def sign(secret: str, webhook_id: str, timestamp: str | int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(
        key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode()


def _field(kind: str, field: str, description: str) -> dict[str, str]:
    return {"type": kind, "field": f"input.{field}", "description": description}


class FakeReplicate(FakeProvider):
    server_name = "fake-replicate"
    OUTCOMES = frozenset({"failed", "nsfw", "aborted", "data_removed"})
    API_ENDPOINTS = ("submit", "poll", "cancel", "secret")
    OTHER_ENDPOINTS = ("delivery", "webhook")
    OUTCOME_ENDPOINT = "submit"

    def __init__(
        self,
        *,
        api_key: str = "r8_test_token",
        webhook_secret: str | None = None,
        flex_step: int = 32,
        **kw: Any,
    ) -> None:
        super().__init__(api_key=api_key, **kw)
        self.models = models(flex_step)
        self.webhook_secret = (
            webhook_secret
            or "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()
        )
        self.other_secret = (
            "whsec_" + base64.b64encode(b"not-the-account-secret-32-bytes!").decode()
        )

    # Where to point a client (config(): FakeServer's)

    def env(self) -> dict[str, str]:
        """Settings (override_settings) or a worker process's environment
        (REPLICATE_ALLOWED_HOSTS: a registry extra).
        """
        return {
            "REPLICATE_API_TOKEN": self.api_key,
            "REPLICATE_API_URL": self.base_url,
            "REPLICATE_ALLOWED_HOSTS": self.allowed_hosts,
            "REPLICATE_WEBHOOK_SECRET": self.webhook_secret,
        }

    def error_body(
        self, status: int, kind: str, options: dict[str, Any]
    ) -> dict[str, Any]:
        if status == 429:
            after = int(float(options.get("retry_after", 2)))
            text = f"Request was throttled. Your rate limit resets in ~{after}s."
            return {"title": "Request was throttled.", "detail": text, "status": 429}
        if status == 402:
            text = (
                "You have insufficient credit to run this model. Go to "
                "https://replicate.com/account/billing#billing to purchase credit."
            )
            return {"title": "Insufficient credit", "detail": text, "status": 402}
        if status == 401:
            text = "You did not pass a valid authentication token"
            return {"title": "Unauthenticated", "detail": text, "status": 401}
        if status == 422:
            problem = _field("value_error", "prompt", "injected validation fault")
            return self._invalid([problem])
        return {
            "detail": options.get("message") or f"injected {kind}",
            "status": status,
        }

    @staticmethod
    def _invalid(problems: list[dict[str, str]]) -> dict[str, Any]:
        detail = "".join(f"- {p['field']}: {p['description']}\n" for p in problems)
        return {
            "title": "Input validation failed",
            "detail": detail,
            "status": 422,
            "invalid_fields": problems,
        }

    # Protocol

    def dispatch(self, ex: Exchange) -> None:
        route, method = ex.route.rstrip("/"), ex.command
        if method == "GET" and route.startswith("/xezq/"):
            self.deliver(ex, route.split("/")[2])
            return
        if method == "POST" and (
            match := re.fullmatch(r"/v1/models/([^/]+)/([^/]+)/predictions", route)
        ):
            owner, name = match.groups()
            if owner == OWNER and name in self.models:
                self._submit(ex, name)
            else:
                ex.json(
                    404,
                    {
                        "title": "Not found",
                        "detail": "The requested resource could not be found.",
                        "status": 404,
                    },
                )
            return
        if method == "GET" and (
            match := re.fullmatch(r"/v1/predictions/([^/]+)", route)
        ):
            self._poll(ex, match.group(1))
            return
        if method == "POST" and (
            match := re.fullmatch(r"/v1/predictions/([^/]+)/cancel", route)
        ):
            self._cancel(ex, match.group(1))
            return
        if method == "GET" and route == "/v1/webhooks/default/secret":
            self.count("secret_requests")
            if not self.http_fault(ex, "secret") and self._authorised(ex):
                ex.json(200, {"key": self.webhook_secret})
            return
        ex.json(404, {"detail": "Not found.", "status": 404})

    def _authorised(self, ex: Exchange) -> bool:
        given = ex.headers.get("Authorization") or ""
        ok = any(
            hmac.compare_digest(given.encode(), f"{scheme} {self.api_key}".encode())
            for scheme in ("Bearer", "Token")
        )
        if not ok:
            ex.json(401, self.error_body(401, "unauthorized", {}))
        return ok

    def _submit(self, ex: Exchange, name: str) -> None:
        self.count("submit_requests")
        if ex.headers.get("Prefer"):
            self.count("prefer_wait")
        if self.http_fault(ex, "submit") or not self._authorised(ex):
            return
        fault = self.take_fault("submit", self.OUTCOMES)
        try:
            payload = json.loads(ex.raw_body)
        except ValueError:
            ex.json(
                400,
                {
                    "title": "Invalid JSON",
                    "detail": "The request body is not valid JSON.",
                    "status": 400,
                },
            )
            return
        body = payload.get("input") if isinstance(payload, dict) else None
        if not isinstance(body, dict):
            ex.json(422, self._invalid([_field("required", "", "input is required")]))
            return
        problems = self.validate(name, body)
        if problems:
            ex.json(422, self._invalid(problems))
            return
        model = self.models[name]
        width, height = self.output_size(model, body)
        fmt = str(body.get("output_format") or model.default_format)
        events = payload.get("webhook_events_filter") or [
            "start",
            "output",
            "logs",
            "completed",
        ]
        webhook = payload.get("webhook") if "completed" in events else None
        task = self.new_task(
            name,
            body,
            width=width,
            height=height,
            fmt="jpeg" if fmt == "jpg" else fmt,
            outcome=fault,
            webhook_url=webhook if isinstance(webhook, str) else None,
            headers=dict(ex.headers.items()),
        )
        task.extra["created_at"] = datetime.now(UTC)
        task.extra["webhook_events_filter"] = payload.get("webhook_events_filter")
        ex.json(201, self.prediction(task))

    def output_size(self, model: Model, body: dict[str, Any]) -> tuple[int, int]:
        ratio = body.get("aspect_ratio") or "1:1"
        if model.kind == "klein":
            mp = float(body.get("output_megapixels") or 1)
            return size_for(ratio if ratio in ASPECT_RATIOS else "1:1", mp, 16)
        if ratio == "custom":
            return _round(body["width"], model.step), _round(body["height"], model.step)
        mp = (
            RESOLUTIONS.get(str(body.get("resolution") or "1 MP"), 1.0)
            if model.kind == "pro"
            else 1.0
        )
        return size_for(ratio if ratio in ASPECT_RATIOS else "1:1", mp, 16)

    def validate(self, name: str, body: dict[str, Any]) -> list[dict[str, str]]:
        """Replicate-style invalid_fields for an input (empty when valid), docs/providers.md §3.3."""
        model = self.models[name]
        allowed = FIELDS[model.kind] | model.extra_fields
        problems = [
            _field("additional_property", k, "Additional property is not allowed")
            for k in body
            if k not in allowed
        ]
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            problems.append(_field("required", "prompt", "prompt is required"))
        images = body.get(model.images_field)
        if images is not None:
            if not isinstance(images, list):
                problems.append(
                    _field(
                        "invalid_type",
                        model.images_field,
                        "Invalid type. Expected: array",
                    )
                )
            else:
                if len(images) > model.max_images:
                    problems.append(
                        _field(
                            "array_max_items",
                            model.images_field,
                            f"Array must have at most {model.max_images} items",
                        )
                    )
                for index, item in enumerate(images):
                    if not (
                        isinstance(item, str)
                        and (item.startswith("https://") or image_size(item))
                    ):
                        problems.append(
                            _field(
                                "format",
                                f"{model.images_field}.{index}",
                                "Does not match format 'uri'",
                            )
                        )
        ratios = (*ASPECT_RATIOS, "match_input_image") + (
            ("custom",) if model.kind != "klein" else ()
        )
        ratio = body.get("aspect_ratio")
        if ratio is not None and ratio not in ratios:
            problems.append(
                _field(
                    "enum",
                    "aspect_ratio",
                    f"aspect_ratio must be one of the following: {', '.join(ratios)}",
                )
            )
        for key in ("width", "height"):
            if key not in body:
                continue
            value = body[key]
            if not is_int(value):
                problems.append(
                    _field("invalid_type", key, "Invalid type. Expected: integer")
                )
            elif not 256 <= value <= model.max_side:
                problems.append(
                    _field(
                        "number_range", key, f"Must be between 256 and {model.max_side}"
                    )
                )
        if ratio == "custom" and ("width" not in body or "height" not in body):
            problems.append(
                _field(
                    "required",
                    "width",
                    "width and height are required with aspect_ratio custom",
                )
            )
        if "resolution" in body and body["resolution"] not in (
            *RESOLUTIONS,
            "match_input_image",
        ):
            problems.append(
                _field(
                    "enum",
                    "resolution",
                    "resolution must be one of the following: "
                    + ", ".join(RESOLUTIONS),
                )
            )
        if (
            "output_megapixels" in body
            and str(body["output_megapixels"]) not in KLEIN_MEGAPIXELS
        ):
            problems.append(
                _field(
                    "enum",
                    "output_megapixels",
                    "output_megapixels must be one of " + ", ".join(KLEIN_MEGAPIXELS),
                )
            )
        if "output_format" in body and body["output_format"] not in (
            "webp",
            "jpg",
            "png",
        ):
            problems.append(
                _field(
                    "enum",
                    "output_format",
                    "output_format must be one of the following: webp, jpg, png",
                )
            )
        ranges = {
            "safety_tolerance": (1, 5, True),
            "seed": (-(2**63), 2**63 - 1, True),
            "output_quality": (0, 100, True),
            "steps": (1, 50, True),
            "guidance": (1.5, 10, False),
        }
        for key, (low, high, integer) in ranges.items():
            if key not in body:
                continue
            value = body[key]
            if not (is_int(value) if integer else is_number(value)):
                problems.append(
                    _field(
                        "invalid_type",
                        key,
                        f"Invalid type. Expected: {'integer' if integer else 'number'}",
                    )
                )
            elif not low <= value <= high:
                problems.append(
                    _field("number_range", key, f"Must be between {low:g} and {high:g}")
                )
        for key in ("prompt_upsampling", "go_fast", "disable_safety_checker"):
            if key in body and not isinstance(body[key], bool):
                problems.append(
                    _field("invalid_type", key, "Invalid type. Expected: boolean")
                )
        return problems

    def status(self, task: FakeTask, now: float) -> str:
        phase = self.phase(task, now)
        if phase != "done":
            return {"canceled": "canceled", "queued": "starting"}.get(
                phase, "processing"
            )
        return {"failed": "failed", "nsfw": "failed", "aborted": "aborted"}.get(
            task.outcome, "succeeded"
        )

    def prediction(self, task: FakeTask) -> dict[str, Any]:
        """The prediction object of `task` now."""
        now = time.monotonic()
        with self._lock:
            status = self.status(task, now)
            outcome, options = task.outcome, dict(task.options)
        root = f"{self.base_url}/v1/predictions/{task.id}"
        created = task.extra.get("created_at") or datetime.now(UTC)
        removed = status == "succeeded" and (
            outcome == "data_removed" or now >= task.ready_at + self.url_ttl
        )
        output: Any = None
        if status == "succeeded" and not removed:
            ext = "jpg" if task.format == "jpeg" else task.format
            url = f"{self.delivery_base}/xezq/{task.id}/out-0.{ext}"
            output = [url] if self.models[task.model].list_output else url
        error = None
        if status == "failed":
            error = (
                NSFW_MESSAGE
                if outcome == "nsfw"
                else str(
                    options.get("message") or "Prediction failed: CUDA out of memory."
                )
            )
        finished = status in ("succeeded", "failed", "canceled", "aborted")
        started = status != "starting"
        logs = (
            "" if status == "starting" else "Running FLUX.2\n  50%|█████     | 14/28\n"
        )
        if status == "succeeded":
            logs += "100%|██████████| 28/28\n"
        prediction = {
            "id": task.id,
            "model": f"{OWNER}/{task.model}",
            "version": "hidden",
            "input": task.body,
            "logs": logs,
            "output": output,
            "data_removed": removed,
            "error": error,
            "status": status,
            "source": "api",
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "started_at": (created + timedelta(seconds=0.1))
            .isoformat()
            .replace("+00:00", "Z")
            if started
            else None,
            "completed_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")
            if finished
            else None,
            "urls": {
                "get": root,
                "cancel": f"{root}/cancel",
                "stream": f"{self.delivery_base}/stream/{task.id}",
                "web": f"https://replicate.com/p/{task.id}",
            },
        }
        if finished:
            prediction["metrics"] = {
                "predict_time": round(task.ready_at - task.created, 3)
            }
        return prediction

    def _find(self, ex: Exchange, prediction_id: str) -> FakeTask | None:
        with self._lock:
            task = self._tasks.get(prediction_id)
        if task is None:
            ex.json(404, {"title": "Not found", "detail": "Not found.", "status": 404})
        return task

    def _poll(self, ex: Exchange, prediction_id: str) -> None:
        self.count("polls")
        if self.http_fault(ex, "poll") or not self._authorised(ex):
            return
        fault = self.take_fault("poll", self.OUTCOMES)
        task = self._find(ex, prediction_id)
        if task is None:
            return
        with self._lock:
            task.polls += 1
            if fault is not None:
                task.outcome, task.options = fault.kind, dict(fault.options)
        ex.json(200, self.prediction(task))

    def _cancel(self, ex: Exchange, prediction_id: str) -> None:
        self.count("cancels")
        if self.http_fault(ex, "cancel") or not self._authorised(ex):
            return
        task = self._find(ex, prediction_id)
        if task is None:
            return
        with self._lock:
            if self.status(task, time.monotonic()) in ("starting", "processing"):
                task.canceled = True
        ex.json(200, self.prediction(task))

    # Webhooks

    def sign_headers(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        webhook_id: str | None = None,
    ) -> dict[str, str]:
        """The three Standard Webhooks headers for `body`."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        msg_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": sign(
                secret or self.webhook_secret, msg_id, stamp, body
            ),
        }

    def webhook_payload(self, task: FakeTask) -> dict[str, Any]:
        return self.prediction(task)

    def webhook_signature(
        self, task: FakeTask, body: bytes, timestamp: int, *, forged: bool
    ) -> dict[str, str]:
        secret = self.other_secret if forged else None
        return self.sign_headers(body, timestamp=timestamp, secret=secret)


if __name__ == "__main__":
    main(FakeReplicate)
