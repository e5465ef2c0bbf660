"""Cloudflare's answers mapped onto BackendErrors: its `errors` envelope, auth and quota codes,
moderation wording (docs/providers.md §4.4)."""

from __future__ import annotations

from typing import Any

import httpx

from generation.backends.base import (
    BackendError,
    ErrorClass,
)
from generation.backends.transport import (
    json_or_none,
    parse_retry_after,
    status_class,
    status_error,
)

# --- HTTP errors -------------------------------------------------------------------------------


def envelope_errors(body: Any) -> list[dict[str, Any]]:
    """The `errors` list of a Cloudflare v4 envelope, as dicts with `code` and `message`."""
    if not isinstance(body, dict):
        return []
    errors = body.get("errors")
    if not isinstance(errors, list):
        return []
    found = []
    for item in errors:
        if isinstance(item, dict):
            found.append(
                {
                    "code": item.get("code"),
                    "message": str(item.get("message") or "").strip(),
                }
            )
        elif item:
            found.append({"code": None, "message": str(item)})
    return found


def _error_text(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{e['message'] or 'error'} (code {e['code']})"
        if e["code"] is not None
        else e["message"]
        for e in errors
    )


_MODERATION_MARKERS = ("nsfw", "moderat", "content policy", "safety", "inappropriate")
_QUOTA_MARKERS = ("free allocation", "insufficient", "billing", "payment")
AUTH_CODES = {10000, 10001}  # Cloudflare API "Authentication error"
QUOTA_CODES = {4006}  # Workers AI "used up your daily free allocation" (unconfirmed)


def http_error(response: httpx.Response, what: str) -> BackendError:
    """Map a Cloudflare error answer (any status, `success: false`) onto our error classes."""
    code = response.status_code
    body = json_or_none(response)
    errors = envelope_errors(body)
    message = (
        _error_text(errors)
        or " ".join(response.text[:300].split())
        or response.reason_phrase
    )
    lowered = message.lower()
    codes = {e["code"] for e in errors}
    details: dict[str, Any] = (
        {"errors": errors} if errors else {"body": response.text[:1000]}
    )
    if ray := response.headers.get("cf-ray"):
        details["cf_ray"] = ray
    text = f"{what}: HTTP {code}: {message}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if code in (401, 403) or codes & AUTH_CODES:
        cls = ErrorClass.AUTH
    elif (
        code == 402 or codes & QUOTA_CODES or any(m in lowered for m in _QUOTA_MARKERS)
    ):
        cls = ErrorClass.QUOTA
    elif code in (408, 429) or code >= 500:
        cls = status_class(code)
    elif any(m in lowered for m in _MODERATION_MARKERS):
        cls = ErrorClass.MODERATED
    elif (
        code < 400
    ):  # `success: false` under a 2xx status: not a verdict on the request
        cls, retry_after = ErrorClass.PROVIDER_ERROR, None
    else:
        cls = ErrorClass.INVALID_REQUEST
        if code == 404:
            text += " (check CLOUDFLARE_ACCOUNT_ID and the model id)"
    return status_error(
        code, text, error_class=cls, retry_after=retry_after, details=details
    )
