"""The production topology (`make prod`, scripts/prod.sh) runs a batch end to end.

scripts/prod.sh starts, against this test's PostgreSQL database and its own Redis key space, a
moto_server S3 bucket, gunicorn (DEBUG=0), the I/O worker (threads), the CPU worker (prefork) and
beat. The test then acts as a user over HTTP: logs in, dispatches a draft batch of 12 generations
on the fake BFL server, and waits for every image to land in the bucket. After it:

- /readyz names every part ok; /healthz answers; /metrics (from loopback) exposes every family
  the issue lists, with the workers' events summed in (multiprocess mode);
- the logs are JSON, line by line, and the request id of the dispatching web request, which
  listed the batch's generation ids, is on task lines of those generations on the workers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.test import override_settings

from generation import caps
from generation.batches import services as batch_services
from generation.models import Asset, Generation, GenerationState
from studio.models import Role
from tests.factories import make_brand, make_campaign, make_member, make_workspace
from tests.fakes import bfl_server
from tests.fakes.bfl_server import FakeBFL
from tests.generation.batch_helpers import make_version, matrix_spec
from tests.generation.test_engine_worker import database_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "topology-pw-1"
FAMILIES = {
    "studio_http_request_duration_seconds",
    "studio_http_exceptions_total",
    "studio_provider_request_duration_seconds",
    "studio_provider_generation_duration_seconds",
    "studio_generation_errors_total",
    "studio_provider_rate_limited_total",
    "studio_generations_finished_total",
    "studio_generation_cost_usd_total",
    "studio_export_duration_seconds",
    "studio_check_duration_seconds",
    "studio_generations",
    "studio_queue_depth",
    "studio_cap_in_flight",
    "studio_breaker_state",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def fake() -> Iterator[FakeBFL]:
    before = bfl_server._Handler.disable_nagle_algorithm
    bfl_server._Handler.disable_nagle_algorithm = True
    try:
        with FakeBFL(latency=0.5, concurrency=24) as server:
            yield server
    finally:
        bfl_server._Handler.disable_nagle_algorithm = before


class Topology:
    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.folder = folder
        self.port = int(env["PORT"])
        self.base = f"http://127.0.0.1:{self.port}"
        self.output = (folder / "prod.out").open("ab")
        self.proc = subprocess.Popen(
            [str(ROOT / "scripts" / "prod.sh")],
            cwd=ROOT,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.folder / "prod" / "ready").exists():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise AssertionError(f"topology not ready:\n{self.tail()}")

    def tail(self) -> str:
        parts = [(self.folder / "prod.out").read_text(errors="replace")[-3000:]]
        for log in sorted((self.folder / "prod" / "logs").glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.output.close()

    def json_lines(self, name: str) -> list[dict]:
        records = []
        for line in (
            (self.folder / "prod" / "logs" / f"{name}.log")
            .read_text(errors="replace")
            .splitlines()
        ):
            if line.startswith("{"):
                records.append(json.loads(line))  # every JSON-looking line must parse
        return records


class Browser:
    """urllib with a cookie jar and Django's CSRF dance: enough to act as a user over HTTP."""

    def __init__(self, base: str) -> None:
        import http.cookiejar

        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar)
        )

    def csrf(self) -> str:
        return next(c.value for c in self.jar if c.name == "csrftoken")

    def get(self, path: str, **headers: str):  # type: ignore[no-untyped-def]
        request = urllib.request.Request(self.base + path, headers=headers)
        return self.opener.open(request, timeout=30)

    def post(self, path: str, data: dict[str, str], **headers: str):  # type: ignore[no-untyped-def]
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": self.csrf()})
        request = urllib.request.Request(
            self.base + path,
            data=body.encode(),
            headers={"Referer": self.base + path, **headers},
        )
        return self.opener.open(request, timeout=30)


def test_the_production_topology_runs_a_batch_end_to_end(
    fake: FakeBFL, tmp_path: Path
) -> None:
    import urllib.parse  # noqa: F401 - Browser.post uses it

    client = caps.redis_client()
    assert client is not None, "the topology test needs REDIS_URL"
    for pattern in ("celery*", "dispatch*", "ingest*", "unacked*"):
        if keys := list(client.scan_iter(pattern)):
            client.delete(*keys)
    prefix = f"topo-{uuid.uuid4().hex[:8]}"

    workspace = make_workspace("Topology")
    user = make_member(workspace, Role.EDITOR, f"topo-{uuid.uuid4().hex[:6]}")
    # The topology runs with production's hashers (the suite's fast MD5 one is not among them).
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    user.save()
    brand = make_brand(workspace, name="Topology Roasters")
    campaign = make_campaign(brand, name="Topology launch")
    version = make_version(brand, campaign=campaign)
    with override_settings(
        ENGINE_REDIS_PREFIX=prefix,
        BFL_API_KEY=fake.api_key,
        BFL_API_URL=fake.base_url,
        BFL_ALLOWED_HOSTS=fake.allowed_hosts,
    ):
        batch = batch_services.batch_create(
            campaign=campaign,
            version=version,
            spec=matrix_spec(targets=("bfl:flux-2-pro",)),
            user=user,
            dispatch=False,
        )

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STUDIO_TESTING", "DJANGO_", "PYTEST"))
    }
    env.update(
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL="",
        PORT=str(_free_port()),
        PROD_DIR=str(tmp_path / "prod"),
        WEB_WORKERS="2",
        ENGINE_REDIS_PREFIX=prefix,
        ENGINE_SWEEP_INTERVAL="2",
        LOG_LEVEL="INFO",
        **fake.env(),
    )
    for key in ("AWS_STORAGE_BUCKET_NAME", "AWS_S3_ENDPOINT_URL", "MEDIA_ROOT"):
        env.pop(key, None)
    topology = Topology(env, tmp_path)
    try:
        topology.wait_ready()
        browser = Browser(topology.base)
        assert json.load(browser.get("/healthz")) == {"status": "ok"}
        ready = json.load(browser.get("/readyz"))
        assert ready["status"] == "ok", ready
        assert ready["checks"]["storage"]["detail"] == "S3Storage"
        assert ready["checks"]["database"]["detail"] == "postgresql"

        browser.get("/login/")
        browser.post("/login/", {"username": user.username, "password": PASSWORD})
        assert any(c.name == "sessionid" for c in browser.jar), topology.tail()
        browser.get(f"/batches/{batch.code}/")
        # A request id from outside (a proxy's) is kept; the redirect after the POST gets its own.
        request_id = f"topo-{uuid.uuid4().hex}"
        browser.post(
            f"/batches/{batch.code}/dispatch/", {}, **{"X-Request-ID": request_id}
        )

        ids = list(Generation.objects.filter(batch=batch).values_list("pk", flat=True))
        assert len(ids) == 12
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = Generation.objects.filter(
                pk__in=ids, state=GenerationState.SUCCEEDED
            ).count()
            if done == len(ids):
                break
            time.sleep(0.5)
        states = list(
            Generation.objects.filter(pk__in=ids).values_list("state", flat=True)
        )
        assert states.count(GenerationState.SUCCEEDED) == 12, (
            f"{states}\n{topology.tail()}"
        )
        # The images are in the S3 bucket: the asset page's image view redirects to a presigned URL.
        asset = Asset.objects.filter(generation_id__in=ids).first()
        assert asset is not None and asset.file.name.startswith("generations/")

        metrics = urllib.request.urlopen(f"{topology.base}/metrics", timeout=30)
        text = metrics.read().decode()
        from studio.metrics import families

        missing = FAMILIES - set(families(text))
        assert not missing, f"missing families: {missing}"
        # Events from the workers' processes are in the web process's answer (multiprocess).
        assert re.search(
            r'studio_generations_finished_total\{backend="bfl",state="succeeded"\} 12\.0',
            text,
        ), text[:4000]
        assert re.search(
            r'studio_provider_request_duration_seconds_count\{backend="bfl",operation="submit",outcome="ok"\} 12\.0',
            text,
        )
        assert (
            'studio_http_request_duration_seconds_count{method="POST",status="3xx",view="generation:batch-dispatch"}'
            in text
        )
    finally:
        topology.stop()

    web = topology.json_lines("web")
    dispatch = [r for r in web if r.get("request_id") == request_id]
    queued = [r for r in dispatch if r.get("event") == "batch generations queued"]
    assert queued, dispatch
    assert sorted(queued[0]["generation_ids"]) == sorted(ids)
    assert queued[0]["user_id"] == user.pk
    assert queued[0]["workspace"] == str(workspace.code)
    task_lines = [
        r
        for name in ("worker-io", "worker-cpu")
        for r in topology.json_lines(name)
        if r.get("request_id") == request_id and r.get("generation_id") in ids
    ]
    assert task_lines, "no worker log line carries the dispatching request's id"
    assert {r["workspace"] for r in task_lines} == {str(workspace.code)}
    assert {r["task"] for r in task_lines} >= {"generation.tasks.generation_poll"}
