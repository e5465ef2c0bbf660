"""Every API error as `application/problem+json` (RFC 9457) with a stable `code`.

Codes: validation, auth, permission, budget, not_found, rate_limited, conflict, too_large,
server_error. Clients branch on `code`; `detail` is the human message.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from generation.backends.base import BackendError, RuleViolation
from generation.backends.registry import UnknownBackend
from generation.batches.common import FIELD_BUDGET, BatchRefused

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"
TITLES = {
    "validation": "Invalid request",
    "auth": "Authentication required",
    "permission": "Not allowed",
    "budget": "Over budget",
    "not_found": "Not found",
    "rate_limited": "Too many requests",
    "conflict": "Conflict",
    "too_large": "Request too large",
    "server_error": "Server error",
}


class Problem(Exception):
    """Raise from API code to answer a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> HttpResponse:
    import json

    body = {
        "type": f"about:blank#{code}",
        "title": TITLES.get(code, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    response = HttpResponse(
        json.dumps(body, default=str), status=status, content_type=CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _messages(exc: DjangoValidationError) -> str:
    return " ".join(str(m) for m in exc.messages)


def _validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        # ninja prefixes "body"/"query" and the parameter's own name; keep them: they say where.
        cleaned.append({"field": ".".join(loc), "message": str(error.get("msg", ""))})
    return cleaned


def install(api: NinjaAPI) -> None:
    """Replace ninja's default handlers with problem documents."""

    # django-ninja types a handler's exception as the exception or its class (ninja.main.Exc); it
    # passes the raised instance.
    def handle(request: HttpRequest, exc: Exception | type[Exception]) -> HttpResponse:
        if isinstance(exc, Problem):
            return problem_response(
                exc.status, exc.code, exc.detail, headers=exc.headers, **exc.extra
            )
        if isinstance(exc, NinjaValidationError):
            errors = _validation_errors(exc.errors)
            detail = "; ".join(
                f"{e['field']}: {e['message']}" if e["field"] else e["message"]
                for e in errors
            )
            return problem_response(422, "validation", detail, errors=errors)
        if isinstance(exc, AuthenticationError):
            return problem_response(
                401,
                "auth",
                "Send a valid token as `Authorization: Bearer <token>`.",
                headers={"WWW-Authenticate": 'Bearer realm="api"'},
            )
        if isinstance(exc, HttpError):
            codes = {401: "auth", 403: "permission", 404: "not_found", 409: "conflict"}
            return problem_response(
                exc.status_code, codes.get(exc.status_code, "validation"), str(exc)
            )
        if isinstance(exc, Http404):
            return problem_response(404, "not_found", "No such object here.")
        if isinstance(exc, PermissionDenied):
            return problem_response(
                403, "permission", str(exc) or "Your token's role may not do this."
            )
        if isinstance(exc, BatchRefused):
            code = "budget" if set(exc.errors) == {FIELD_BUDGET} else "validation"
            return problem_response(
                422,
                code,
                " ".join(exc.messages),
                errors=[
                    {"field": key, "message": m}
                    for key, ms in exc.errors.items()
                    for m in ms
                ],
            )
        if isinstance(exc, RuleViolation):
            return problem_response(
                422,
                "validation",
                exc.message,
                errors=[{"field": exc.rule, "message": str(exc)}],
            )
        if isinstance(exc, BackendError):
            return problem_response(422, "validation", exc.message)
        if isinstance(exc, UnknownBackend):
            return problem_response(422, "validation", str(exc).strip("'\""))
        if isinstance(exc, DjangoValidationError):
            return problem_response(422, "validation", _messages(exc))
        logger.exception("API error on %s %s", request.method, request.path)
        return problem_response(
            500, "server_error", "Something went wrong on our side; it was logged."
        )

    kinds: tuple[type[Exception], ...] = (
        Exception,
        Problem,
        NinjaValidationError,
        HttpError,
        Http404,
        PermissionDenied,
        BatchRefused,
        RuleViolation,
        BackendError,
        DjangoValidationError,
        UnknownBackend,
    )
    for kind in kinds:
        api.add_exception_handler(kind, handle)
