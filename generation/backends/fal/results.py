"""fal's answers mapped onto PollResults: HTTP errors, result-time failures, output payloads and
webhook bodies (docs/providers.md §2.5, 2.6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from generation.backends.base import (
    BackendError,
    ErrorClass,
    PollResult,
    ProviderState,
)
from generation.backends.fal.contract import (
    MODERATION_TYPES,
    MODERATION_WORDS,
    decode_data_uri,
)
from generation.backends.transport import (
    error_message,
    http_error,
    json_or_none,
)

# --- Failures (result-time errors, webhook errors, HTTP errors) ---------------------------------


def _detail_items(body: Any) -> list[dict[str, Any]]:
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        return [detail]
    if isinstance(detail, list):
        return [item for item in detail if isinstance(item, dict)]
    return []


def moderation_categories(body: Any) -> list[str] | None:
    """The categories of a content-policy refusal, or None when `body` is not one."""
    items = _detail_items(body)
    flagged = [
        i for i in items if i.get("type") in MODERATION_TYPES or i.get("categories")
    ]
    if flagged:
        return sorted({str(c) for i in flagged for c in (i.get("categories") or ())})
    text = (error_message(body) or "").lower()
    if any(word in text for word in MODERATION_WORDS):
        return []
    return None


def _header_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes")


def fal_http_error(response: httpx.Response, what: str) -> BackendError:
    """transport.http_error's mapping, plus fal's own signals: content-policy 422s are MODERATED,
    `X-Fal-Retryable` overrides our guess, and a 504 of the user's start timeout is TIMEOUT."""
    error = http_error(response, what)
    body = json_or_none(response)
    error_class = error.error_class
    retryable = error.retryable
    details = dict(error.details)
    if (
        response.status_code in (400, 422)
        and (categories := moderation_categories(body)) is not None
    ):
        error_class, retryable = ErrorClass.MODERATED, False
        details.update(moderation="request", categories=categories, reasons=categories)
    elif (
        response.status_code == 504
        and response.headers.get("x-fal-request-timeout-type") == "user"
    ):
        error_class, retryable = ErrorClass.TIMEOUT, False
    header = _header_bool(response.headers.get("x-fal-retryable"))
    if header is not None and error_class is not ErrorClass.MODERATED:
        retryable = header
    return BackendError(
        error_class,
        error.message,
        retryable=retryable,
        retry_after=error.retry_after,
        status_code=error.status_code,
        details=details,
    )


def failure(error: BackendError, raw: Mapping[str, Any]) -> PollResult:
    return PollResult(ProviderState.FAILED, error=error, raw=dict(raw))


# --- Output payloads ---------------------------------------------------------------------------


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def result_from_output(data: Any, *, what: str = "result") -> PollResult:
    """Map a model output (`v4Output` or pro/max/flex `{images, seed}`) onto a PollResult."""
    if not isinstance(data, dict):
        error = BackendError(
            ErrorClass.BAD_RESULT,
            f"{what}: the output is not a JSON object.",
            retryable=True,
        )
        return failure(error, {"output": data})
    raw = dict(data)
    nsfw = data.get("has_nsfw_concepts")
    if isinstance(nsfw, list) and nsfw and nsfw[0] is True:
        error = BackendError(
            ErrorClass.MODERATED,
            "fal's safety checker flagged the generated image (a new prompt or seed may pass).",
            retryable=False,
            details={
                "moderation": "content",
                "reasons": ["nsfw"],
                "has_nsfw_concepts": nsfw,
            },
        )
        return failure(error, raw)
    images = data.get("images")
    first = (
        images[0]
        if isinstance(images, list) and images and isinstance(images[0], dict)
        else {}
    )
    url = first.get("url")
    if not isinstance(url, str) or not url:
        error = BackendError(
            ErrorClass.BAD_RESULT,
            f"{what}: the output has no image URL.",
            retryable=True,
        )
        return failure(error, raw)
    content_type = (
        first.get("content_type")
        if isinstance(first.get("content_type"), str)
        else None
    )
    result_bytes = None
    if url.startswith("data:"):  # sync_mode answers inline; no download needed
        result_bytes, content_type = decode_data_uri(url)
        url = None
    prompt = data.get("prompt")
    return PollResult(
        ProviderState.READY,
        progress=1.0,
        result_url=url,
        result_bytes=result_bytes,
        content_type=content_type,
        seed=_int_or_none(data.get("seed")),
        provider_prompt=prompt if isinstance(prompt, str) else None,
        raw=raw,
    )


def _status_code_in(text: str) -> int | None:
    """The code in fal's webhook `error` text, e.g. "Invalid status code: 422"."""
    digits = "".join(ch if ch.isdigit() else " " for ch in text).split()
    codes = [int(d) for d in digits if len(d) == 3 and 400 <= int(d) < 600]
    return codes[-1] if codes else None


def result_from_webhook(data: Mapping[str, Any]) -> PollResult:
    """Map a webhook delivery (`status` OK/ERROR with the model output as `payload`)."""
    raw = dict(data)
    status = str(data.get("status") or "").upper()
    payload = data.get("payload")
    if status == "OK":
        if payload is None:
            # fal could not serialise the output into the callback; the result itself is fine and
            # polling (the response URL) fetches it, so report "still pending" and let polling run.
            return PollResult(ProviderState.PENDING, raw=raw)
        return result_from_output(payload, what="webhook")
    if status == "ERROR":
        text = str(data.get("error") or "")
        code = _status_code_in(text)
        message = error_message(payload) or text or "no details"
        details: dict[str, Any] = {"provider_status": status, "payload": payload}
        if (categories := moderation_categories(payload)) is not None and (
            code is None or code < 500
        ):
            details.update(
                moderation="request", categories=categories, reasons=categories
            )
            error = BackendError(
                ErrorClass.MODERATED,
                f"fal refused the request: {message}",
                details=details,
            )
        elif code is not None and 400 <= code < 500:
            error = BackendError(
                ErrorClass.INVALID_REQUEST,
                f"fal refused the request: {message}",
                details=details,
            )
        else:
            error = BackendError(
                ErrorClass.PROVIDER_ERROR,
                f"fal failed to generate: {message}",
                retryable=True,
                details=details,
            )
        error.status_code = code
        return failure(error, raw)
    raise BackendError(
        ErrorClass.BAD_RESULT,
        f"webhook: unknown status {status!r}.",
        status_code=400,
        details=raw,
    )
