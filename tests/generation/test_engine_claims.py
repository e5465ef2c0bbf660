"""Issue 10: what the engine keeps when its helpers die.

- Claims (generation/claims.py): a submit or ingest claim held by a process that was SIGKILLed is
  released by the next sweep once the holder's liveness key lapses, not after ENGINE_CLAIM_TTL; a
  live holder's claim, an older claim's record and a claim with no record are left alone. The
  holder is a real process, killed for real.
- The concurrency cap (generation/caps.py): a Redis that restarts empty (a real redis-server,
  no persistence) has its leases rebuilt from the database's in-flight rows before the next
  acquire answers.
- Settings: an ENGINE_RETRY_AFTER_MAX at or above the broker's visibility timeout is refused.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from django.test import override_settings
from django.utils import timezone

from generation import caps, claims
from generation.engine import sweep as engine_sweep
from generation.models import Generation, GenerationState
from tests.generation.servers import RedisServer
from tests.generation.test_engine_state import EngineTestCase

S = GenerationState
ROOT = Path(__file__).resolve().parents[2]

# A holder in its own process: record the claim, say so, then wait to be killed.
_HOLDER = """
import os, sys, time, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
django.setup()
from datetime import datetime
from generation import claims
for pair in sys.argv[1:]:
    pk, due = pair.split("=", 1)
    claims.hold(int(pk), datetime.fromisoformat(due), ttl=60)
print("held", flush=True)
time.sleep(600)
"""


def _env(**extra: str) -> dict[str, str]:
    from django.conf import settings

    return {
        **os.environ,
        "STUDIO_TESTING": "1",
        "REDIS_URL": settings.REDIS_URL,
        "ENGINE_REDIS_PREFIX": caps.prefix(),
        "ENGINE_HOLDER_ALIVE_TTL": str(claims.alive_ttl()),
        **extra,
    }


class Holder:
    """A separate process that holds claims until it is SIGKILLed."""

    def __init__(self, claimed: list[tuple[int, datetime]]) -> None:
        args = [f"{pk}={due.isoformat()}" for pk, due in claimed]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, *args],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == b"held"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()


@override_settings(ENGINE_HOLDER_ALIVE_TTL=1.0, ENGINE_CLAIM_TTL=60.0)
class ClaimTests(EngineTestCase):
    def claimed(self, state: str) -> tuple[Generation, datetime]:
        """A row as a step leaves it while it works: claimed until now + ENGINE_CLAIM_TTL."""
        generation = self.create()
        due = timezone.now() + timedelta(seconds=60)
        Generation.objects.filter(pk=generation.pk).update(
            state=state, dispatched_at=timezone.now(), due_at=due
        )
        return generation, due

    def holder(self, claimed: list[tuple[int, datetime]]) -> Holder:
        holder = Holder(claimed)
        self.addCleanup(holder.stop)
        return holder

    def test_a_sigkilled_holders_claims_are_released_by_the_next_sweep(self) -> None:
        submitting, submit_due = self.claimed(S.QUEUED)
        ingesting, ingest_due = self.claimed(S.INGESTING)
        holder = self.holder([(submitting.pk, submit_due), (ingesting.pk, ingest_due)])
        # Alive (its heartbeat outlives several alive TTLs): its claims stand.
        time.sleep(2.5)
        self.assertEqual(engine_sweep.generation_sweep().redriven, 0)
        holder.kill()
        time.sleep(claims.alive_ttl() + 0.3)
        before = timezone.now()
        plan = engine_sweep.generation_sweep()
        self.assertEqual(plan.submit, [submitting.pk])
        self.assertEqual(plan.ingest, [ingesting.pk])
        for generation in (submitting, ingesting):
            due_at = self.reload(generation).due_at
            assert due_at is not None
            self.assertGreaterEqual(due_at, before)
            self.assertLessEqual(due_at, timezone.now())
        # Re-armed once: the next sweep finds nothing (the record no longer matches the row).
        self.assertEqual(engine_sweep.generation_sweep().redriven, 0)

    def test_a_record_of_an_older_claim_releases_nothing(self) -> None:
        # The row moved on (a retry's backoff, or a newer claim) after the dead holder's claim.
        generation, due = self.claimed(S.INGESTING)
        holder = self.holder([(generation.pk, due - timedelta(seconds=5))])
        holder.kill()
        time.sleep(claims.alive_ttl() + 0.3)
        self.assertEqual(engine_sweep.generation_sweep().redriven, 0)
        self.assertEqual(self.reload(generation).due_at, due)

    def test_a_claim_without_a_record_lasts_its_ttl(self) -> None:
        # Taken by a step that could not write the record (Redis away, or restarted empty).
        generation, due = self.claimed(S.QUEUED)
        self.assertEqual(engine_sweep.generation_sweep().redriven, 0)
        self.assertEqual(self.reload(generation).due_at, due)

    def test_this_processs_own_claims_are_alive(self) -> None:
        generation, due = self.claimed(S.INGESTING)
        claims.hold(generation.pk, due, ttl=60)
        time.sleep(claims.alive_ttl() * 2.5)
        self.assertEqual(claims.dead([(generation.pk, due)]), set())
        self.assertEqual(engine_sweep.generation_sweep().redriven, 0)


class CapRebuildTests(EngineTestCase):
    def test_leases_are_rebuilt_from_in_flight_rows_when_redis_restarts_empty(
        self,
    ) -> None:
        folder = Path(tempfile.mkdtemp(prefix="cap-rebuild-"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        server = RedisServer(folder).start()
        self.addCleanup(server.stop)
        with override_settings(REDIS_URL=server.url):
            ids = [self.create().pk for _ in range(8)]
            key = Generation.objects.get(pk=ids[0]).cap_key
            in_flight, waiting = ids[:5], ids[5:]
            now = timezone.now()
            states = [S.QUEUED, S.SUBMITTED, S.RUNNING, S.RUNNING, S.SUBMITTED]
            for pk, state in zip(in_flight, states, strict=True):
                Generation.objects.filter(pk=pk).update(
                    state=state, dispatched_at=now, due_at=now
                )
            cap = caps.cap_for(key)
            assert isinstance(cap, caps.RedisCap)
            for pk in in_flight:
                self.assertTrue(cap.acquire(pk, limit=6, ttl=180))

            server.stop()
            server.start()  # same port, nothing kept
            client = caps.redis_client()
            assert client is not None
            self.assertEqual(client.dbsize(), 0)

            # 5 rows are at the provider or about to be submitted: one slot of 6 is free.
            self.assertTrue(cap.acquire(waiting[0], limit=6, ttl=180))
            self.assertFalse(cap.acquire(waiting[1], limit=6, ttl=180))
            self.assertEqual(cap.count(), 6)
            self.assertEqual(cap.members(), {*in_flight, waiting[0]})
            Generation.objects.filter(pk=waiting[0]).update(
                dispatched_at=now, due_at=now
            )
            # Finished rows hold nothing: after another empty restart they are not counted.
            Generation.objects.filter(pk__in=in_flight[:3]).update(
                state=S.SUCCEEDED, due_at=None
            )
            server.stop()
            server.start()
            self.assertEqual(cap.count(), 3)  # in_flight[3:] and waiting[0]


def _settings_load(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**_env(), "CELERY_BROKER_URL": "redis://127.0.0.1:6379/10", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_inconsistent_retry_after_max_is_refused_at_startup() -> None:
    refused = _settings_load(
        ENGINE_RETRY_AFTER_MAX="400", CELERY_VISIBILITY_TIMEOUT="300"
    )
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr
    assert (
        "ENGINE_RETRY_AFTER_MAX (400 s) must be below CELERY_VISIBILITY_TIMEOUT (300 s)"
        in refused.stderr
    ), refused.stderr
    # Equal is refused too: a retry due exactly at the timeout is delivered twice.
    assert _settings_load(
        ENGINE_RETRY_AFTER_MAX="300", CELERY_VISIBILITY_TIMEOUT="300"
    ).returncode
    # The defaults, and a raised timeout, load.
    accepted = _settings_load()
    assert accepted.returncode == 0, accepted.stderr
    raised = _settings_load(
        ENGINE_RETRY_AFTER_MAX="400", CELERY_VISIBILITY_TIMEOUT="900"
    )
    assert raised.returncode == 0, raised.stderr
