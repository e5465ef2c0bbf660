"""HTTP plumbing shared by the network backends (BFL, fal, Replicate, Cloudflare, ComfyUI).

One pooled client per process, timeouts read from `BackendConfig.extra`, and the mappings every
provider needs: transport failures (httpx exceptions) to NETWORK/TIMEOUT/INVALID_REQUEST, status
codes to error classes, Retry-After, and JSON answers. Which status means what for one provider,
and how its error bodies read, stay in that provider's module and are passed in as parameters.
Result downloads (host policy, redirects, size caps, image checks) are in download.py.
"""

from __future__ import annotations

import email.utils
import json
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from generation.backends.base import BackendError, ErrorClass
from generation.backends.egress import EgressRefused, GuardedTransport

USER_AGENT = "flux-studio/0.1"
# Errors a caller may retry; only these carry the provider's Retry-After.
RETRYABLE_CLASSES = frozenset(
    {ErrorClass.TIMEOUT, ErrorClass.RATE_LIMITED, ErrorClass.PROVIDER_ERROR}
)
# The usual meaning of a status code; 5xx are PROVIDER_ERROR and other codes INVALID_REQUEST.
STATUS_CLASSES: Mapping[int, ErrorClass] = {
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    402: ErrorClass.QUOTA,
    404: ErrorClass.NOT_FOUND,
    408: ErrorClass.TIMEOUT,
    429: ErrorClass.RATE_LIMITED,
}

ErrorMapper = Callable[[httpx.Response, str], BackendError]

_clients: dict[int, httpx.Client] = {}
_clients_lock = threading.Lock()


def client() -> httpx.Client:
    """The process's pooled HTTP client (no redirects followed, no credentials, no timeouts).

    One per process (keep-alive matters: a generation is a handful of calls), keyed by pid because
    Celery's prefork pool forks after import; a forked copy of a pool would share sockets with its
    parent. Timeouts and auth are passed per request. Keep-alive limit = connection limit on
    purpose: httpcore 1.0.9's sync pool closes "surplus" idle connections while counting all
    connections, and can close one it has just handed to a waiting thread (encode/httpcore#1110:
    EBADF or a hang under many threads).
    """
    pid = os.getpid()
    pooled = _clients.get(pid)
    if pooled is None:
        with _clients_lock:
            pooled = _clients.get(pid)
            if pooled is None:
                pooled = httpx.Client(
                    follow_redirects=False,
                    # Every connection obeys the egress rules (egress.py): public addresses
                    # only unless the operator allows a host, checked at connect time and
                    # pinned. A transport of our own also turns off proxies from the environment.
                    transport=GuardedTransport(
                        limits=httpx.Limits(
                            max_connections=256, max_keepalive_connections=256
                        )
                    ),
                    headers={"user-agent": USER_AGENT},
                )
                _clients[pid] = pooled
    return pooled


def timeouts(
    extra: Mapping[str, str], *, read: float = 30.0, write: float | None = None
) -> tuple[httpx.Timeout, httpx.Timeout]:
    """(API call, result download) timeouts from extra's connect/read/fetch_timeout seconds.

    `read` is the default API read timeout; the write timeout defaults to max(read, 60 s).
    """
    connect = float(extra.get("connect_timeout") or 5)
    read = float(extra.get("read_timeout") or read)
    api = httpx.Timeout(
        connect=connect,
        read=read,
        write=max(read, 60.0) if write is None else write,
        pool=connect,
    )
    fetch = httpx.Timeout(
        connect=connect,
        read=float(extra.get("fetch_timeout") or 60),
        write=30,
        pool=connect,
    )
    return api, fetch


def transport_error(
    exc: Exception,
    what: str,
    *,
    unreachable: str = "connection failed",
    maybe_submitted: bool = False,
) -> BackendError:
    """Map an httpx exception onto TIMEOUT, INVALID_REQUEST (bad URL) or NETWORK.

    `maybe_submitted` adds `details["maybe_submitted"]`: whether the request may have reached the
    provider (anything after the connection was made), so a retried submit can be weighed against
    a duplicate generation.
    """
    name = type(exc).__name__
    if isinstance(exc, EgressRefused):
        error = BackendError(
            ErrorClass.INVALID_REQUEST, f"{what}: refused: {exc}.", retryable=False
        )
        error.details["egress_refused"] = True
        if maybe_submitted:
            error.details["maybe_submitted"] = False
        return error
    if isinstance(exc, httpx.TimeoutException):
        error = BackendError(
            ErrorClass.TIMEOUT, f"{what}: no answer in time ({name}).", retryable=True
        )
    elif isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        error = BackendError(
            ErrorClass.INVALID_REQUEST, f"{what}: bad URL ({exc}).", retryable=False
        )
    else:
        error = BackendError(
            ErrorClass.NETWORK,
            f"{what}: {unreachable} ({name}: {exc}).",
            retryable=True,
        )
    if maybe_submitted:
        error.details["maybe_submitted"] = not isinstance(
            exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
        )
    return error


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


def json_or_none(response: httpx.Response) -> Any:
    """The decoded JSON body, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer; BAD_RESULT (retryable) when it is anything else."""
    try:
        data = response.json()
    except ValueError as exc:
        content_type = response.headers.get("content-type", "missing")
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"{what}: the answer is not JSON (content type {content_type}: "
            f"{response.text[:120]!r}).",
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


def webhook_json(body: bytes) -> dict[str, Any]:
    """The JSON object of a provider callback; BAD_RESULT (answered 400) when it is anything else."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
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
    return data


def status_class(
    code: int, classes: Mapping[int, ErrorClass] = STATUS_CLASSES
) -> ErrorClass:
    """The error class of an HTTP status: `classes`, else PROVIDER_ERROR (5xx), else INVALID_REQUEST."""
    if code in classes:
        return classes[code]
    return ErrorClass.PROVIDER_ERROR if code >= 500 else ErrorClass.INVALID_REQUEST


def status_error(
    code: int,
    message: str,
    *,
    error_class: ErrorClass | None = None,
    classes: Mapping[int, ErrorClass] = STATUS_CLASSES,
    retry_after: float | None = None,
    details: Mapping[str, Any] | None = None,
) -> BackendError:
    """A BackendError for an HTTP status: retryable (with `retry_after`) per RETRYABLE_CLASSES."""
    cls = error_class or status_class(code, classes)
    retryable = cls in RETRYABLE_CLASSES
    return BackendError(
        cls,
        message,
        retryable=retryable,
        retry_after=retry_after if retryable else None,
        status_code=code,
        details=details,
    )


def http_error(
    response: httpx.Response,
    what: str,
    *,
    classes: Mapping[int, ErrorClass] = STATUS_CLASSES,
) -> BackendError:
    """Map a non-2xx answer of a JSON API (FastAPI `detail` or `error`/`message` bodies)."""
    body = json_or_none(response)
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
    return status_error(
        response.status_code,
        f"{what}: HTTP {response.status_code}: {message}",
        classes=classes,
        retry_after=parse_retry_after(response.headers.get("retry-after"), body),
        details=details,
    )


def send(
    method: str,
    url: str,
    what: str,
    *,
    timeout: httpx.Timeout,
    error_for: ErrorMapper = http_error,
    unreachable: str = "connection failed",
    maybe_submitted: bool = False,
    **kwargs: Any,
) -> httpx.Response:
    """One call on the pooled client; transport failures and non-2xx answers raise BackendError."""
    try:
        response = client().request(method, url, timeout=timeout, **kwargs)
    except httpx.HTTPError as exc:
        raise transport_error(
            exc, what, unreachable=unreachable, maybe_submitted=maybe_submitted
        ) from exc
    if response.status_code >= 300:
        raise error_for(response, what)
    return response
