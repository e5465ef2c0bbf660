"""Probes, the /metrics gate and the Redis eviction check, against real servers.

`/readyz` is checked against a throwaway redis-server this test starts and stops (the shared
one is never touched); the probes are asked the way a load balancer asks: plain HTTP, by IP,
with the HTTPS redirect on and the IP not in ALLOWED_HOSTS.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from django.test import Client, override_settings

from studio import redis_policy

pytestmark = pytest.mark.django_db

PRODUCTION_LIKE = {
    "SECURE_SSL_REDIRECT": True,
    "ALLOWED_HOSTS": ["studio.example.com"],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayRedis:
    def __init__(self, *args: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("throwaway redis-server did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    yield server
    server.stop()


def probe(path: str, **headers: str):  # type: ignore[no-untyped-def]
    # A probe by IP over plain HTTP: REMOTE_ADDR and Host are the pod's IP, no TLS.
    return Client(REMOTE_ADDR="10.0.0.7").get(
        path, HTTP_HOST="10.0.0.7:8000", **headers
    )


@override_settings(**PRODUCTION_LIKE)
def test_healthz_answers_a_plain_http_probe_by_ip() -> None:
    response = probe("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    # Any other path still gets the production treatment: host check, then redirect to HTTPS.
    assert probe("/login/").status_code == 400
    page = Client().get("/login/", HTTP_HOST="studio.example.com")
    assert page.status_code == 301
    assert page["Location"].startswith("https://")


@override_settings(**PRODUCTION_LIKE)
def test_readyz_names_every_part_and_passes_when_all_are_up() -> None:
    response = probe("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {
        "database",
        "redis",
        "broker",
        "storage",
        "migrations",
    }
    assert all(part["ok"] for part in body["checks"].values())
    assert body["checks"]["database"]["detail"] == "postgresql"


def test_readyz_names_a_stopped_redis(own_redis: ThrowawayRedis) -> None:
    with override_settings(
        REDIS_URL=own_redis.url, CELERY_BROKER_URL=own_redis.url, **PRODUCTION_LIKE
    ):
        assert probe("/readyz").status_code == 200
        own_redis.stop()
        response = probe("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["error"]
    # The broker is the same stopped server; the database and storage still pass.
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["storage"]["ok"] is True


def test_metrics_without_token_is_loopback_only() -> None:
    with override_settings(METRICS_TOKEN="", **PRODUCTION_LIKE):
        assert probe("/metrics").status_code == 403
        local = Client(REMOTE_ADDR="127.0.0.1").get("/metrics", HTTP_HOST="127.0.0.1")
        assert local.status_code == 200
        assert b"studio_http_request_duration_seconds" in local.content
        # A proxy on the same machine relays outside requests from loopback: refused.
        relayed = Client(REMOTE_ADDR="127.0.0.1").get(
            "/metrics", HTTP_HOST="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9"
        )
        assert relayed.status_code == 403


def test_metrics_with_token_needs_the_bearer() -> None:
    with override_settings(METRICS_TOKEN="s3cret-token", **PRODUCTION_LIKE):
        assert probe("/metrics").status_code == 403
        assert probe("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
        local = Client(REMOTE_ADDR="127.0.0.1").get("/metrics", HTTP_HOST="127.0.0.1")
        assert local.status_code == 403
        ok = probe("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
        assert ok.status_code == 200
        assert ok["Content-Type"].startswith("text/plain")


def test_eviction_policy_warning(caplog: pytest.LogCaptureFixture) -> None:
    lru = ThrowawayRedis("--maxmemory-policy", "allkeys-lru")
    try:
        with (
            override_settings(REDIS_URL=lru.url, CELERY_BROKER_URL=lru.url),
            caplog.at_level(logging.WARNING, logger="studio.redis_policy"),
        ):
            assert redis_policy.warn_unless_noeviction() == "allkeys-lru"
    finally:
        lru.stop()
    assert "REDIS EVICTION RISK" in caplog.text
    assert "allkeys-lru" in caplog.text

    caplog.clear()
    safe = ThrowawayRedis("--maxmemory-policy", "noeviction")
    try:
        with (
            override_settings(REDIS_URL=safe.url, CELERY_BROKER_URL=safe.url),
            caplog.at_level(logging.WARNING, logger="studio.redis_policy"),
        ):
            assert redis_policy.warn_unless_noeviction() == "noeviction"
    finally:
        safe.stop()
    assert "EVICTION" not in caplog.text


def test_request_id_is_echoed_and_logged_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from studio.logs import logging_config

    config = logging_config("json", "INFO")
    formatter = config["formatters"]["json"]["()"](
        **{k: v for k, v in config["formatters"]["json"].items() if k != "()"}
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logger = logging.getLogger("studio.test_json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        import structlog

        structlog.contextvars.bind_contextvars(request_id="abcdef0123", user_id=7)
        logger.info("hello", extra={"generation_id": 42})
    finally:
        structlog.contextvars.clear_contextvars()
        logger.removeHandler(handler)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "hello"
    assert record["request_id"] == "abcdef0123"
    assert record["user_id"] == 7
    assert record["generation_id"] == 42
    assert record["level"] == "info"

    response = Client().get("/healthz")
    assert response.status_code == 200
    response = Client().get("/login/", HTTP_X_REQUEST_ID="req-12345678")
    assert response["X-Request-ID"] == "req-12345678"
