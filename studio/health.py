"""Health probes for load balancers and orchestrators: `/healthz`, `/readyz`, and the gate of `/metrics`.

Probes come over plain HTTP, by IP address, from inside the network: in production the HTTPS
redirect (SecurityMiddleware) would answer them 301 and host validation 400. So the
`ProbeMiddleware` sits first in MIDDLEWARE and answers exactly these paths itself, before either
runs; every other path goes through the full stack unchanged. The probes reveal nothing a
visitor could use (part names, an error class and a short message), and /metrics has its own gate.

- `/healthz` is liveness: the process answers. No dependency is touched, so a database outage
  does not make an orchestrator restart every web process at once.
- `/readyz` is readiness: each part the studio needs is checked and named in the JSON answer,
  200 when all pass, 503 otherwise (the load balancer stops sending traffic to this process).
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.files.base import ContentFile
from django.http import HttpRequest, HttpResponse, JsonResponse

# Once every migration is applied it stays so until new code is deployed, which restarts the
# process: checking the plan once per process keeps a probe from loading the graph each time.
_migrations_applied = False


def check_database() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def check_redis() -> str:
    import redis

    url = settings.REDIS_URL
    if not url:
        return "not configured (REDIS_URL unset: local cache, no shared caps)"
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return "ping"


def check_broker() -> str:
    from studio.celery import app

    with app.connection_for_write() as conn:
        # One attempt, two seconds: a probe must answer quickly, whatever kombu's retry policy.
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport_cls if isinstance(conn.transport_cls, str) else "ok"


def check_storage() -> str:
    from django.core.files.storage import storages

    storage = storages["default"]
    name = storage.save(f"health/{uuid.uuid4().hex}.txt", ContentFile(b"readyz"))
    storage.delete(name)
    return type(storage).__name__


def check_migrations() -> str:
    global _migrations_applied
    if not _migrations_applied:
        from django.db import connection
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            raise RuntimeError(f"{len(plan)} migration(s) not applied")
        _migrations_applied = True
    return "applied"


READY_CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "redis": check_redis,
    "broker": check_broker,
    "storage": check_storage,
    "migrations": check_migrations,
}


def readiness() -> tuple[bool, dict[str, dict[str, object]]]:
    """Run every check; each part's answer names it, its time, and what failed."""
    parts: dict[str, dict[str, object]] = {}
    for name, check in READY_CHECKS.items():
        started = time.perf_counter()
        try:
            detail = check()
            parts[name] = {"ok": True, "detail": detail}
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", named below
            parts[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        parts[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return all(part["ok"] for part in parts.values()), parts


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    ok, parts = readiness()
    return JsonResponse(
        {"status": "ok" if ok else "fail", "checks": parts}, status=200 if ok else 503
    )


def metrics_allowed(request: HttpRequest) -> bool:
    """With METRICS_TOKEN: the bearer token, from anywhere. Without: loopback only, and not a
    request relayed by a proxy on the same machine (X-Forwarded-For), which would look local."""
    token = settings.METRICS_TOKEN
    if token:
        import hmac

        header = request.META.get("HTTP_AUTHORIZATION", "")
        return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponse(
            "metrics: set METRICS_TOKEN and send it as a bearer token, or scrape from loopback\n",
            status=403,
            content_type="text/plain",
        )
    from studio.metrics import exposition

    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics,
}


class ProbeMiddleware:
    """Answers the probe paths before the HTTPS redirect and host validation (see the module)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info.rstrip("/") or "/")
        if probe is None or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        response = probe(request)
        response["Cache-Control"] = "no-store"
        return response
