"""`Prefer: wait=N`: answer when a generation is terminal or N seconds pass.

The waiting view is async: under an ASGI server (uvicorn workers for gunicorn) a waiting call is
a suspended coroutine, not a thread, so one process holds hundreds. It is woken by Redis pub/sub:
receivers.py publishes on `<prefix>:api:gen:<id>` when a generation finishes (any process, any
worker). A missed message costs at most API_WAIT_RECHECK seconds: the row is re-read that often.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from django.conf import settings
from django.http import HttpRequest

from generation.caps import prefix

_WAIT_RE = re.compile(r'(?:^|[,;\s])wait\s*=\s*"?(\d{1,6})"?', re.IGNORECASE)


def requested_wait(request: HttpRequest) -> int:
    """Seconds asked for by `Prefer: wait=N`, capped at API_WAIT_MAX; 0 without one.

    A preference is a hint (RFC 7240): an unreadable one is ignored, a larger N is capped.
    """
    match = _WAIT_RE.search(request.headers.get("Prefer", ""))
    if not match:
        return 0
    return min(int(match.group(1)), int(settings.API_WAIT_MAX))


def channel(generation_id: int) -> str:
    return f"{prefix()}:api:gen:{generation_id}"


def publish_finished(generation_id: int, state: str) -> None:
    from generation.caps import redis_client

    client = redis_client()
    if client is not None:
        client.publish(channel(generation_id), state)


async def wait_until(
    generation_id: int,
    seconds: float,
    is_terminal: Callable[[], Awaitable[bool]],
) -> bool:
    """Wait up to `seconds` for the generation to be terminal; True if it is."""
    deadline = time.monotonic() + seconds
    url = getattr(settings, "REDIS_URL", "")
    recheck = float(settings.API_WAIT_RECHECK)
    if not url:
        # No Redis (the embedded dev setup): re-read the row every second.
        while not await is_terminal():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(1.0, left))
        return True
    client = aioredis.from_url(url)
    pubsub = client.pubsub()
    try:
        # Subscribe first, then read the row: a finish between the two is not missed.
        await pubsub.subscribe(channel(generation_id))
        while not await is_terminal():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=min(recheck, left)
            )
        return True
    finally:
        await pubsub.aclose()
        await client.aclose()
