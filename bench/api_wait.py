"""200 concurrent `Prefer: wait=30` calls on ONE web process (gunicorn, one uvicorn worker) while
gallery pages are timed, then the generation finishes and every waiter must answer.

    DATABASE_URL=... REDIS_URL=... .venv/bin/pytest -q -s -p no:cacheprovider bench/api_wait.py

(A pytest module so it gets a migrated throwaway database and the live stack of tests/api.)
Prints: the gallery's median idle and under load (and the ratio), the web process's thread
count idle and with 200 waiting (a thread per waiting call would show as +200), and the
latency percentiles from the finish to each waiter's answer.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.test import Client

from generation.backends.base import BackendError, ErrorClass
from generation.engine import failure as engine_failure
from generation.models import Generation
from studio.models import Role
from tests.api.helpers import make_token
from tests.api.live_stack import stack_env, start_web
from tests.factories import (
    make_asset,
    make_brand,
    make_campaign,
    make_member,
    make_workspace,
)

pytestmark = [pytest.mark.django_db(transaction=True)]
WAITERS = 200


def threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def gallery_median(base: str, cookies: dict[str, str], runs: int = 15) -> float:
    times = []
    with httpx.Client(base_url=base, cookies=cookies, timeout=30) as c:
        for _ in range(runs):
            t = time.perf_counter()
            assert c.get("/gallery/").status_code == 200
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def test_200_waiters(tmp_path: Path) -> None:
    workspace = make_workspace("Bench")
    brand = make_brand(workspace, name="Bench brand")
    campaign = make_campaign(brand)
    for _ in range(60):
        make_asset(campaign)
    user = make_member(workspace, Role.APPROVER, "bench-approver")
    client = Client()
    client.force_login(user)
    cookies = {
        settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value
    }
    token = make_token(workspace, Role.EDITOR)
    web, base = start_web(
        stack_env(API_RATE_LIMIT="1000000", DEBUG="1", DB_POOL_MAX_SIZE="20"),
        tmp_path,
        workers=1,
    )
    try:
        worker_pid = int(
            Path(f"/proc/{web.proc.pid}/task/{web.proc.pid}/children")
            .read_text()
            .split()[0]
        )
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(f"{base}/api/v1/generations", headers=headers, json={
            "prompt": "A mug", "backend": "preview", "model": "flux-2-pro"}).json()  # fmt: skip
        idle = gallery_median(base, cookies)
        idle_threads = threads(worker_pid)
        answered: list[float] = []

        async def waiters() -> list[int]:
            limits = httpx.Limits(max_connections=WAITERS + 10)
            async with httpx.AsyncClient(base_url=base, timeout=40, limits=limits) as c:

                async def one() -> int:
                    r = await c.get(f"/api/v1/generations/{created['id']}",
                                    headers={**headers, "Prefer": "wait=30"})  # fmt: skip
                    answered.append(time.monotonic())
                    return r.status_code

                return await asyncio.gather(*(one() for _ in range(WAITERS)))

        import threading

        result: dict[str, object] = {}
        runner = threading.Thread(
            target=lambda: result.update(codes=asyncio.run(waiters()))
        )
        runner.start()
        time.sleep(4)  # all 200 connected and waiting
        loaded_threads = threads(worker_pid)
        loaded = gallery_median(base, cookies)
        finished = time.monotonic()
        engine_failure.generation_fail(
            generation_id=Generation.objects.get(code=created["id"]).pk,
            error=BackendError(ErrorClass.PROVIDER_ERROR, "bench"),
        )
        runner.join(60)
        codes = result["codes"]
        assert codes == [200] * WAITERS, codes
        lat = sorted(a - finished for a in answered)
        q = statistics.quantiles(lat, n=100)
        print(
            f"\nwaiters={WAITERS} gallery median idle={idle * 1000:.1f} ms "
            f"loaded={loaded * 1000:.1f} ms ratio={loaded / idle:.2f}\n"
            f"web worker threads idle={idle_threads} with {WAITERS} waiting={loaded_threads}\n"
            f"finish->answer p50={q[49] * 1000:.0f} ms p90={q[89] * 1000:.0f} ms "
            f"p99={q[98] * 1000:.0f} ms max={lat[-1] * 1000:.0f} ms"
        )
        # Every waiter answered (above) with the web process on a pool of 20 PostgreSQL
        # connections. The thread count is printed, not asserted: Django gives each request an
        # executor thread of its own for its sync code (asgiref's thread-sensitive mode), which
        # sits parked while the coroutine waits -- memory, not a busy worker.
    finally:
        web.stop()
