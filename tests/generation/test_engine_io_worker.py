"""Waiting on a provider never blocks other generations (issue 10, item 3).

The production split with real processes: the I/O worker (queue dispatch, threads pool) and the
CPU worker (queues celery and ingest, prefork), on PostgreSQL and Redis, against the fake BFL.
Three submits are answered only after 20 s (the old two-process worker was stuck behind them);
the other generations must finish meanwhile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from generation import caps
from generation.engine.create import generation_create
from generation.models import Generation, GenerationState
from studio.models import Workspace
from tests.fakes import bfl_server
from tests.fakes.bfl_server import FakeBFL

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")
S = GenerationState


def database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def test_slow_submits_hold_threads_not_the_worker(tmp_path: Path) -> None:
    client = caps.redis_client()
    assert client is not None, "needs REDIS_URL"
    for pattern in ("celery*", "dispatch*", "ingest*", "unacked*"):
        if keys := list(client.scan_iter(pattern)):
            client.delete(*keys)
    before = bfl_server._Handler.disable_nagle_algorithm
    bfl_server._Handler.disable_nagle_algorithm = True
    fake = FakeBFL(latency=0.5, concurrency=24).start()
    prefix = f"itest-io-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": "",
        "STUDIO_TESTING": "1",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "ENGINE_REDIS_PREFIX": prefix,
        **fake.env(),
    }
    common = ["-A", "studio", "worker", "-l", "WARNING", "--without-gossip",
              "--without-mingle", "--without-heartbeat"]  # fmt: skip
    commands = [
        [CELERY, *common, "-Q", "dispatch", "-P", "threads", "-c", "16", "-n", f"io-{prefix}@%h"],
        [CELERY, *common, "-Q", "celery,ingest", "-P", "prefork", "-c", "1", "-n", f"cpu-{prefix}@%h"],
    ]  # fmt: skip
    log_path = tmp_path / "workers.log"
    workers = []
    try:
        with log_path.open("ab") as log:
            workers = [
                subprocess.Popen(
                    c,
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
                for c in commands
            ]
        time.sleep(4)  # both workers up (imports)
        fake.inject("slow", endpoint="submit", times=3, seconds=20)
        with override_settings(
            ENGINE_REDIS_PREFIX=prefix,
            BFL_API_KEY=fake.api_key,
            BFL_API_URL=fake.base_url,
            BFL_ALLOWED_HOSTS=fake.allowed_hosts,
        ):
            workspace = Workspace.objects.create(name="IO", slug=f"io-{prefix}")
            ids = [
                generation_create(
                    workspace=workspace, backend="bfl", model="flux-2-pro",
                    prompt=f"io {i}", width=256, height=256, seed=i,
                ).pk
                for i in range(23)
            ]  # fmt: skip
            started = time.monotonic()
            deadline = started + 90
            while time.monotonic() < deadline:
                succeeded = Generation.objects.filter(
                    pk__in=ids, state=S.SUCCEEDED
                ).count()
                if succeeded >= 20:
                    break
                time.sleep(0.2)
            assert succeeded >= 20, log_path.read_text()[-3000:]
            # The 20 others finished while the three slow submits were still waiting.
            waiting = Generation.objects.filter(pk__in=ids, submitted_at__isnull=True)
            assert waiting.count() == 3, time.monotonic() - started
            while time.monotonic() < deadline and (
                Generation.objects.filter(pk__in=ids, state=S.SUCCEEDED).count() < 23
            ):
                time.sleep(0.2)
            assert (
                Generation.objects.filter(pk__in=ids, state=S.SUCCEEDED).count() == 23
            )
            assert (
                fake.counts["submissions"] == 23
            )  # slow is not lost: nothing sent twice
    finally:
        for proc in workers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        fake.stop()
        bfl_server._Handler.disable_nagle_algorithm = before
