"""Bearer-token authentication, with the per-token rate limit and the request size limit.

Both limits run before the body is parsed, so an oversized or over-limit request costs one
Redis round trip and no parsing.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.http import HttpRequest
from ninja.security import HttpBearer

from api.problems import Problem
from api.tokens import Caller, token_authenticate
from generation.caps import prefix, redis_client
from studio.models import Role


class ApiRequest(HttpRequest):
    """A request BearerToken let in: django-ninja sets `auth` to what `authenticate` returned.

    Every route of the API runs behind BearerToken (api/main.py), so its views take this type.
    """

    auth: Caller


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Caller | None:
        caller = token_authenticate(token.strip())
        if caller is None:
            return None
        _check_size(request)
        _rate_limit(caller)
        return caller


def _check_size(request: HttpRequest) -> None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Problem(400, "validation", "Content-Length is not a number.") from None
    multipart = request.content_type == "multipart/form-data"
    limit = (
        settings.STUDIO_UPLOAD_MAX_BYTES + 64 * 1024
        if multipart
        else settings.API_MAX_BODY_BYTES
    )
    if length > limit:
        raise Problem(
            413, "too_large", f"The request body is over the limit of {limit:,} bytes."
        )


def _rate_limit(caller: Caller) -> None:
    """A fixed window per token in Redis: API_RATE_LIMIT requests per API_RATE_WINDOW seconds."""
    limit, window = settings.API_RATE_LIMIT, settings.API_RATE_WINDOW
    client = redis_client()
    if client is None or limit <= 0:
        return
    slot = int(time.time() // window)
    key = f"{prefix()}:api:rate:{caller.token.pk}:{slot}"
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, window + 1)
    count = int(pipe.execute()[0])
    if count > limit:
        retry_after = max(1, int((slot + 1) * window - time.time()) + 1)
        raise Problem(
            429,
            "rate_limited",
            f"This token may make {limit} requests per {window} s; retry after {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


def require(caller: Caller, role: str) -> None:
    """403 unless the token's role is `role` or a more powerful one."""
    if not caller.has_role(role):
        raise Problem(
            403,
            "permission",
            f"This needs a token with the {Role(role).label.lower()} role or higher; "
            f"this one is {caller.membership.role}.",
        )
