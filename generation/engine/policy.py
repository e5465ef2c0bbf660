"""Engine policy: what to do after a failure, when to poll next, and the request a row stands for.

Pure decisions, so they are tested without a provider:

- `decide(error, ...)`: terminal or retry, after how long. Moderation is terminal and never
  retried; an expired result is terminal (`expired`) unless the provider still keeps it (then
  the download is retried with backoff, each time with a fresh poll); a 429 waits out Retry-After (plus up to
  10% jitter so a crowd of workers does not come back in the same millisecond) and has its own,
  larger budget (ENGINE_MAX_RATE_LIMITED) because it is flow control, not failure; network
  errors, timeouts and 5xx back off exponentially with full jitter (delay drawn uniformly from
  0 .. min(cap, base·2^n)), at most ENGINE_MAX_RETRIES times, then the generation fails with the
  last error.
- `poll_delay(...)`: no task ever sleeps; a poll is scheduled with a countdown. The countdown
  follows the best latency hint available: the provider's progress (elapsed·(1−p)/p remaining),
  else the observed duration of recent generations of the same backend and model (an
  exponentially weighted mean kept in the cache, aimed slightly early: an early poll costs one
  HTTP call, a late one holds a concurrency slot), else a backoff from ENGINE_POLL_INITIAL
  growing by half the time already waited. Always clamped to ENGINE_POLL_MIN..ENGINE_POLL_MAX.
- `record_duration` / `record_upper_bound`: what the estimate learns from, and what not (a poll
  that ran late measures the worker, not the provider); see the comment above them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage

from generation.backends.base import (
    BackendError,
    ErrorClass,
    GenerationRequest,
    ReferenceInput,
)


def conf(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


# --- failures -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    outcome: str  # "retry", "failed", "moderated", "expired"
    delay: float = 0.0
    counter: str = (
        ""  # the Generation counter a retry increments: "retries" or "rate_limited"
    )


def backoff(n: int, *, rng: random.Random | None = None) -> float:
    """Full jitter: uniform over 0 .. min(cap, base·2^n) (n = retries so far)."""
    base, cap = conf("ENGINE_RETRY_BASE", 1.0), conf("ENGINE_RETRY_CAP", 60.0)
    return (rng or random).uniform(0, min(cap, base * 2 ** min(n, 30)))


def decide(
    error: BackendError,
    *,
    retries: int,
    rate_limited: int,
    rng: random.Random | None = None,
) -> Decision:
    if error.error_class == ErrorClass.MODERATED:
        return Decision("moderated")
    if error.error_class == ErrorClass.EXPIRED:
        # Retryable: the download failed but the provider still keeps the result (services
        # re-polls it for a fresh URL); only when it is gone, or after the retries, is it lost.
        if not error.retryable or retries >= conf("ENGINE_MAX_RETRIES", 5):
            return Decision("expired")
        delay = max(conf("ENGINE_RETRY_BASE", 1.0), backoff(retries, rng=rng))
        return Decision("retry", delay, "retries")
    if not error.retryable:
        return Decision("failed")
    if error.error_class == ErrorClass.RATE_LIMITED:
        if rate_limited >= conf("ENGINE_MAX_RATE_LIMITED", 50):
            return Decision("failed")
        if error.retry_after is not None:
            delay = error.retry_after * (1 + (rng or random).uniform(0, 0.1))
        else:
            delay = backoff(rate_limited, rng=rng)
        return Decision(
            "retry", min(delay, conf("ENGINE_RETRY_AFTER_MAX", 120.0)), "rate_limited"
        )
    if retries >= conf("ENGINE_MAX_RETRIES", 5):
        return Decision("failed")
    delay = max(
        backoff(retries, rng=rng),
        min(error.retry_after or 0.0, conf("ENGINE_RETRY_AFTER_MAX", 120.0)),
    )
    return Decision("retry", delay, "retries")


# --- polling ------------------------------------------------------------------------------------


def poll_delay(
    *, elapsed: float, progress: float | None = None, estimate: float | None = None
) -> float:
    """Seconds until the next poll of a generation submitted `elapsed` seconds ago."""
    low, high = conf("ENGINE_POLL_MIN", 0.1), conf("ENGINE_POLL_MAX", 8.0)
    if progress is not None and 0.05 <= progress < 1 and elapsed > 0:
        # The provider's own progress is the best hint: poll just after the expected finish
        # (10 ms late, so a task is not polled a hair before it is ready); a floor of a quarter
        # of ENGINE_POLL_MIN keeps a provider stuck at 99% from being hammered.
        return min(high, max(low / 4, elapsed * (1 - progress) / progress + 0.01))
    initial = conf("ENGINE_POLL_INITIAL", 0.5)
    if estimate:
        target = estimate * conf("ENGINE_POLL_AIM", 0.95)
        if target - elapsed > low:
            return min(high, target - elapsed)
        overdue = max(0.0, elapsed - target)
        return min(high, max(low, overdue * 0.5))
    # No hint: 0.5 s, then each wait half of the time already waited (×1.5 per poll) up to the cap.
    return min(high, max(initial if elapsed < initial else low, elapsed * 0.5))


def _duration_key(backend: str, model: str) -> str:
    return f"{getattr(settings, 'ENGINE_REDIS_PREFIX', 'engine')}:duration:{backend}:{model}"


# The estimate learns only from observations that measure the provider, never from when a poll
# happened to run: after a stall (a crash, a broker backlog) every poll is late and "ready at the
# first poll, 44 s after submit" says nothing about the provider, yet fed into the mean it made
# the next first polls wait longer, found the next generations ready late again, and kept the
# estimate high for hundreds of generations. So (services._on_result):
# - a measurement (the provider's own processing time, or a poll that ran on time after a
#   pending answer, which brackets the finish) moves the mean (EWMA, weight 0.3), clamped to
#   ENGINE_ESTIMATE_MIN..ENGINE_ESTIMATE_MAX;
# - "ready at the first poll" is only an upper bound: when the estimate is above it the estimate
#   is plainly wrong and drops below the bound (×0.7), so the next first polls come early enough
#   to see a pending answer and measure again; otherwise it changes nothing;
# - a late poll teaches nothing.
_LEARN = """
local old = redis.call('GET', KEYS[1])
local value = tonumber(ARGV[1])
local new
if ARGV[2] == 'bound' then
  if (not old) or tonumber(old) <= value then return old end
  new = value * 0.7
else
  new = value
  if old then new = 0.7 * tonumber(old) + 0.3 * value end
end
new = math.max(tonumber(ARGV[3]), math.min(tonumber(ARGV[4]), new))
redis.call('SET', KEYS[1], tostring(new), 'EX', 86400)
return tostring(new)
"""


def duration_estimate(backend: str, model: str) -> float | None:
    from generation import caps

    client = caps.redis_client()
    value = (
        client.get(_duration_key(backend, model))
        if client is not None
        else cache.get(_duration_key(backend, model))
    )
    return float(value) if value is not None else None


def _learn(backend: str, model: str, seconds: float, kind: str) -> None:
    from generation import caps

    if seconds <= 0:
        return
    low, high = conf("ENGINE_ESTIMATE_MIN", 0.1), conf("ENGINE_ESTIMATE_MAX", 300.0)
    client = caps.redis_client()
    if client is not None:
        client.eval(_LEARN, 1, _duration_key(backend, model), seconds, kind, low, high)
        return
    old = duration_estimate(backend, model)
    if kind == "bound":
        if old is None or old <= seconds:
            return
        new = seconds * 0.7
    else:
        new = seconds if old is None else 0.7 * old + 0.3 * seconds
    cache.set(
        _duration_key(backend, model), round(max(low, min(high, new)), 4), 24 * 3600
    )


def record_duration(backend: str, model: str, seconds: float) -> None:
    """Fold one measured provider duration into the running estimate (EWMA, weight 0.3, bounded),
    shared by all workers (one atomic Redis script; the Django cache without Redis)."""
    _learn(backend, model, seconds, "measured")


def record_upper_bound(backend: str, model: str, seconds: float) -> None:
    """The provider finished within `seconds` (ready at the first poll): an estimate above that
    is wrong and drops below it; one at or below it stays."""
    _learn(backend, model, seconds, "bound")


def poll_was_on_time(*, lateness: float, last_delay: float) -> bool:
    """Whether a poll ran close enough to its due time for its answer to time the provider:
    late by at most a quarter of the wait before it (ENGINE_POLL_MIN at least)."""
    return lateness <= max(conf("ENGINE_POLL_MIN", 0.1), 0.25 * last_delay)


# --- the request a generation row stands for ----------------------------------------------------


class ReferenceMissing(Exception):
    pass


def load_references(
    *, workspace_id: int, specs: list[dict[str, Any]]
) -> tuple[ReferenceInput, ...]:
    """ReferenceInputs for the row's reference list (library images by code, or stored files)."""
    from campaigns.models import ReferenceImage
    from generation import imaging

    codes = [spec["code"] for spec in specs if spec.get("code")]
    library = {
        str(ref.code): ref
        for ref in ReferenceImage.objects.filter(
            workspace_id=workspace_id, code__in=codes
        )
    }
    loaded = []
    for spec in specs:
        role = str(spec.get("role") or "")
        if spec.get("code"):
            ref = library.get(str(spec["code"]))
            if ref is None:
                raise ReferenceMissing(f"reference {spec['code']} no longer exists")
            with ref.file.open("rb") as handle:
                content = handle.read()
            loaded.append(
                ReferenceInput(
                    role or ref.role,
                    content,
                    ref.content_type,
                    ref.width,
                    ref.height,
                    name=str(ref),
                )
            )
        elif spec.get("file"):
            key = str(spec["file"])
            if not default_storage.exists(key):
                raise ReferenceMissing(f"reference file {key} is missing from storage")
            with default_storage.open(key, "rb") as handle:
                content = handle.read()
            info = imaging.inspect(
                content,
                max_pixels=int(
                    getattr(settings, "STUDIO_UPLOAD_MAX_PIXELS", 40_000_000)
                ),
            )
            loaded.append(
                ReferenceInput(
                    role,
                    content,
                    info.content_type,
                    info.width,
                    info.height,
                    name=spec.get("name", ""),
                )
            )
        else:
            raise ReferenceMissing(
                f"reference entry {spec!r} names neither a library image nor a file"
            )
    return tuple(loaded)


def palette_of(brand: Any) -> tuple[str, ...]:
    if brand is None:
        return ()
    return tuple(
        str(c["hex"])
        for c in brand.palette or ()
        if isinstance(c, dict) and c.get("hex")
    )


def build_request(
    *,
    model: str,
    prompt: str,
    width: int,
    height: int,
    seed: int | None,
    params: dict[str, Any],
    references: tuple[ReferenceInput, ...],
    brand: Any = None,
) -> GenerationRequest:
    return GenerationRequest(
        model=model,
        prompt=prompt,
        width=width,
        height=height,
        seed=seed,
        references=references,
        params=dict(params),
        palette=palette_of(brand),
    )
