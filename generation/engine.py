"""Engine policy: what to do after a failure, when to poll next, and the request a row stands for.

Pure decisions, so they are tested without a provider:

- `decide(error, ...)`: terminal or retry, after how long. Moderation is terminal and never
  retried; an expired result URL is terminal (`expired`); a 429 waits out Retry-After (plus up to
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
        return Decision("expired")
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


_EWMA = """
local old = redis.call('GET', KEYS[1])
local new = tonumber(ARGV[1])
if old then new = 0.7 * tonumber(old) + 0.3 * new end
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


def record_duration(backend: str, model: str, seconds: float) -> None:
    """Fold one observed provider duration into the running estimate (EWMA, weight 0.3), shared
    by all workers (one atomic Redis script; the Django cache without Redis)."""
    from generation import caps

    if seconds <= 0:
        return
    client = caps.redis_client()
    if client is not None:
        client.eval(_EWMA, 1, _duration_key(backend, model), seconds)
        return
    old = duration_estimate(backend, model)
    new = seconds if old is None else 0.7 * old + 0.3 * seconds
    cache.set(_duration_key(backend, model), round(new, 4), timeout=24 * 3600)


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
