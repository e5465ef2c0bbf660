"""ComfyUI's HTTP answers mapped onto BackendErrors (node errors named), and the helpers that read its
queue and history answers (docs/providers.md §5)."""

from __future__ import annotations

from typing import Any

import httpx

from generation.backends.base import BackendError
from generation.backends.transport import (
    STATUS_CLASSES,
    json_or_none,
    parse_retry_after,
    status_error,
)

# --- HTTP errors -------------------------------------------------------------------------------

# ComfyUI has no billing: a 402 (from a proxy) is just a refused request.
STATUS = {code: cls for code, cls in STATUS_CLASSES.items() if code != 402}
UNREACHABLE = "cannot reach ComfyUI"


def node_error_messages(node_errors: Any) -> list[str]:
    """One line per error in ComfyUI's `node_errors` map."""
    lines: list[str] = []
    if not isinstance(node_errors, dict):
        return lines
    for node_id, entry in node_errors.items():
        if not isinstance(entry, dict):
            continue
        class_type = entry.get("class_type") or "?"
        for error in entry.get("errors") or ():
            if not isinstance(error, dict):
                continue
            text = str(error.get("message") or error.get("type") or "error")
            if details := str(error.get("details") or "").strip():
                text += f": {details}"
            lines.append(f"node {node_id} ({class_type}): {text}")
    return lines


def http_error(response: httpx.Response, what: str) -> BackendError:
    """Map a non-2xx ComfyUI answer (or a proxy's in front of it) onto our error classes."""
    code = response.status_code
    body = json_or_none(response)
    parts = []
    details: dict[str, Any] = {}
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            parts.append(str(error.get("message") or error.get("type") or "error"))
            if (
                extra := str(error.get("details") or "").strip()
            ) and extra not in parts[0]:
                parts[0] += f": {extra}"
            details["error"] = error
        elif error:
            parts.append(str(error))
        parts.extend(node_error_messages(body.get("node_errors")))
        if body.get("node_errors"):
            details["node_errors"] = body["node_errors"]
    if not parts:
        parts.append(" ".join(response.text[:300].split()) or response.reason_phrase)
        details["body"] = response.text[:1000]
    return status_error(
        code,
        f"{what}: HTTP {code}: " + "; ".join(parts),
        classes=STATUS,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        details=details,
    )


def status_message(messages: Any, kind: str) -> dict[str, Any] | None:
    """The data of the first `kind` event in a history item's status messages."""
    for entry in messages or ():
        if isinstance(entry, list | tuple) and len(entry) == 2 and entry[0] == kind:
            return entry[1] if isinstance(entry[1], dict) else {}
    return None


def queue_ids(entries: Any) -> list[str]:
    """Prompt ids of `queue_running` / `queue_pending` entries ([number, prompt_id, prompt, ...])."""
    ids = []
    for entry in entries or ():
        if isinstance(entry, list | tuple) and len(entry) > 1:
            ids.append(str(entry[1]))
    return ids
