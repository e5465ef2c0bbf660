"""Per-provider concurrency caps shared by every worker, and small cross-worker flags.

Providers cap the tasks an account may have active (BFL: 24, then 429). Every worker on every
machine must count against the same number, so the count lives in Redis:

- One sorted set per cap key (`<prefix>:cap:bfl:env`, `<prefix>:cap:bfl:12` for account 12). A
  member is a generation id; its score is the time its lease expires (Redis server time, so
  worker clocks do not matter).
- `acquire` (one Lua script, atomic) drops expired leases, then adds the generation if fewer than
  `limit` leases remain. Acquiring again for the same generation only extends its lease, so a
  duplicate task delivery never takes a second slot.
- `renew` extends a lease unconditionally: a generation the provider is working on must be
  counted even if its lease lapsed meanwhile (for instance after a long worker outage).
- `release` removes the lease when the provider no longer counts the task (ready, failed,
  canceled).
- A worker SIGKILLed between acquire and release cannot leak the slot forever: the lease expires
  (ENGINE_LEASE_TTL after its last renewal, longer than the sweep's re-drive window so a crash
  does not free a slot the provider still counts).

- Redis restarted empty forgets every lease while the provider still counts those tasks. A marker
  key (`<prefix>:cap-seeded:<key>`) is set once the leases of a cap were seeded from the
  database; `acquire` and `count` find it missing (in the same script, no extra round trip), seed
  a lease for every row of the cap that holds a slot (dispatched or at the provider), and only
  then answer, so no new submit goes out past the provider's limit.

Without Redis (the embedded development setup) the count comes from the database instead: the
rows of the cap key that hold a slot (dispatched or at the provider), counted under a PostgreSQL
advisory lock (SQLite serializes writers already).
"""

from __future__ import annotations

import logging
import zlib
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol, cast

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q, QuerySet

if TYPE_CHECKING:
    from generation.models import Generation

log = logging.getLogger(__name__)

_ACQUIRE = """
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local expiry = now + tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'GT', expiry, ARGV[1])
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], expiry, ARGV[1])
  return 1
end
return 0
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

_COUNT = """
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


# Leases for the rows that hold a slot (ARGV[2..]), then the marker: ZADD NX keeps a lease taken
# meanwhile, so two workers seeding at once agree.
_SEED = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'NX', expiry, ARGV[i])
end
redis.call('SET', KEYS[2], '1')
return #ARGV - 1
"""


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # redis-py pools notice a fork (they compare the pid), so one client per process is safe under prefork.
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )


def redis_client() -> redis.Redis | None:
    url = getattr(settings, "REDIS_URL", "")
    return _client(url) if url else None


def prefix() -> str:
    return getattr(settings, "ENGINE_REDIS_PREFIX", "engine")


class Cap(Protocol):
    def acquire(self, member: int, *, limit: int, ttl: float) -> bool: ...
    def renew(self, member: int, *, ttl: float) -> None: ...
    def release(self, member: int) -> None: ...
    def count(self) -> int: ...


class RedisCap:
    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.cap_key = key
        self.key = f"{prefix()}:cap:{key}"
        self.seeded_key = f"{prefix()}:cap-seeded:{key}"

    def _seed(self) -> None:
        """Rebuild the leases from the database (Redis came back empty; module docstring)."""
        holders = list(_db_holders(self.cap_key).values_list("pk", flat=True))
        ttl = float(getattr(settings, "ENGINE_LEASE_TTL", 180.0))
        self.client.eval(
            _SEED, 2, self.key, self.seeded_key, ttl, *[str(pk) for pk in holders]
        )
        if holders:
            log.warning(
                "cap %s: rebuilt %d lease(s) from the database",
                self.cap_key,
                len(holders),
            )

    def acquire(self, member: int, *, limit: int, ttl: float) -> bool:
        keys = (self.key, self.seeded_key)
        answer = self.client.eval(_ACQUIRE, 2, *keys, str(member), limit, ttl)
        if answer == -1:
            self._seed()
            answer = self.client.eval(_ACQUIRE, 2, *keys, str(member), limit, ttl)
        return answer == 1

    def renew(self, member: int, *, ttl: float) -> None:
        self.client.eval(_RENEW, 1, self.key, str(member), ttl)

    def release(self, member: int) -> None:
        self.client.zrem(self.key, str(member))

    def count(self) -> int:
        answer = int(self.client.eval(_COUNT, 2, self.key, self.seeded_key))
        if answer == -1:
            self._seed()
            answer = int(self.client.eval(_COUNT, 2, self.key, self.seeded_key))
        return max(answer, 0)

    def members(self) -> set[int]:
        self.count()
        # Without withscores the members come back as bytes (redis-py types the reply loosely).
        raw = cast("list[bytes]", self.client.zrange(self.key, 0, -1))
        return {int(m) for m in raw}


def _db_holders(key: str) -> QuerySet[Generation]:
    """The rows of a cap that hold a slot: dispatched and waiting for their submit, or at the
    provider."""
    from generation.models import Generation, GenerationState, parse_cap_key

    backend, account_id = parse_cap_key(key)
    return Generation.objects.for_cap(backend=backend, account_id=account_id).filter(
        Q(state=GenerationState.QUEUED, dispatched_at__isnull=False)
        | Q(state__in=[GenerationState.SUBMITTED, GenerationState.RUNNING])
    )


class DatabaseCap:
    """The no-Redis fallback: the rows holding a slot are the count (see the module docstring)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def _holders(self) -> QuerySet[Generation]:
        return _db_holders(self.key)

    def acquire(self, member: int, *, limit: int, ttl: float) -> bool:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(%s)",
                        [zlib.crc32(self.key.encode())],
                    )
            holders = self._holders()
            if holders.filter(pk=member).exists():
                return True
            return holders.count() < limit

    def renew(self, member: int, *, ttl: float) -> None:
        return None

    def release(self, member: int) -> None:
        return None

    def count(self) -> int:
        return self._holders().count()


def cap_for(key: str) -> RedisCap | DatabaseCap:
    client = redis_client()
    return RedisCap(client, key) if client is not None else DatabaseCap(key)


def limit_for(backend: str, account_max: int | None = None) -> int:
    if account_max:
        return account_max
    caps: dict[str, int] = getattr(settings, "ENGINE_CONCURRENCY", {})
    return int(caps.get(backend, caps.get("default", 8)))


def flag_once(name: str, ttl: float) -> bool:
    """Set a short-lived cross-worker flag; True when this caller set it (it was not already set)."""
    client = redis_client()
    key = f"{prefix()}:flag:{name}"
    if client is not None:
        return bool(client.set(key, "1", nx=True, px=max(1, int(ttl * 1000))))
    return cache.add(key, "1", timeout=max(1, int(ttl + 0.999)))


def flag_clear(name: str) -> None:
    client = redis_client()
    key = f"{prefix()}:flag:{name}"
    if client is not None:
        client.delete(key)
    else:
        cache.delete(key)
