"""Redis must not evict what the engine keeps there.

The Celery broker's messages, the concurrency leases (generation/caps.py) and the circuit breakers
(generation/breaker.py) live in Redis. Under any eviction policy but `noeviction`, a full Redis
silently drops some of them: a lost message strands a generation until the sweep, a lost lease
lets a worker exceed a provider's cap (429s), a lost breaker sends work to a dead provider. With
`noeviction` a full Redis refuses writes instead, which shows up as errors and a failing /readyz.

Each process checks once at start (StudioConfig.ready) and logs an ERROR naming the fix. Where
the Redis is shared with a cache that needs eviction, give the broker and the engine a Redis
instance of their own (CELERY_BROKER_URL, REDIS_URL) set to noeviction.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings

log = logging.getLogger(__name__)


def eviction_policy(url: str) -> str:
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return str(client.config_get("maxmemory-policy").get("maxmemory-policy", ""))
    finally:
        client.close()


def warn_unless_noeviction() -> str | None:
    """The policy found (None when unknown), after logging loudly if it is not noeviction."""
    urls = {
        url
        for url in (settings.REDIS_URL, settings.CELERY_BROKER_URL)
        if url and url.startswith(("redis://", "rediss://", "unix://"))
    }
    policy = None
    for url in sorted(urls):
        try:
            policy = eviction_policy(url)
        except redis.ResponseError:
            # Managed services often forbid CONFIG GET: say what to verify by hand.
            log.warning(
                "Cannot read Redis maxmemory-policy (CONFIG GET refused); make sure it is "
                "noeviction, or the broker, leases and breakers may be evicted."
            )
            continue
        except redis.RedisError as exc:
            log.warning("Cannot check Redis maxmemory-policy: %s", exc)
            continue
        if policy != "noeviction":
            log.error(
                "REDIS EVICTION RISK: maxmemory-policy is %r on %s. Under memory pressure "
                "Redis will drop Celery messages, concurrency leases and circuit breakers. "
                "Set `maxmemory-policy noeviction` (redis.conf or CONFIG SET), or give the "
                "broker and engine a Redis instance of their own.",
                policy,
                url.split("@")[-1],
            )
    return policy
