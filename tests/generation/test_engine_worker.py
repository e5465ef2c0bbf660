"""A real Celery worker (prefork, 2 processes, embedded beat) on Redis and PostgreSQL against the
fake BFL server: generations run to success, and a SIGKILLed worker loses nothing.

The worker is a subprocess in its own process group, pointed at pytest-django's test database
(rows are committed: django_db(transaction=True)). Short engine intervals come through its
environment: the sweep every 1 s, re-driving work 2 s overdue, claims held 5 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from generation import caps
from generation.engine.create import generation_create
from generation.models import TERMINAL_STATES, Asset, Generation, GenerationState
from studio.models import Workspace
from tests.fakes import bfl_server
from tests.fakes.bfl_server import FakeBFL

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")


def database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Worker:
    """`celery -A studio worker` in its own process group, so one signal reaches every process."""

    def __init__(self, env: dict[str, str], folder: Path, name: str) -> None:
        self.env = env
        self.folder = folder
        self.name = name
        self.log_path = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        # Each start gets its own beat schedule file: a SIGKILLed beat can leave Python 3.13's
        # sqlite-backed shelve in a state the next beat fails to open ("locking protocol").
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [CELERY, "-A", "studio", "worker", "-Q", "celery,dispatch,ingest", "-c", "2", "-B",
             "-s", str(self.folder / f"beat-schedule-{uuid.uuid4().hex[:8]}"), "-l", self.env.get("LOG_LEVEL", "WARNING"), "-n", f"{self.name}-{uuid.uuid4().hex[:6]}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        text = (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def fake() -> Iterator[FakeBFL]:
    # http.server answers in two writes (headers, body); with Nagle on, each answer then waits
    # for the client's delayed ACK (~40 ms), which a real API does not do. TCP_NODELAY, as
    # production servers set it, keeps the fake's timing to the latency it is asked for.
    before = bfl_server._Handler.disable_nagle_algorithm
    bfl_server._Handler.disable_nagle_algorithm = True
    try:
        with FakeBFL(latency=1.0, concurrency=24) as server:
            yield server
    finally:
        bfl_server._Handler.disable_nagle_algorithm = before


@pytest.fixture
def engine_env(fake: FakeBFL, tmp_path: Path) -> Iterator[dict[str, str]]:
    client = caps.redis_client()
    assert client is not None, "the integration tests need REDIS_URL"
    # Drop the broker's queues and unacked messages of earlier runs (a SIGKILLed worker's messages
    # stay in Redis until the visibility timeout); they name rows of an older test database.
    for pattern in ("celery*", "dispatch*", "ingest*", "unacked*"):
        if keys := list(client.scan_iter(pattern)):
            client.delete(*keys)
    prefix = f"itest-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": "",
        "STUDIO_TESTING": "1",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "LOG_LEVEL": os.environ.get("ENGINE_TEST_WORKER_LOG_LEVEL", "WARNING"),
        "ENGINE_REDIS_PREFIX": prefix,
        "ENGINE_SWEEP_INTERVAL": "1",
        "ENGINE_STUCK_AFTER": "2",
        "ENGINE_CLAIM_TTL": "5",
        "ENGINE_LEASE_TTL": "20",
        "ENGINE_CAP_RECHECK": "1",
        **fake.env(),
    }
    with override_settings(
        ENGINE_REDIS_PREFIX=prefix,
        BFL_API_KEY=fake.api_key,
        BFL_API_URL=fake.base_url,
        BFL_ALLOWED_HOSTS=fake.allowed_hosts,
    ):
        yield env


@pytest.fixture
def workers(
    engine_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[str], Worker]]:
    started: list[Worker] = []

    def start(name: str) -> Worker:
        worker = Worker(engine_env, tmp_path, name).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def create(n: int, prefix: str = "item") -> list[int]:
    workspace, _ = Workspace.objects.get_or_create(
        slug="itest", defaults={"name": "Integration"}
    )
    return [
        generation_create(
            workspace=workspace,
            backend="bfl",
            model="flux-2-pro",
            prompt=f"{prefix} {i}",
            width=256,
            height=256,
            seed=i,
        ).pk
        for i in range(n)
    ]


def states(ids: list[int]) -> Counter[str]:
    return Counter(
        Generation.objects.filter(pk__in=ids).values_list("state", flat=True)
    )


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def terminal(ids: list[int]) -> int:
    return Generation.objects.filter(pk__in=ids, state__in=TERMINAL_STATES).count()


def test_a_real_worker_runs_generations_to_success(
    fake: FakeBFL, workers: Callable[[str], Worker]
) -> None:
    worker = workers("ok")
    ids = create(30)
    finished = wait_for(lambda: terminal(ids) == len(ids), timeout=60)
    assert finished, f"{states(ids)}\n{worker.log_tail()}"
    assert states(ids) == Counter({GenerationState.SUCCEEDED: 30}), worker.log_tail()
    assert Asset.objects.filter(generation_id__in=ids).count() == 30
    for asset in Asset.objects.filter(generation_id__in=ids)[:3]:
        assert asset.file.storage.exists(asset.file.name)
        assert asset.thumbnail.storage.exists(asset.thumbnail.name)
    counts = fake.counts
    assert counts["submissions"] == 30  # nothing submitted twice
    assert counts["rate_limited"] == 0  # our cap kept us under the provider's
    assert fake.max_active <= 24
    assert counts["misrouted_polls"] == 0


def test_a_sigkilled_worker_loses_nothing(
    fake: FakeBFL, workers: Callable[[str], Worker], artifacts_dir: Path
) -> None:
    n = 100
    first = workers("doomed")
    started = time.monotonic()
    ids = create(n)
    # Kill in the middle: some done, some at the provider, some waiting.
    assert wait_for(lambda: terminal(ids) >= 25, timeout=60), (
        f"{states(ids)}\n{first.log_tail()}"
    )
    first.kill()
    killed_at = time.monotonic()
    at_kill = states(ids)
    submissions_at_kill = fake.counts["submissions"]

    second = workers("rescuer")
    restarted_at = time.monotonic()
    bound = 60.0
    timeline: list[tuple[float, int]] = []

    def all_done() -> bool:
        count = terminal(ids)
        if not timeline or timeline[-1][1] != count:
            timeline.append((round(time.monotonic() - killed_at, 2), count))
        return count == n

    finished = wait_for(all_done, timeout=bound, step=0.1)
    done_at = time.monotonic()
    final = states(ids)
    counts = fake.counts
    result: dict[str, Any] = {
        "generations": n,
        "fake_latency_s": fake.latency,
        "fake_concurrency": fake.concurrency,
        "engine": {
            "sweep_interval_s": 1,
            "stuck_after_s": 2,
            "claim_ttl_s": 5,
            "lease_ttl_s": 20,
        },
        "states_at_kill": dict(at_kill),
        "final_states": dict(final),
        "killed_after_s": round(killed_at - started, 2),
        "recovery_s_from_kill": round(done_at - killed_at, 2),
        "recovery_s_from_new_worker": round(done_at - restarted_at, 2),
        "provider_submissions": counts["submissions"],
        "provider_submissions_at_kill": submissions_at_kill,
        "duplicate_submissions": counts["submissions"] - n,
        "submit_requests": counts["submit_requests"],
        "rate_limited": counts["rate_limited"],
        "polls": counts["polls"],
        "max_active_at_provider": fake.max_active,
        "terminal_after_kill_timeline": timeline,
        "attempts_total": sum(
            Generation.objects.filter(pk__in=ids).values_list("attempts", flat=True)
        ),
    }
    (artifacts_dir / "engine-kill.json").write_text(json.dumps(result, indent=2))
    print("\nengine kill test:", json.dumps(result, indent=2))
    assert finished, f"not all terminal within {bound} s: {final}\n{second.log_tail()}"
    assert final == Counter({GenerationState.SUCCEEDED: n}), second.log_tail()
    assert Asset.objects.filter(generation_id__in=ids).count() == n
    # Only a submit whose answer was lost in the kill can be sent twice: at most the worker's
    # two processes' worth, in practice none or one.
    assert counts["submissions"] <= n + 2
