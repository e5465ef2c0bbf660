"""What a generation's failure says to whom (docs/security.md, "Provider error bodies").

A provider's error body is text chosen by whoever answers at the account's base URL. Members see
only a classified message (`member_message`: the error class, the HTTP status, moderation
reasons); the provider's own words are kept in `provider_details["error_raw"]` for workspace
admins, who see them on the operator page (and the command line prints them).
"""

from __future__ import annotations

from typing import Any

from generation.backends.base import BackendError, ErrorClass

ERROR_LABELS = {
    "auth": "Authentication: check the provider key",
    "quota": "Out of credits or quota",
    "rate_limited": "Rate limited by the provider",
    "invalid_request": "Refused as an invalid request",
    "moderated": "Moderated by the provider (never retried)",
    "provider_error": "Provider error",
    "network": "Network error",
    "timeout": "Timed out",
    "not_found": "The provider lost the task",
    "expired": "The result expired before it was downloaded",
    "bad_result": "The provider's answer was not a usable image",
}
RAW_MAX_CHARS = 2000


def member_message(error: BackendError) -> str:
    """The classified message every member may read: no text from the provider's body."""
    label = ERROR_LABELS.get(str(error.error_class), str(error.error_class))
    parts = [label]
    if error.status_code:
        parts.append(f"(HTTP {error.status_code})")
    if error.details.get("egress_refused"):
        parts.append("— the backend's address is not allowed; ask an admin")
    text = " ".join(parts) + "."
    if error.error_class == ErrorClass.MODERATED:
        reasons = [str(r)[:80] for r in list(error.details.get("reasons") or [])[:3]]
        if reasons:
            text += " Reasons: " + "; ".join(reasons) + "."
    return text


def raw_message(generation: Any) -> str:
    """The provider's own message of a failed generation (admins, the command line)."""
    details = getattr(generation, "provider_details", None) or {}
    return str(details.get("error_raw") or generation.error_message or "")
