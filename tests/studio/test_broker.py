"""Issue 10 item 1 at the broker level, with a real Redis server: a worker's connection closes
while Redis is down and its channels hold unacknowledged messages (Celery's consumer does this on
a lost connection: collect(), close(), then closes the task consumer's channel on restart).

kombu's own Redis transport raises AttributeError ('NoneType' object has no attribute 'hostname')
from the second close, which ends a Celery worker; studio.broker.Transport closes cleanly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from kombu import Connection, Exchange, Queue

from tests.generation.servers import RedisServer

pytestmark = pytest.mark.integration


def close_while_redis_is_down(tmp_path: Path, transport: str | None) -> list[str]:
    server = RedisServer(tmp_path).start()
    conn = Connection(server.url, transport=transport)
    queue = Queue("itest", Exchange("itest"), "itest")
    try:
        with conn.Producer() as producer:
            for i in range(2):
                producer.publish(
                    {"i": i},
                    exchange=queue.exchange,
                    routing_key="itest",
                    declare=[queue],
                )
        consumer_channel, other = conn.channel(), conn.channel()
        for channel in (consumer_channel, other):  # one unacknowledged message on each
            assert channel.basic_get("itest", no_ack=False) is not None
        server.stop()
        outcomes = []
        # Celery's consumer: collect() closes the channels, last opened first; the first restore
        # fails (Redis is down) and leaves the consumer's channel open; the transport is released.
        try:
            conn.collect(socket_timeout=0.1)
        except Exception as exc:  # Celery ignores what collect() raises
            outcomes.append(f"collect: {type(exc).__name__}")
        conn.close()
        # Restarting, the consumer closes its channel.
        try:
            consumer_channel.close()
            outcomes.append("closed")
        except Exception as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
        return outcomes
    finally:
        server.stop()


def test_kombus_redis_transport_fails_with_attributeerror(tmp_path: Path) -> None:
    # The cause, kept as a test: if a kombu release fixes it, this fails and the pin and
    # studio/broker.py can go (docs/engine-recovery.md).
    outcomes = close_while_redis_is_down(tmp_path, transport=None)
    assert any(
        "'NoneType' object has no attribute 'hostname'" in o for o in outcomes
    ), outcomes


def test_the_studios_transport_closes_cleanly(tmp_path: Path) -> None:
    assert close_while_redis_is_down(tmp_path, "studio.broker:Transport") == ["closed"]


def test_the_redis_broker_uses_the_studios_transport() -> None:
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        pytest.skip("not a Redis broker")
    assert settings.CELERY_BROKER_TRANSPORT == "studio.broker:Transport"


def test_a_released_channel_asks_for_a_pool_with_a_connection_error() -> None:
    """The reject/ack path (a failed or revoked task's message on a released channel) reaches
    _connparams with `connection` gone: a ConnectionError (Celery reconnects), not the
    AttributeError that ended the worker in a Redis-restart run."""
    import redis as redis_lib

    from studio.broker import Channel

    channel = Channel.__new__(Channel)
    channel.connection = None
    with pytest.raises(redis_lib.exceptions.ConnectionError):
        channel._connparams()
