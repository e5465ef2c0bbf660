"""The Black Forest Labs API backend (providers.md section 1).

Protocol in short: `POST {base}/v1/{model}` with header `x-key` answers `{id, polling_url, cost}` at
once; `GET {polling_url}` (exactly as given: it points at the cluster that took the job) answers a
status (`Pending`, `Ready`, `Request Moderated`, `Content Moderated`, `Error`, `Task not found`);
a `Ready` result carries a signed `result.sample` URL that expires after ten minutes, so the
engine downloads it at once with `fetch()`. BFL has no cancel endpoint.

Configuration (`BackendConfig`):
    api_key     the `x-key`
    base_url    a URL, or a region name from REGIONS ("global", "eu", "us"); when empty, extra
                "region"; else the global host
    extra       "allowed_hosts": comma-separated hosts trusted besides BFL's own for polling URLs and
                    result downloads. An entry starting with "." matches a domain and its
                    subdomains; any other entry is an exact host, and only exact entries (and the
                    base URL's host) may be private/loopback addresses or plain http (tests: the
                    fake server's "127.0.0.1,localhost").
                "connect_timeout", "read_timeout", "fetch_timeout" (seconds), "max_result_bytes".

Decisions worth knowing:
    - References go as raw base64 in `input_image`, `input_image_2`... (providers.md: "URL or
      base64"); our references are private files, so there is no URL BFL could fetch.
    - Megapixels are counted in units of 1024×1024 px and rounded up per image, input and output
      (fal's documented rule; BFL's own "4 MP, e.g. 2048×2048" uses the same unit). Estimates
      therefore err high; the submit answer's `cost` is the truth for billing.
    - Both moderation statuses are terminal and not retryable; `details["moderation"]` says
      "request" (prompt/input refused before generating) or "content" (output refused).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import io
import ipaddress
import json
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
from PIL import Image

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
    RuleViolation,
    Submission,
)

REGIONS: dict[str, str] = {
    "global": "https://api.bfl.ai",
    "eu": "https://api.eu.bfl.ai",
    "us": "https://api.us.bfl.ai",
}
DEFAULT_BASE_URL = REGIONS["global"]
# Hosts BFL answers and delivers from (providers.md 1.1). "." entries match subdomains.
PROVIDER_HOSTS: tuple[str, ...] = (
    ".bfl.ai",
    ".bfl.ml",
    "bfldeliveryprod.blob.core.windows.net",
)

MEGAPIXEL = (
    1024 * 1024
)  # pixels in one billed/limited megapixel (see the module docstring)
MAX_MEGAPIXELS = (
    4 * MEGAPIXEL / 1_000_000
)  # "max 4 MP (e.g. 2048×2048)", in ModelSpec's 10^6 units
MAX_SIDE = (
    4096  # providers.md states no per-side limit; this only keeps aspect ratios sane
)
CREDIT = Decimal("0.01")  # USD per BFL credit
MAX_REDIRECTS = 3
WEBHOOK_URL_MAX = 2083

_COMMON_RULES = {
    "safety_tolerance": ParamRule("int", 0, 5),
    "output_format": ParamRule("choice", choices=("jpeg", "png")),
}
_FLEX_RULES = {
    **_COMMON_RULES,
    "steps": ParamRule("int", 1, 50),
    "guidance": ParamRule("float", 1.5, 10),
    "prompt_upsampling": ParamRule("bool"),
}
_WEBP_RULES = {
    **_COMMON_RULES,
    "output_format": ParamRule("choice", choices=("jpeg", "png", "webp")),
}


def _spec(model: str, max_references: int, rules: Mapping[str, ParamRule]) -> ModelSpec:
    return ModelSpec(
        model=model,
        provider_model=model,
        max_references=max_references,
        max_megapixels=MAX_MEGAPIXELS,
        min_side=64,
        max_side=MAX_SIDE,
        dimension_step=16,
        params=frozenset(rules),
        param_rules=rules,
    )


MODELS: dict[str, ModelSpec] = {
    spec.model: spec
    for spec in (
        _spec("flux-2-pro", 8, _COMMON_RULES),
        _spec("flux-2-pro-preview", 8, _COMMON_RULES),
        _spec("flux-2-max", 8, _COMMON_RULES),
        _spec("flux-2-flex", 8, _FLEX_RULES),
        _spec("flux-2-klein-4b", 4, _COMMON_RULES),
        _spec("flux-2-klein-9b", 4, _COMMON_RULES),
        _spec("flux-2-klein-9b-preview", 4, _WEBP_RULES),
    )
}


@dataclass(frozen=True)
class Price:
    """Cents: the first output megapixel, each further output megapixel, each input megapixel."""

    first: Decimal
    extra: Decimal
    input: Decimal


_PRO = Price(Decimal(3), Decimal("1.5"), Decimal("1.5"))
_KLEIN_9B = Price(Decimal("1.5"), Decimal("0.2"), Decimal("0.2"))
PRICES: dict[str, Price] = {  # providers.md 1.12
    "flux-2-pro": _PRO,
    "flux-2-pro-preview": _PRO,
    "flux-2-max": Price(Decimal(7), Decimal(3), Decimal(3)),
    "flux-2-flex": Price(Decimal(5), Decimal(5), Decimal(5)),
    "flux-2-klein-4b": Price(Decimal("1.4"), Decimal("0.1"), Decimal("0.1")),
    "flux-2-klein-9b": _KLEIN_9B,
    "flux-2-klein-9b-preview": _KLEIN_9B,
}


def billed_megapixels(width: int, height: int) -> int:
    """Whole megapixels (1024×1024 px each), rounded up, at least 1."""
    return max(1, -(-(width * height) // MEGAPIXEL))


def resolve_base_url(value: str) -> str:
    """A region name from REGIONS or a URL; empty means the global endpoint."""
    value = (value or "").strip()
    if not value:
        return DEFAULT_BASE_URL
    return REGIONS.get(value.lower(), value).rstrip("/")


def credits_to_usd(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        credits = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return credits * CREDIT if credits.is_finite() else None


# --- HTTP plumbing ------------------------------------------------------------------------------

_clients: dict[int, httpx.Client] = {}
_clients_lock = threading.Lock()


def _client() -> httpx.Client:
    """One pooled client per process (keep-alive matters: a generation is a handful of calls).

    Keyed by pid because Celery's prefork pool forks after import; a forked copy of a pool would
    share sockets with its parent. Timeouts are passed per request; no auth header lives here.
    Keep-alive limit = connection limit on purpose: httpcore 1.0.9's sync pool closes "surplus"
    idle connections while counting all connections, and can close one it has just handed to a
    waiting thread (encode/httpcore#1110: EBADF or a hang under many threads).
    """
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        with _clients_lock:
            client = _clients.get(pid)
            if client is None:
                client = httpx.Client(
                    follow_redirects=False,
                    limits=httpx.Limits(
                        max_connections=256, max_keepalive_connections=256
                    ),
                    headers={"user-agent": "flux-studio/0.1"},
                )
                _clients[pid] = client
    return client


def _transport_error(exc: Exception, what: str) -> BackendError:
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return BackendError(
            ErrorClass.TIMEOUT, f"{what}: no answer in time ({name}).", retryable=True
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return BackendError(
            ErrorClass.INVALID_REQUEST, f"{what}: bad URL ({exc}).", retryable=False
        )
    return BackendError(
        ErrorClass.NETWORK,
        f"{what}: connection failed ({name}: {exc}).",
        retryable=True,
    )


def parse_retry_after(value: str | None, body: Any = None) -> float | None:
    """Retry-After as seconds or an HTTP date; else a `retry_after` field in the JSON body."""
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    if isinstance(body, dict):
        raw = body.get("retry_after")
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return max(0.0, float(raw))
        if isinstance(raw, str):
            try:
                return max(0.0, float(raw))
            except ValueError:
                return None
    return None


def error_message(body: Any) -> str | None:
    """The provider's message from a FastAPI `detail` body or an `error`/`message` body."""
    if isinstance(body, str):
        return body.strip() or None
    if not isinstance(body, dict):
        return None
    detail = body.get("detail")
    if isinstance(detail, str) and detail.strip():
        return detail.strip()
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or () if p != "body")
                msg = str(
                    item.get("msg")
                    or item.get("message")
                    or item.get("type")
                    or "invalid"
                )
                parts.append(f"{loc}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if isinstance(detail, dict):
        return error_message(detail)
    message, code = body.get("message"), body.get("error")
    if isinstance(code, dict):  # {"error": {"message": ..., "code": ...}}
        return error_message(code)
    if message and code:
        return f"{message} ({code})"
    if message or code:
        return str(message or code)
    return None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def http_error(response: httpx.Response, what: str) -> BackendError:
    """Map a non-2xx answer from the BFL API onto our error classes."""
    code = response.status_code
    body = _json_or_none(response)
    message = (
        error_message(body) or response.text[:300].strip() or response.reason_phrase
    )
    details: dict[str, Any] = {
        "body": body if body is not None else response.text[:1000]
    }
    limits = {
        k: v for k, v in response.headers.items() if k.lower().startswith("x-ratelimit")
    }
    if limits:
        details["rate_limit"] = limits
    text = f"{what}: HTTP {code}: {message}"
    retry_after = parse_retry_after(response.headers.get("retry-after"), body)

    def err(
        cls: ErrorClass, retryable: bool, after: float | None = None
    ) -> BackendError:
        return BackendError(
            cls,
            text,
            retryable=retryable,
            retry_after=after,
            status_code=code,
            details=details,
        )

    if code in (401, 403):
        return err(ErrorClass.AUTH, False)
    if code == 402:
        return err(ErrorClass.QUOTA, False)
    if code == 404:
        return err(ErrorClass.NOT_FOUND, False)
    if code == 408:
        return err(ErrorClass.TIMEOUT, True, retry_after)
    if code == 429:
        return err(ErrorClass.RATE_LIMITED, True, retry_after)
    if code >= 500:
        return err(ErrorClass.PROVIDER_ERROR, True, retry_after)
    return err(ErrorClass.INVALID_REQUEST, False)


# --- Host policy for polling URLs and result downloads ------------------------------------------


def _resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (a seam for tests)."""
    return [
        info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class HostPolicy:
    """Which hosts may receive our key (polling) or serve results (downloads)."""

    patterns: tuple[str, ...]  # ".domain" (itself and subdomains) or exact hosts
    explicit: frozenset[
        str
    ]  # exact hosts named by configuration: may be private and plain http

    @classmethod
    def build(
        cls,
        base_url: str,
        extra_hosts: Iterable[str],
        defaults: Iterable[str] = PROVIDER_HOSTS,
    ) -> HostPolicy:
        extras = [h.strip().lower() for h in extra_hosts if h.strip()]
        base_host = (urlsplit(base_url).hostname or "").lower()
        explicit = {h for h in extras if not h.startswith(".")}
        if base_host:
            explicit.add(base_host)
        return cls(
            patterns=(*defaults, *extras, *sorted(explicit)),
            explicit=frozenset(explicit),
        )

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for pattern in self.patterns:
            if pattern.startswith("."):
                if host.endswith(pattern) or host == pattern[1:]:
                    return True
            elif host == pattern:
                return True
        return False

    def check(self, url: str, *, what: str, resolve: bool) -> None:
        """Raise BackendError unless `url` may be contacted. `resolve` also refuses names that
        resolve to private/loopback/link-local addresses unless the host is explicitly allowed."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()

        def refuse(reason: str) -> BackendError:
            return BackendError(
                ErrorClass.BAD_RESULT,
                f"{what}: refused {url.split('?', 1)[0]}: {reason}.",
                retryable=False,
                details={"host": host, "refused": True},
            )

        if parts.scheme not in ("http", "https") or not host:
            raise refuse("not an http(s) URL")
        if not self.allows_host(host):
            raise refuse(f"{host} is not one of the provider's hosts")
        if host in self.explicit:
            return
        if parts.scheme != "https":
            raise refuse("plain http to a provider host")
        try:
            ipaddress.ip_address(host.strip("[]"))
            addresses = [host.strip("[]")]
        except ValueError:
            if not resolve:
                return
            try:
                addresses = _resolve(host, parts.port or 443)
            except OSError as exc:
                raise BackendError(
                    ErrorClass.NETWORK,
                    f"{what}: cannot resolve {host} ({exc}).",
                    retryable=True,
                ) from exc
        if not all(_is_public(a) for a in addresses):
            raise refuse(f"{host} is a private, loopback or link-local address")


# --- Result download ----------------------------------------------------------------------------

_EXPIRED_MARKERS = (
    "authenticationfailed",
    "signature",
    "expired",
    "authorizationfailure",
)


def verify_image(data: bytes, *, max_pixels: int = 4 * 2048 * 2048) -> str:
    """Decode `data` fully with Pillow; return its MIME type or raise BAD_RESULT."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                raise BackendError(
                    ErrorClass.BAD_RESULT,
                    f"result is {image.width}×{image.height} px, too large.",
                    retryable=False,
                )
            image.load()
            fmt = image.format or ""
    except BackendError:
        raise
    except Exception as exc:  # Pillow raises many types for bad data
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"result is not a decodable image ({type(exc).__name__}: {exc}).",
            retryable=True,
        ) from exc
    mime = Image.MIME.get(fmt, "")
    if not mime.startswith("image/"):
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"result has unexpected format {fmt!r}.",
            retryable=True,
        )
    return mime


def download_image(
    url: str,
    *,
    policy: HostPolicy,
    timeout: httpx.Timeout,
    max_bytes: int,
    deadline_s: float = 120.0,
    what: str = "result download",
) -> tuple[bytes, str]:
    """GET a provider's result URL: allowed hosts only, redirects checked hop by hop, size capped,
    image/* only, bytes verified with Pillow. No credentials are sent (the URL is signed)."""
    deadline = time.monotonic() + deadline_s
    for _hop in range(MAX_REDIRECTS + 1):
        policy.check(url, what=what, resolve=True)
        try:
            with _client().stream(
                "GET", url, timeout=timeout, follow_redirects=False
            ) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise BackendError(
                            ErrorClass.BAD_RESULT,
                            f"{what}: redirect without Location.",
                            retryable=True,
                        )
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise _download_error(response, what)
                content_type = (
                    response.headers.get("content-type", "")
                    .split(";", 1)[0]
                    .strip()
                    .lower()
                )
                if not content_type.startswith("image/"):
                    raise BackendError(
                        ErrorClass.BAD_RESULT,
                        f"{what}: content type {content_type or 'missing'}, not an image.",
                        retryable=True,
                        status_code=response.status_code,
                    )
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > max_bytes:
                    raise BackendError(
                        ErrorClass.BAD_RESULT,
                        f"{what}: {length} bytes is over the {max_bytes}-byte cap.",
                        retryable=False,
                    )
                buffer = bytearray()
                for chunk in response.iter_bytes():
                    buffer += chunk
                    if len(buffer) > max_bytes:
                        raise BackendError(
                            ErrorClass.BAD_RESULT,
                            f"{what}: over the {max_bytes}-byte cap.",
                            retryable=False,
                        )
                    if time.monotonic() > deadline:
                        raise BackendError(
                            ErrorClass.TIMEOUT,
                            f"{what}: took over {deadline_s:g} s.",
                            retryable=True,
                        )
        except httpx.HTTPError as exc:
            raise _transport_error(exc, what) from exc
        data = bytes(buffer)
        return data, verify_image(data)
    raise BackendError(
        ErrorClass.BAD_RESULT,
        f"{what}: more than {MAX_REDIRECTS} redirects.",
        retryable=False,
    )


def _download_error(response: httpx.Response, what: str) -> BackendError:
    code = response.status_code
    try:
        text = response.read()[:4000].decode("utf-8", "replace")
    except httpx.HTTPError:
        text = ""
    lowered = text.lower()
    summary = " ".join(text.split())[:200]
    if code in (403, 404, 410) or (
        400 <= code < 500 and any(m in lowered for m in _EXPIRED_MARKERS)
    ):
        return BackendError(
            ErrorClass.EXPIRED,
            f"{what}: the result URL has expired or is no longer valid (HTTP {code}: {summary}).",
            retryable=False,
            status_code=code,
        )
    if code == 429:
        after = parse_retry_after(response.headers.get("retry-after"))
        return BackendError(
            ErrorClass.RATE_LIMITED,
            f"{what}: HTTP 429.",
            retryable=True,
            retry_after=after,
            status_code=code,
        )
    if code >= 500:
        return BackendError(
            ErrorClass.PROVIDER_ERROR,
            f"{what}: HTTP {code}.",
            retryable=True,
            status_code=code,
        )
    return BackendError(
        ErrorClass.BAD_RESULT,
        f"{what}: HTTP {code}: {summary}",
        retryable=False,
        status_code=code,
    )


# --- Result payloads (poll answers and webhooks) ------------------------------------------------

_PENDING = {"pending", "queued", "processing", "running", "submitted", "in progress"}


def _moderation_reasons(details: Any) -> list[str]:
    if not isinstance(details, dict):
        return []
    reasons = details.get("Moderation Reasons", details.get("moderation_reasons"))
    if reasons is None:
        return []
    if isinstance(reasons, str):
        return [reasons]
    if isinstance(reasons, list | tuple):
        return [str(r) for r in reasons]
    return [str(reasons)]


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def result_from_payload(data: Mapping[str, Any], *, what: str = "poll") -> PollResult:
    """Map a `ResultResponse` (poll) or a webhook payload onto a PollResult."""
    raw = dict(data)
    status = str(data.get("status") or "").strip()
    key = status.lower()
    cost = credits_to_usd(data.get("cost"))
    details = data.get("details")

    if key in _PENDING:
        progress = data.get("progress")
        value = (
            min(1.0, max(0.0, float(progress)))
            if isinstance(progress, int | float) and not isinstance(progress, bool)
            else None
        )
        return PollResult(ProviderState.PENDING, progress=value, raw=raw)

    if key == "ready":
        result = data.get("result")
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str) or not sample:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"{what}: Ready without result.sample.",
                retryable=True,
                details=raw,
            )
        assert isinstance(result, dict)
        prompt = result.get("prompt")
        return PollResult(
            ProviderState.READY,
            progress=1.0,
            result_url=sample,
            cost=cost,
            seed=_int_or_none(result.get("seed")),
            provider_prompt=prompt if isinstance(prompt, str) else None,
            raw=raw,
        )

    if key in ("request moderated", "content moderated"):
        stage = "request" if key.startswith("request") else "content"
        reasons = _moderation_reasons(details)
        what_refused = (
            "the prompt or an input image, before generating"
            if stage == "request"
            else "the generated image (a new prompt or seed may pass)"
        )
        message = f"BFL moderation refused {what_refused}"
        message += f": {', '.join(reasons)}." if reasons else " (no reasons given)."
        error = BackendError(
            ErrorClass.MODERATED,
            message,
            retryable=False,
            details={
                "moderation": stage,
                "reasons": reasons,
                "provider_status": status,
                "provider_details": details,
            },
        )
        return PollResult(ProviderState.FAILED, cost=cost, error=error, raw=raw)

    if key in ("error", "failed"):
        reason = (
            error_message(details)
            or error_message(raw)
            or (str(details) if details else "")
            or "no details"
        )
        error = BackendError(
            ErrorClass.PROVIDER_ERROR,
            f"BFL failed to generate ({status}: {reason}).",
            retryable=True,
            details={"provider_status": status, "provider_details": details},
        )
        return PollResult(ProviderState.FAILED, cost=cost, error=error, raw=raw)

    if key == "task not found":
        error = BackendError(
            ErrorClass.NOT_FOUND,
            "BFL no longer knows this task (Task not found).",
            retryable=False,
            details={"provider_status": status},
        )
        return PollResult(ProviderState.FAILED, error=error, raw=raw)

    raise BackendError(
        ErrorClass.BAD_RESULT,
        f"{what}: unknown status {status!r}.",
        retryable=True,
        details=raw,
    )


def sign_webhook(body: bytes, secret: str) -> str:
    """The `X-BFL-Signature` value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- The backend --------------------------------------------------------------------------------


class BFLBackend(Backend):
    name = "bfl"
    label = "Black Forest Labs API"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        extra = config.extra or {}
        self.base_url = resolve_base_url(config.base_url or extra.get("region", ""))
        self.policy = HostPolicy.build(
            self.base_url, (extra.get("allowed_hosts") or "").split(",")
        )
        connect = float(extra.get("connect_timeout") or 5)
        read = float(extra.get("read_timeout") or 30)
        self.timeout = httpx.Timeout(
            connect=connect, read=read, write=max(read, 60.0), pool=connect
        )
        self.fetch_timeout = httpx.Timeout(
            connect=connect,
            read=float(extra.get("fetch_timeout") or 60),
            write=30,
            pool=connect,
        )
        self.max_result_bytes = int(extra.get("max_result_bytes") or 64 * 1024 * 1024)

    # Capabilities, rules, price

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=MODELS, calls_back=True, can_cancel=False, synchronous=False
        )

    def is_configured(self) -> bool:
        return bool(self.config.api_key)

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        if not request.prompt or not request.prompt.strip():
            raise RuleViolation("prompt", "The prompt is empty.")
        if request.seed is not None and (
            isinstance(request.seed, bool) or not isinstance(request.seed, int)
        ):
            raise RuleViolation(
                "seed", f"seed {request.seed!r} must be a whole number."
            )
        if (
            request.webhook_url is not None
            and not 1 <= len(request.webhook_url) <= WEBHOOK_URL_MAX
        ):
            raise RuleViolation(
                "webhook_url",
                f"webhook_url must be 1–{WEBHOOK_URL_MAX} characters on {self.label}.",
            )

    def estimate_cost(self, request: GenerationRequest) -> Decimal:
        """providers.md 1.12: cents = first MP + (output MP − 1) × MP price + input MP × MP price."""
        price = PRICES.get(request.model)
        if price is None:
            raise RuleViolation(
                "model", f"{self.label} has no price for {request.model}."
            )
        output_mp = billed_megapixels(request.width, request.height)
        input_mp = sum(
            billed_megapixels(ref.width, ref.height) for ref in request.references
        )
        cents = price.first + (output_mp - 1) * price.extra + input_mp * price.input
        return cents * CREDIT

    # Protocol

    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body for `POST /v1/{model}` (Flux2Inputs)."""
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        for name, value in request.params.items():
            if value is None:
                continue
            kind = MODELS[request.model].param_rules[name].kind
            body[name] = (
                int(value)
                if kind == "int"
                else float(value)
                if kind == "float"
                else value
            )
        for index, ref in enumerate(request.references, start=1):
            field_name = "input_image" if index == 1 else f"input_image_{index}"
            body[field_name] = base64.b64encode(ref.content).decode("ascii")
        if request.webhook_url:
            body["webhook_url"] = request.webhook_url
            if request.webhook_secret:
                body["webhook_secret"] = request.webhook_secret
        return body

    def submit(self, request: GenerationRequest) -> Submission:
        self.validate(request)
        self._require_key()
        spec = MODELS[request.model]
        data = self._call(
            "POST",
            f"{self.base_url}/v1/{spec.provider_model}",
            "submit",
            json=self.build_body(request),
        )
        task_id = data.get("id")
        polling_url = data.get("polling_url")
        if not isinstance(task_id, str) or not task_id:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "submit: answer without a task id.",
                retryable=True,
                details=data,
            )
        if polling_url is not None and not isinstance(polling_url, str):
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "submit: polling_url is not a string.",
                retryable=True,
                details=data,
            )
        return Submission(
            task_id=task_id,
            poll_url=polling_url or None,
            cost=credits_to_usd(data.get("cost")),
            raw=data,
        )

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        self._require_key()
        # The exact polling_url: it names the cluster that holds the task. Only when the submit
        # answer had none do we fall back to the documented /v1/get_result on our base URL.
        url = poll_url or f"{self.base_url}/v1/get_result?id={quote(task_id, safe='')}"
        self.policy.check(
            url, what="poll", resolve=False
        )  # the key goes there: BFL hosts only
        return result_from_payload(self._call("GET", url, "poll"), what="poll")

    def fetch(self, result: PollResult) -> tuple[bytes, str]:
        if result.result_bytes is not None:
            return result.result_bytes, verify_image(result.result_bytes)
        if not result.result_url:
            raise BackendError(
                ErrorClass.BAD_RESULT, "fetch: the result has no URL.", retryable=False
            )
        return download_image(
            result.result_url,
            policy=self.policy,
            timeout=self.fetch_timeout,
            max_bytes=self.max_result_bytes,
        )

    def cancel(self, *, task_id: str, poll_url: str | None) -> bool:
        return False  # BFL has no cancel endpoint

    def parse_webhook(
        self, *, headers: Mapping[str, str], body: bytes, secret: str
    ) -> tuple[str, PollResult]:
        """Verify `X-BFL-Signature: sha256=<hex>` (HMAC-SHA256 of the raw body) and parse the payload.

        With a secret, a missing or wrong signature is refused. Without one nothing can be checked
        (providers.md: BFL may send unsigned callbacks); the engine should always set a secret.
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        if secret:
            given = (lowered.get("x-bfl-signature") or "").strip()
            if not given:
                raise BackendError(
                    ErrorClass.AUTH,
                    "webhook: no X-BFL-Signature header.",
                    status_code=401,
                )
            expected = sign_webhook(body, secret)
            if not given.lower().startswith("sha256="):
                given = "sha256=" + given
            if not hmac.compare_digest(given.lower().encode(), expected.encode()):
                raise BackendError(
                    ErrorClass.AUTH,
                    "webhook: X-BFL-Signature does not match.",
                    status_code=401,
                )
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"webhook: body is not JSON ({exc}).",
                status_code=400,
            ) from exc
        if not isinstance(data, dict):
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "webhook: body is not a JSON object.",
                status_code=400,
            )
        task_id = data.get("id") or data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                "webhook: payload has no task id.",
                status_code=400,
            )
        return task_id, result_from_payload(data, what="webhook")

    def balance(self) -> Decimal | None:
        """The account's remaining credit in USD (`GET /v1/credits`)."""
        self._require_key()
        return credits_to_usd(
            self._call("GET", f"{self.base_url}/v1/credits", "credits").get("credits")
        )

    # Helpers

    def _require_key(self) -> None:
        if not self.config.api_key:
            raise BackendError(
                ErrorClass.AUTH, "No BFL API key is configured (BFL_API_KEY)."
            )

    def _call(
        self, method: str, url: str, what: str, *, json: Any = None
    ) -> dict[str, Any]:
        headers = {"x-key": self.config.api_key, "accept": "application/json"}
        try:
            response = _client().request(
                method, url, json=json, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise _transport_error(exc, what) from exc
        if response.status_code >= 300:
            raise http_error(response, what)
        try:
            data = response.json()
        except ValueError as exc:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"{what}: the answer is not JSON ({response.text[:120]!r}).",
                retryable=True,
                status_code=response.status_code,
            ) from exc
        if not isinstance(data, dict):
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"{what}: the answer is not a JSON object.",
                retryable=True,
            )
        return data
