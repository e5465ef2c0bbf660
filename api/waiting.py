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
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from generation.caps import prefix
from generation.models import TERMINAL_STATES, Generation

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


async def wait_for_generation(
    request: HttpRequest, response: HttpResponse, generation_id: int
) -> None:
    """Honour the request's `Prefer: wait=N`: wait for the generation to be terminal (at most N
    seconds), and say so in Preference-Applied."""
    seconds = requested_wait(request)
    if not seconds:
        return

    @sync_to_async
    def is_terminal() -> bool:
        try:
            state = (
                Generation.objects.filter(pk=generation_id)
                .values_list("state", flat=True)
                .first()
            )
        finally:
            # A waiting call must not keep a database connection for its whole wait (200
            # waiters would hold 200 idle PostgreSQL connections): give it back after each read.
            # Inside a transaction (a test's, or an atomic request) the connection stays.
            if not connection.in_atomic_block:
                connection.close()
        return state in TERMINAL_STATES

    await wait_until(generation_id, seconds, is_terminal)
    response["Preference-Applied"] = f"wait={seconds}"


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
        return await _poll(deadline, is_terminal, 1.0)
    client = aioredis.from_url(url)
    pubsub = client.pubsub()
    try:
        try:
            await _subscribed(pubsub, channel(generation_id), deadline)
        except (aioredis.RedisError, OSError, TimeoutError):
            return await _poll(deadline, is_terminal, 1.0)
        # Subscribed at the server, then read the row: a finish after this read publishes to a
        # channel we already hear; a finish before it is seen by the read.
        while not await is_terminal():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=min(recheck, left)
                )
            except (aioredis.RedisError, OSError):
                # The pub/sub connection broke: keep answering, by reading the row.
                return await _poll(deadline, is_terminal, 1.0)
        return True
    finally:
        try:
            await pubsub.aclose()
            await client.aclose()
        except (aioredis.RedisError, OSError):
            pass


async def _subscribed(pubsub: Any, name: str, deadline: float) -> None:
    """SUBSCRIBE and wait for the server's confirmation.

    redis-py's subscribe() only sends the command. Until the server has run it, a PUBLISH
    from another connection reaches nobody, so "subscribe, then read the row" only holds once
    the confirmation is back; a finish in that gap was a missed wake-up, left to the recheck.
    """
    await pubsub.subscribe(name)
    while time.monotonic() < deadline:
        message = await pubsub.get_message(
            timeout=min(1.0, deadline - time.monotonic())
        )
        if message and message.get("type") in ("subscribe", b"subscribe"):
            return
        # A message (not the confirmation) cannot come before it on this connection.


async def _poll(
    deadline: float, is_terminal: Callable[[], Awaitable[bool]], step: float
) -> bool:
    while not await is_terminal():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(step, left))
    return True
