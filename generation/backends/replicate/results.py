"""Replicate's answers mapped onto BackendErrors and PollResults: HTTP errors (a 429's wait from
its detail text) and prediction objects, from a poll or a webhook (docs/providers.md §3.2, 3.5)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from generation.backends.base import (
    BackendError,
    ErrorClass,
    PollResult,
    ProviderState,
)
from generation.backends.replicate.contract import MODERATION_WORDS
from generation.backends.transport import (
    error_message,
    http_error,
    json_or_none,
)

# --- Errors ------------------------------------------------------------------------------------


_RESETS_IN = re.compile(r"resets in ~?\s*(\d+(?:\.\d+)?)\s*s", re.IGNORECASE)


def replicate_http_error(response: httpx.Response, what: str) -> BackendError:
    """transport.http_error's mapping; a 429 without Retry-After takes the wait from the detail
    text ("Your rate limit resets in ~30s")."""
    error = http_error(response, what)
    if error.error_class is ErrorClass.RATE_LIMITED and error.retry_after is None:
        match = _RESETS_IN.search(error_message(json_or_none(response)) or "")
        if match:
            error.retry_after = float(match.group(1))
    return error


def _is_moderation(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in MODERATION_WORDS)


# --- Predictions -------------------------------------------------------------------------------

_PROGRESS = re.compile(r"(\d{1,3})%\|")


def _progress(logs: Any) -> float | None:
    """The last tqdm percentage in the logs, if the model prints one."""
    if not isinstance(logs, str):
        return None
    found = _PROGRESS.findall(logs[-2000:])
    return min(1.0, int(found[-1]) / 100) if found else None


def _first_url(output: Any) -> str | None:
    if isinstance(output, str) and output:
        return output
    if isinstance(output, list) and output and isinstance(output[0], str) and output[0]:
        return output[0]
    return None


def result_from_prediction(
    data: Mapping[str, Any], *, what: str = "poll"
) -> PollResult:
    """Map a prediction object (poll answer or webhook body) onto a PollResult."""
    raw = dict(data)
    status = str(data.get("status") or "").lower()
    if status in ("starting", "processing"):
        return PollResult(
            ProviderState.PENDING, progress=_progress(data.get("logs")), raw=raw
        )
    if status == "succeeded":
        url = _first_url(data.get("output"))
        if url is None:
            if data.get("data_removed"):
                error = BackendError(
                    ErrorClass.EXPIRED,
                    "Replicate has already deleted this prediction's output (kept 1 hour).",
                    details={"provider_status": status, "data_removed": True},
                )
            else:
                error = BackendError(
                    ErrorClass.BAD_RESULT,
                    f"{what}: prediction succeeded without an output URL.",
                    retryable=True,
                    details={"provider_status": status},
                )
            return PollResult(ProviderState.FAILED, error=error, raw=raw)
        metrics = data.get("metrics")
        predict = metrics.get("predict_time") if isinstance(metrics, dict) else None
        return PollResult(
            ProviderState.READY,
            progress=1.0,
            result_url=url,
            raw=raw,
            duration=float(predict)
            if isinstance(predict, int | float)
            and not isinstance(predict, bool)
            and predict > 0
            else None,
        )
    if status == "failed":
        message = str(data.get("error") or "no details")
        details = {"provider_status": status, "provider_error": data.get("error")}
        if _is_moderation(message):
            error = BackendError(
                ErrorClass.MODERATED,
                f"Replicate's safety checker refused the prediction: {message}",
                details={**details, "moderation": "content", "reasons": [message]},
            )
        else:
            error = BackendError(
                ErrorClass.PROVIDER_ERROR,
                f"Replicate failed to generate: {message}",
                retryable=True,
                details=details,
            )
        return PollResult(ProviderState.FAILED, error=error, raw=raw)
    if status in ("canceled", "aborted"):
        error = BackendError(
            ErrorClass.PROVIDER_ERROR,
            f"Replicate {status} the prediction.",
            retryable=status == "aborted",
            details={"provider_status": status, "canceled": status == "canceled"},
        )
        return PollResult(ProviderState.FAILED, error=error, raw=raw)
    raise BackendError(
        ErrorClass.BAD_RESULT,
        f"{what}: unknown status {status!r}.",
        retryable=True,
        details=raw,
    )
