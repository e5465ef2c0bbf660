"""The engine's state as Prometheus reads it at scrape time (studio/metrics.py explains why).

- `studio_generations{state,backend}`: non-terminal generations (queued, submitted, running,
  ingesting), counted in PostgreSQL through the sweep's partial index on active rows, so a
  scrape costs the same at a thousand or a million finished generations. Terminal outcomes are
  the counter `studio_generations_finished_total`, recorded where the transition happens.
- `studio_queue_depth{queue}`: messages waiting in each Celery queue (Redis lists, priorities
  included).
- `studio_cap_in_flight{cap}`: live leases per concurrency cap (backend:account).
- `studio_breaker_state{breaker}`: 0 closed, 1 half-open, 2 open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from generation import breaker, caps
from generation.backends.base import BackendError, ErrorClass
from studio.metrics import (
    COST,
    GENERATION_ERRORS,
    GENERATIONS_FINISHED,
    PROVIDER_CALL_LATENCY,
    RATE_LIMITED,
)

if TYPE_CHECKING:
    from generation.models import Generation

log = logging.getLogger(__name__)


# --- events, recorded by generation/services.py where they happen ----------------------------------
class provider_call:
    """Times one exchange with a provider; the outcome is "ok" or the BackendError's class."""

    def __init__(self, backend: str, operation: str) -> None:
        self.backend, self.operation = backend, operation

    def __enter__(self) -> provider_call:
        self.started = time.perf_counter()
        return self

    def __exit__(self, exc_type: type | None, exc: object, tb: object) -> None:
        if exc_type is None:
            outcome = "ok"
        elif isinstance(exc, BackendError):
            outcome = str(exc.error_class)
        else:
            outcome = exc_type.__name__
        PROVIDER_CALL_LATENCY.labels(self.backend, self.operation, outcome).observe(
            time.perf_counter() - self.started
        )


def provider_error(backend: str, error_class: str) -> None:
    GENERATION_ERRORS.labels(backend, str(error_class)).inc()
    if error_class == ErrorClass.RATE_LIMITED:
        RATE_LIMITED.labels(backend).inc()


def finished(generation: Generation, state: str) -> None:
    """A generation reached a terminal state (its transition won); a success adds its cost."""
    GENERATIONS_FINISHED.labels(generation.backend, str(state)).inc()
    if state == "succeeded":
        cost = generation.actual_cost
        if cost is None:
            cost = generation.estimated_cost
        COST.labels(generation.backend).inc(float(cost or 0))


QUEUES = ("celery", "dispatch", "ingest", "gpu")
_BREAKER_VALUE = {breaker.CLOSED: 0, breaker.HALF_OPEN: 1, breaker.OPEN: 2}
# kombu's Redis transport keeps one list per queue and priority step: "name", "name\x06\x163", ...
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


class EngineCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._generations()
        client = caps.redis_client()
        if client is None:
            return
        try:
            yield from self._queues(client)
            yield from self._caps(client)
            yield from self._breakers(client)
        except (
            Exception
        ):  # Redis down: /readyz says so; the scrape still answers the rest.
            log.warning("metrics: Redis state unavailable", exc_info=True)

    def _generations(self) -> Iterator[GaugeMetricFamily]:
        from generation.models import ACTIVE_STATES, Generation

        family = GaugeMetricFamily(
            "studio_generations",
            "Generations not yet finished, by state and backend.",
            labels=["state", "backend"],
        )
        rows = (
            Generation.objects.filter(state__in=ACTIVE_STATES)
            .order_by()
            .values_list("state", "backend")
            .annotate(n=Count("id"))
        )
        for state, backend, n in rows:
            family.add_metric([state, backend], n)
        yield family

    def _queues(self, client: redis.Redis) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "studio_queue_depth",
            "Messages waiting in each Celery queue.",
            labels=["queue"],
        )
        if not str(settings.CELERY_BROKER_URL).startswith(("redis://", "rediss://")):
            return
        pipe = client.pipeline(transaction=False)
        for queue in QUEUES:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
        lengths = pipe.execute()
        step = len(_PRIORITY_SUFFIXES)
        for index, queue in enumerate(QUEUES):
            family.add_metric([queue], sum(lengths[index * step : (index + 1) * step]))
        yield family

    def _caps(self, client: redis.Redis) -> Iterator[GaugeMetricFamily]:
        in_flight = GaugeMetricFamily(
            "studio_cap_in_flight",
            "Generations holding a slot of each concurrency cap (backend:account).",
            labels=["cap"],
        )
        prefix = f"{caps.prefix()}:cap:"
        now = time.time()
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            name = key.decode() if isinstance(key, bytes) else key
            live = client.zcount(name, now, "+inf")
            in_flight.add_metric([name.removeprefix(prefix)], live)
        yield in_flight

    def _breakers(self, client: redis.Redis) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "studio_breaker_state",
            "Circuit breaker per backend and credentials: 0 closed, 1 half-open, 2 open.",
            labels=["breaker"],
        )
        prefix = f"{caps.prefix()}:breaker:"
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            name = (key.decode() if isinstance(key, bytes) else key).removeprefix(
                prefix
            )
            family.add_metric([name], _BREAKER_VALUE[breaker.state(name).state])
        yield family
