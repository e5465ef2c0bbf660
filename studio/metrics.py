"""Prometheus metrics: every family the studio exports, and the `/metrics` exposition.

Two kinds, because the studio runs as many processes (gunicorn workers, Celery pool processes on
several machines) and a scrape reaches only one of them:

- Events (counters and histograms: request latency, provider call latency, errors, 429s, cost,
  export and check durations) are recorded by the process where they happen. With
  PROMETHEUS_MULTIPROC_DIR set (scripts/prod.sh and deploy/ set it; prometheus-client reads it
  before the first metric is created) each process writes its values to files in that folder
  and a scrape of any web process on the machine sums every process's files, the Celery
  workers' included when they share the folder (same machine). On several machines each machine's
  web process exports its own machine's workers; Prometheus sums across targets.
- State (generations waiting or at a provider, queue depths, leases in flight per concurrency cap,
  breaker states) is not counted by anyone: it is read from PostgreSQL and Redis at scrape time by
  collectors that apps register (`register_state_collector`, from their AppConfig.ready), so
  every process answers the same truth and nothing drifts when a worker dies.

Names follow Prometheus' conventions (`_seconds`, `_total`, `_usd_total`). Labels stay bounded:
views by URL name, backends by name, error classes by the engine's ErrorClass values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# No `<name>_created` series: a process's start time per label set says nothing to a dashboard, and
# multiprocess mode (gunicorn, workers) never emits them, so single-process runs would differ.
disable_created_metrics()

_WEB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
_PROVIDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_JOB_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)

# --- web ---------------------------------------------------------------------------------------
REQUEST_LATENCY = Histogram(
    "studio_http_request_duration_seconds",
    "Time to answer a request, by URL name (view), method and status class.",
    ["view", "method", "status"],
    buckets=_WEB_BUCKETS,
)
REQUEST_EXCEPTIONS = Counter(
    "studio_http_exceptions_total",
    "Unhandled exceptions in views, by URL name and exception class.",
    ["view", "exception"],
)

# --- generation engine (recorded in generation/services.py) ---------------------------------------
PROVIDER_CALL_LATENCY = Histogram(
    "studio_provider_request_duration_seconds",
    "One HTTP exchange with a provider (submit, poll, fetch), by backend, operation and outcome.",
    ["backend", "operation", "outcome"],
    buckets=_PROVIDER_BUCKETS,
)
PROVIDER_GENERATION_LATENCY = Histogram(
    "studio_provider_generation_duration_seconds",
    "Submitted to ready at the provider (what the provider took), by backend and model.",
    ["backend", "model"],
    buckets=_PROVIDER_BUCKETS,
)
GENERATION_ERRORS = Counter(
    "studio_generation_errors_total",
    "Provider and engine errors met by generations (retried or not), by backend and error class.",
    ["backend", "error_class"],
)
RATE_LIMITED = Counter(
    "studio_provider_rate_limited_total",
    "429 answers from providers (waited out with Retry-After), by backend.",
    ["backend"],
)
GENERATIONS_FINISHED = Counter(
    "studio_generations_finished_total",
    "Generations that reached a terminal state (succeeded, failed, moderated, canceled, expired).",
    ["backend", "state"],
)
COST = Counter(
    "studio_generation_cost_usd_total",
    "Spend on succeeded generations in USD (the provider's cost, else the estimate), by backend.",
    ["backend"],
)

# --- features above the engine observe into these (exports, automated checks) -------------------
EXPORT_DURATION = Histogram(
    "studio_export_duration_seconds",
    "Time to build one export (a ZIP, a channel package), by kind and outcome.",
    ["kind", "outcome"],
    buckets=_JOB_BUCKETS,
)
CHECK_DURATION = Histogram(
    "studio_check_duration_seconds",
    "Time of one automated check on an asset (brand, text, safety), by check and outcome.",
    ["check", "outcome"],
    buckets=_PROVIDER_BUCKETS,
)


class timed:
    """`with timed(EXPORT_DURATION, kind="zip"):` observes the block's seconds, with an
    `outcome` label of "ok", or the exception's class name when it raises (re-raised)."""

    def __init__(self, histogram: Histogram, **labels: str) -> None:
        self.histogram, self.labels = histogram, labels

    def __enter__(self) -> timed:
        self.started = time.perf_counter()
        return self

    def __exit__(self, exc_type: type | None, exc: object, tb: object) -> None:
        outcome = "ok" if exc_type is None else exc_type.__name__
        self.histogram.labels(**self.labels, outcome=outcome).observe(
            time.perf_counter() - self.started
        )


# --- state read at scrape time --------------------------------------------------------------------
_STATE_COLLECTORS: list[Collector] = []


def register_state_collector(collector: Collector) -> None:
    """Apps add collectors that read their state from the database/Redis when scraped."""
    if all(type(c) is not type(collector) for c in _STATE_COLLECTORS):
        _STATE_COLLECTORS.append(collector)


class _Declared(Collector):
    """In multiprocess mode a family shows up only once some process observed it; this adds the
    HELP and TYPE of the ones nobody observed yet, so dashboards and alerts see every family."""

    def __init__(self, present: set[str]) -> None:
        self.present = present

    def collect(self) -> Iterable[Metric]:
        for metric in (
            REQUEST_LATENCY,
            REQUEST_EXCEPTIONS,
            PROVIDER_CALL_LATENCY,
            PROVIDER_GENERATION_LATENCY,
            GENERATION_ERRORS,
            RATE_LIMITED,
            GENERATIONS_FINISHED,
            COST,
            EXPORT_DURATION,
            CHECK_DURATION,
        ):
            if metric._name not in self.present:
                yield Metric(metric._name, metric._documentation, metric._type)


def exposition() -> tuple[bytes, str]:
    """The text exposition: this machine's event metrics (every process's, in multiprocess mode)
    followed by the state collectors' families."""
    state = CollectorRegistry(auto_describe=False)
    if settings.PROMETHEUS_MULTIPROC_DIR:
        events = CollectorRegistry()
        merged = MultiProcessCollector(events)
        state.register(_Declared({family.name for family in merged.collect()}))
    else:
        events = REGISTRY
    for collector in _STATE_COLLECTORS:
        state.register(collector)
    return generate_latest(events) + generate_latest(state), CONTENT_TYPE_LATEST


# --- request latency by view ------------------------------------------------------------------------
def _view_name(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return (match.view_name or match._func_path) if match else "unresolved"


class RequestMetricsMiddleware:
    """Times every request (outside everything else but the probes) and counts view exceptions."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        REQUEST_LATENCY.labels(
            view=_view_name(request),
            method=request.method if request.method in _METHODS else "other",
            status=f"{response.status_code // 100}xx",
        ).observe(time.perf_counter() - started)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        REQUEST_EXCEPTIONS.labels(
            view=_view_name(request), exception=type(exception).__name__
        ).inc()


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def families(text: str) -> Iterable[str]:
    """Family names in an exposition (tests and the topology check)."""
    from prometheus_client.parser import text_string_to_metric_families

    # The parser names a counter family without its `_total`; exporters and queries use it.
    return {
        family.name + ("_total" if family.type == "counter" else "")
        for family in text_string_to_metric_families(text)
    }
