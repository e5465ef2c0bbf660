"""The Redis broker transport with one fix: a lost connection never ends the worker.

kombu 5.7.0 (the newest release; every 5.x has the same code) restores a channel's unacknowledged
messages when the channel closes. When Redis goes away while the worker holds unacknowledged
messages (countdown polls), Celery's consumer closes the connection: the first channel's restore
fails with ConnectionError, which aborts closing the others, and the transport is released
(`transport.client = None`). Restarting the consumer then closes the channel left over; its restore
builds a new Redis pool from the released transport and fails with
`AttributeError: 'NoneType' object has no attribute 'hostname'` (kombu.transport.redis._connparams).
Celery does not count an AttributeError as a connection error, so the worker exits ("Unrecoverable
error"). tests/generation/test_engine_recovery.py reproduces both the kombu sequence and the
worker-level outage.

Here a restore that cannot reach Redis gives up quietly instead: the messages stay in Redis'
unacked hash when Redis kept them (kombu redelivers them after visibility_timeout) and are gone
when Redis came back empty; either way the engine's sweep re-drives the generations
(docs/engine-recovery.md), and every step is idempotent. Used through CELERY_BROKER_TRANSPORT.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)


class QoS(kombu_redis.QoS):
    def restore_unacked(self, client: Any = None) -> None:
        transport = self.channel.connection
        if transport is None or transport.client is None:
            # The connection was released: there is no broker to give the messages back to.
            self._forget("the connection was closed")
            return
        try:
            super().restore_unacked(client)
        except self.channel.connection_errors as exc:
            self._forget(f"Redis is unreachable ({exc})")

    def _forget(self, why: str) -> None:
        if self._delivered:
            log.warning(
                "not restoring %d unacknowledged message(s): %s; the engine's sweep "
                "re-drives their generations",
                len(self._delivered),
                why,
            )
        self._delivered.clear()


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        # The same release, reached another way: a message rejected or acknowledged (a task that
        # failed, a revoked one) on a channel whose transport was released asks for a new pool and
        # finds `connection` or its `client` gone. As a ConnectionError it is a connection error
        # Celery recovers from (it reconnects); as an AttributeError it ended the worker.
        transport = self.connection
        if transport is None or transport.client is None:
            raise kombu_redis.redis.exceptions.ConnectionError(
                "the broker connection was released"
            )
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
