"""Circuit breakers: stop sending work to a backend that keeps failing, shared by every worker.

One breaker per cap key (`bfl:env`, `fal:12`: a backend with one set of credentials), so a
workspace whose own key was revoked trips its own breaker, not the one every other workspace
uses through the environment's key.

    closed ──N failures within WINDOW s──▶ open ──COOLDOWN s──▶ half-open
       ▲                                    ▲                      │ one probe submission
       └────────── a success ───────────────┴──── a failure ───────┘

- A *failure* is a provider call or task that failed with a class that says the backend itself
  is unwell: provider_error (5xx, a task that errored), network, timeout, auth, quota
  (BREAKER_CLASSES). 429s are flow control (the account is at its concurrency cap), moderation,
  invalid requests, missing tasks and unusable results say nothing about the backend's health.
- A *success* is a finished image (a READY result, from a poll, a webhook or a synchronous
  answer). A merely accepted submit is not: a provider that accepts every task and then fails
  it must still trip the breaker.
- "Consecutive within a window": the streak restarts when its first failure is older than
  ENGINE_BREAKER_WINDOW, and any success ends it.
- Open: `allow()` is False until ENGINE_BREAKER_COOLDOWN has passed. Then the breaker is
  half-open: the first `allow()` takes the probe (a lease of ENGINE_BREAKER_PROBE_TTL, so a
  probe whose worker died does not keep the breaker half-open forever) and everyone else is
  refused until the probe's generation succeeds (closed) or fails (open again, a new cool-down).

State lives in one Redis hash per key, changed by one Lua script per call (atomic across
workers). Every function takes `now` (Unix seconds) so tests inject time; the default is the
local clock (`now()` below, patchable). Without Redis (the embedded development setup) the
Django cache holds the same fields, without atomicity, which one process does not need.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache

from generation import caps
from generation.backends.base import ErrorClass
from generation.engine import policy as engine

BREAKER_CLASSES = frozenset(
    {
        ErrorClass.PROVIDER_ERROR,
        ErrorClass.NETWORK,
        ErrorClass.TIMEOUT,
        ErrorClass.AUTH,
        ErrorClass.QUOTA,
    }
)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def now() -> float:
    return time.time()


@dataclass(frozen=True)
class Settings:
    threshold: int
    window: float
    cooldown: float
    probe_ttl: float

    @classmethod
    def current(cls) -> Settings:
        return cls(
            threshold=max(1, int(engine.conf("ENGINE_BREAKER_THRESHOLD", 5))),
            window=engine.conf("ENGINE_BREAKER_WINDOW", 60.0),
            cooldown=engine.conf("ENGINE_BREAKER_COOLDOWN", 30.0),
            probe_ttl=engine.conf("ENGINE_BREAKER_PROBE_TTL", 60.0),
        )


@dataclass(frozen=True)
class State:
    key: str
    state: str  # closed, open, half_open
    failures: int = 0
    open_until: float | None = None  # when an open breaker lets a probe through
    probe_until: float | None = None  # a half-open breaker's probe lease
    opened_at: float | None = None
    last_error: str = ""

    @property
    def is_closed(self) -> bool:
        return self.state == CLOSED

    @property
    def backend(self) -> str:
        return self.key.partition(":")[0]

    @property
    def until(self) -> datetime | None:
        """When it lets a probe through (open), or when the probe's lease lapses (half-open)."""
        moment = self.open_until if self.state == OPEN else self.probe_until
        return datetime.fromtimestamp(moment, UTC) if moment else None


# KEYS[1] the hash. ARGV: op, now, threshold, window, cooldown, probe_ttl, error, expire.
# Answers {allowed (0/1), state, seconds until it may allow (string)}.
_SCRIPT = """
local op = ARGV[1]
local now = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local cooldown = tonumber(ARGV[5])
local probe_ttl = tonumber(ARGV[6])
local expire = tonumber(ARGV[8])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')

local function trip()
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', tostring(now + cooldown),
             'opened_at', tostring(now), 'probe_until', '0', 'last_error', ARGV[7])
  redis.call('EXPIRE', KEYS[1], expire)
  return {0, 'open', tostring(cooldown)}
end

if op == 'allow' then
  if state ~= 'open' then return {1, 'closed', '0'} end
  if now < open_until then return {0, 'open', tostring(open_until - now)} end
  if now < probe_until then return {0, 'half_open', tostring(probe_until - now)} end
  redis.call('HSET', KEYS[1], 'probe_until', tostring(now + probe_ttl))
  return {1, 'half_open', '0'}
end

if op == 'failure' then
  if state == 'open' then
    if now >= open_until then return trip() end
    return {0, 'open', tostring(open_until - now)}
  end
  local first = tonumber(redis.call('HGET', KEYS[1], 'first_failure') or '0')
  local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
  if failures == 0 or now - first > window then
    failures = 1
    first = now
  else
    failures = failures + 1
  end
  redis.call('HSET', KEYS[1], 'failures', tostring(failures), 'first_failure', tostring(first),
             'last_error', ARGV[7])
  redis.call('EXPIRE', KEYS[1], expire)
  if failures >= threshold then return trip() end
  return {1, 'closed', '0'}
end
return {1, state, '0'}
"""


def _redis_key(key: str) -> str:
    return f"{caps.prefix()}:breaker:{key}"


def _expire(conf: Settings) -> int:
    # Long enough to outlive any streak, cool-down and probe; short enough to leave no litter.
    return int(max(conf.window, conf.cooldown + conf.probe_ttl) * 10 + 3600)


def _run(
    op: str, key: str, at: float | None, error: str = ""
) -> tuple[bool, str, float]:
    conf = Settings.current()
    at = now() if at is None else at
    client = caps.redis_client()
    args = (
        op,
        repr(at),
        conf.threshold,
        conf.window,
        conf.cooldown,
        conf.probe_ttl,
        error[:300],
        _expire(conf),
    )
    if client is not None:
        allowed, state, wait = client.eval(_SCRIPT, 1, _redis_key(key), *args)
        state = state.decode() if isinstance(state, bytes) else str(state)
        wait = wait.decode() if isinstance(wait, bytes) else str(wait)
        return bool(allowed), state, float(wait)
    return _run_in_cache(op, key, at, conf, error)


def _run_in_cache(
    op: str, key: str, at: float, conf: Settings, error: str
) -> tuple[bool, str, float]:
    """The same state machine over the Django cache (development without Redis)."""
    cache_key = _redis_key(key)
    data: dict[str, Any] = cache.get(cache_key) or {}
    state = data.get("state", CLOSED)
    open_until = float(data.get("open_until", 0))
    probe_until = float(data.get("probe_until", 0))

    def save() -> None:
        cache.set(cache_key, data, timeout=_expire(conf))

    def trip() -> tuple[bool, str, float]:
        data.update(
            state=OPEN,
            open_until=at + conf.cooldown,
            opened_at=at,
            probe_until=0,
            last_error=error[:300],
        )
        save()
        return False, OPEN, conf.cooldown

    if op == "allow":
        if state != OPEN:
            return True, CLOSED, 0.0
        if at < open_until:
            return False, OPEN, open_until - at
        if at < probe_until:
            return False, HALF_OPEN, probe_until - at
        data["probe_until"] = at + conf.probe_ttl
        save()
        return True, HALF_OPEN, 0.0
    if op == "failure":
        if state == OPEN:
            return trip() if at >= open_until else (False, OPEN, open_until - at)
        failures = int(data.get("failures", 0))
        first = float(data.get("first_failure", 0))
        if failures == 0 or at - first > conf.window:
            failures, first = 1, at
        else:
            failures += 1
        data.update(failures=failures, first_failure=first, last_error=error[:300])
        if failures >= conf.threshold:
            return trip()
        save()
        return True, CLOSED, 0.0
    return True, state, 0.0


def allow(key: str, *, at: float | None = None) -> tuple[bool, float]:
    """May a new submission go to this backend now? (allowed, seconds until it may).

    Closed: yes. Open: no, until the cool-down ends. Half-open: yes for exactly one caller (the
    probe), no for everyone else until the probe's outcome is recorded or its lease lapses."""
    allowed, _state, wait = _run("allow", key, at)
    return allowed, wait


def record_failure(
    key: str, error_class: str, message: str = "", *, at: float | None = None
) -> str:
    """Count one failure if its class says the backend is unwell; answers the breaker's state."""
    if error_class not in BREAKER_CLASSES:
        return ""
    _allowed, state, _wait = _run("failure", key, at, f"{error_class}: {message}")
    return state


def record_success(key: str) -> None:
    """A finished image: the breaker closes and the failure streak ends (one DEL)."""
    client = caps.redis_client()
    if client is not None:
        client.delete(_redis_key(key))
    else:
        cache.delete(_redis_key(key))


def state(key: str, *, at: float | None = None) -> State:
    """The breaker as it stands, without taking a probe (for routing and the operator page)."""
    at = now() if at is None else at
    client = caps.redis_client()
    if client is not None:
        raw = client.hgetall(_redis_key(key))
        data = {
            (k.decode() if isinstance(k, bytes) else k): (
                v.decode() if isinstance(v, bytes) else v
            )
            for k, v in raw.items()
        }
    else:
        data = dict(cache.get(_redis_key(key)) or {})
    if data.get("state") != OPEN:
        return State(key, CLOSED, failures=int(float(data.get("failures") or 0)))
    open_until = float(data.get("open_until") or 0)
    probe_until = float(data.get("probe_until") or 0)
    return State(
        key,
        OPEN if at < open_until else HALF_OPEN,
        failures=int(float(data.get("failures") or 0)),
        open_until=open_until,
        probe_until=probe_until if probe_until > at else None,
        opened_at=float(data.get("opened_at") or 0) or None,
        last_error=str(data.get("last_error") or ""),
    )


def is_open(key: str, *, at: float | None = None) -> bool:
    """True while the breaker refuses new work (open, or half-open with its probe out)."""
    current = state(key, at=at)
    return current.state == OPEN or (
        current.state == HALF_OPEN and current.probe_until is not None
    )


def reset(key: str) -> None:
    record_success(key)
