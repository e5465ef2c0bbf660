"""`Idempotency-Key` on every create: a retry with the same key and body answers the first
response (kept API_IDEMPOTENCY_TTL, 24 h) and creates nothing; the same key with another body
is a 422; a retry while the first is still running is a 409.

Keys are scoped by the Authorization header's hash (so by token) and live in Redis. Only
successful (2xx) answers are kept: a refused request created nothing, so retrying it is harmless.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from api.problems import problem_response
from generation.caps import prefix, redis_client

HEADER = "Idempotency-Key"
_KEY_RE = re.compile(r"\A[\x21-\x7e]{1,255}\Z")
# How long a first request may hold its key before a retry may try again (a crashed worker).
PENDING_TTL = 120


def _redis_key(request: HttpRequest, key: str) -> str:
    scope = hashlib.sha256(
        request.headers.get("Authorization", "").encode()
    ).hexdigest()[:32]
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"{prefix()}:api:idem:{scope}:{digest}"


def _fingerprint(request: HttpRequest) -> str:
    h = hashlib.sha256()
    h.update(f"{request.method} {request.path}\n".encode())
    if request.content_type == "multipart/form-data":
        # The raw multipart body differs per retry (its boundary): hash the fields and files.
        for name in sorted(request.POST):
            h.update(f"{name}={request.POST.getlist(name)!r}\n".encode())
        for name in sorted(request.FILES):
            for upload in request.FILES.getlist(name):
                for chunk in upload.chunks():
                    h.update(chunk)
                upload.seek(0)
    else:
        h.update(request.body)
    return h.hexdigest()


def _before(request: HttpRequest) -> tuple[str, str] | HttpResponse | None:
    """None: no key. (redis key, fingerprint): go on. A response: answer it instead."""
    key = request.headers.get(HEADER)
    client = redis_client()
    if key is None or client is None:
        return None
    if not _KEY_RE.match(key):
        return problem_response(
            422,
            "validation",
            f"{HEADER} must be 1 to 255 printable ASCII characters.",
        )
    rkey, fingerprint = _redis_key(request, key), _fingerprint(request)
    pending = json.dumps({"fingerprint": fingerprint, "pending": True})
    if client.set(rkey, pending, nx=True, ex=PENDING_TTL):
        return rkey, fingerprint
    stored = client.get(rkey)
    if stored is None:  # expired between the two calls: treat as new
        client.set(rkey, pending, ex=PENDING_TTL)
        return rkey, fingerprint
    record = json.loads(stored)
    if record["fingerprint"] != fingerprint:
        return problem_response(
            422,
            "conflict",
            f"This {HEADER} was used with a different request body.",
        )
    if record.get("pending"):
        return problem_response(
            409,
            "conflict",
            f"A request with this {HEADER} is still being processed; retry shortly.",
        )
    response = HttpResponse(
        record["body"].encode(),
        status=record["status"],
        content_type=record["content_type"],
    )
    response["Idempotent-Replayed"] = "true"
    return response


def _after(rkey: str, fingerprint: str, response: HttpResponse) -> None:
    client = redis_client()
    assert client is not None
    if 200 <= response.status_code < 300 and not response.streaming:
        record = {
            "fingerprint": fingerprint,
            "status": response.status_code,
            "content_type": response.get("Content-Type", "application/json"),
            "body": response.content.decode(),
        }
        client.set(rkey, json.dumps(record), ex=settings.API_IDEMPOTENCY_TTL)
    else:
        client.delete(rkey)


def idempotent(run: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ninja operation's run (use with ninja's decorate_view)."""
    if inspect.iscoroutinefunction(run):

        @functools.wraps(run)
        async def arun(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            decided = await sync_to_async(_before)(request)
            if isinstance(decided, HttpResponse):
                return decided
            try:
                response = await run(request, *args, **kwargs)
            except BaseException:
                if decided is not None:
                    await sync_to_async(redis_client().delete)(decided[0])  # type: ignore[union-attr]
                raise
            if decided is not None:
                await sync_to_async(_after)(*decided, response)
            return response

        return arun

    @functools.wraps(run)
    def srun(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        decided = _before(request)
        if isinstance(decided, HttpResponse):
            return decided
        try:
            response = run(request, *args, **kwargs)
        except BaseException:
            if decided is not None:
                redis_client().delete(decided[0])  # type: ignore[union-attr]
            raise
        if decided is not None:
            _after(*decided, response)
        return response

    return srun
