"""Who holds a step's claim, so a dead worker's claims are released at once, not after the TTL.

A submit or an ingest claims its row with `due_at = now + ENGINE_CLAIM_TTL` (services.py): a
second delivery sees a future due_at and stops. When the worker holding the claim is SIGKILLed,
the claim used to block the row for the whole TTL (60 s) plus ENGINE_STUCK_AFTER. So every claim
also names its holder in Redis:

- `<prefix>:claim:<generation id>:<due_at ISO>` = "<holder>", expiring with the claim. The due_at
  identifies THIS claim: a later claim, a retry's backoff or any other move of the row changes
  due_at, and the record no longer applies. It is written BEFORE the claim's UPDATE, so a kill
  between the two never leaves a claim without its record (a record whose UPDATE lost or never
  ran matches no row); one key per claim, so a losing duplicate never overwrites the winner's.
- `<prefix>:alive:<holder>`, with a short TTL (ENGINE_HOLDER_ALIVE_TTL), refreshed by a daemon
  thread of the holding process. The holder is one process (host, pid and a random token, so a
  reused pid is a new holder); the thread starts with the process's first claim.

The sweep (`dead`) treats a claim as released when its record still matches the row and the
holder's alive key is gone: the process has not refreshed it for ALIVE_TTL, so it is dead (or cut
off from Redis that long). Without a record (no Redis, Redis restarted empty, the `generate`
command before its first claim) the claim simply lasts its TTL, as before. Releasing a dead
holder's submit claim re-drives the submit exactly as the TTL's expiry would, only sooner: if
that submit had reached the provider, the second one is the same possible duplicate.

Writing the record is best effort: a Redis error here must not fail the step whose claim is
already taken in the database (its retry would find its own claim and stop).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import cast

import redis
from django.conf import settings

from generation.caps import prefix, redis_client

log = logging.getLogger(__name__)

_state: dict[str, object] = {}
_lock = threading.Lock()


def alive_ttl() -> float:
    return float(getattr(settings, "ENGINE_HOLDER_ALIVE_TTL", 6.0))


def holder() -> str:
    """This process's holder id; a forked child gets its own (the pid changed)."""
    with _lock:
        if _state.get("pid") != os.getpid():
            _state.clear()
            _state["pid"] = os.getpid()
            _state["id"] = (
                f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            )
        return str(_state["id"])


def _alive_key(name: str) -> str:
    return f"{prefix()}:alive:{name}"


def _claim_key(generation_id: int, due_at: datetime) -> str:
    return f"{prefix()}:claim:{generation_id}:{due_at.isoformat()}"


def _heartbeat(client: redis.Redis, name: str, pid: int) -> None:
    ttl = alive_ttl()
    stop = threading.Event()
    while os.getpid() == pid and not stop.wait(ttl / 5):
        # Redis away: the claims fall back to their TTL; the next beat tries again.
        with contextlib.suppress(redis.RedisError):
            client.set(_alive_key(name), "1", px=int(ttl * 1000))


def _ensure_heartbeat(client: redis.Redis, name: str) -> None:
    with _lock:
        if _state.get("thread") is None:
            thread = threading.Thread(
                target=_heartbeat,
                args=(client, name, os.getpid()),
                name="engine-claims-heartbeat",
                daemon=True,
            )
            thread.start()
            _state["thread"] = thread


def hold(generation_id: int, due_at: datetime, *, ttl: float) -> None:
    """Record that this process holds the claim `due_at` on a generation (best effort)."""
    client = redis_client()
    if client is None:
        return
    name = holder()
    try:
        _ensure_heartbeat(client, name)
        # The alive key first, in the same round trip: a sweep never sees the claim without it.
        pipe = client.pipeline(transaction=False)
        pipe.set(_alive_key(name), "1", px=int(alive_ttl() * 1000))
        pipe.set(
            _claim_key(generation_id, due_at), name, px=int((ttl + alive_ttl()) * 1000)
        )
        pipe.execute()
    except redis.RedisError:
        log.warning("could not record the claim on generation %s", generation_id)


def dead(claims: Iterable[tuple[int, datetime]]) -> set[int]:
    """The generations among (id, due_at) whose claim is held by a process that is gone."""
    claims = list(claims)
    client = redis_client()
    if client is None or not claims:
        return set()
    try:
        return _dead(client, claims)
    except redis.RedisError:
        return set()  # the sweep still runs; these claims last their TTL


def _dead(client: redis.Redis, claims: list[tuple[int, datetime]]) -> set[int]:
    # A client without decode_responses (caps._client): the values are bytes.
    records = cast(
        "list[bytes | None]",
        client.mget([_claim_key(pk, due_at) for pk, due_at in claims]),
    )
    holders = {
        pk: record.decode()
        for (pk, _), record in zip(claims, records, strict=True)
        if record is not None
    }
    if not holders:
        return set()
    names = sorted(set(holders.values()))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.exists(_alive_key(name))
    alive = {name for name, found in zip(names, pipe.execute(), strict=True) if found}
    return {pk for pk, name in holders.items() if name not in alive}
