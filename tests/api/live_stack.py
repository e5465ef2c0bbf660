"""A live studio for the API's end-to-end tests: the web process as production serves it
(gunicorn with one uvicorn worker, studio.asgi) and a real Celery worker, both subprocesses on
pytest-django's test database (rows committed: django_db(transaction=True)) and the test's Redis.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from django.conf import settings

from tests.generation.test_engine_worker import database_url

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": "",
        "STUDIO_TESTING": "1",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "ENGINE_REDIS_PREFIX": f"live-{uuid.uuid4().hex[:8]}",
        "ENGINE_SWEEP_INTERVAL": "1",
        "ENGINE_CAP_RECHECK": "1",
        "API_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        **extra,
    }


class Process:
    """A subprocess in its own process group (one signal reaches its children), logging to a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is not None:
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


def start_web(
    env: dict[str, str], folder: Path, workers: int = 1
) -> tuple[Process, str]:
    port = free_port()
    web = Process(
        [str(BIN / "gunicorn"), "studio.asgi:application", "-k", "uvicorn.workers.UvicornWorker",
         "-w", str(workers), "-b", f"127.0.0.1:{port}", "--timeout", "120"],
        env, folder / "web.log",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/api/v1/openapi.json", timeout=2)
            return web, base
        except httpx.TransportError:
            if web.proc.poll() is not None:
                break
            time.sleep(0.2)
    web.stop()
    raise AssertionError(f"the web process did not start:\n{web.log_tail()}")


def start_worker(env: dict[str, str], folder: Path) -> Process:
    name = f"live-{uuid.uuid4().hex[:6]}"
    return Process(
        [str(BIN / "celery"), "-A", "studio", "worker", "-Q", "celery,dispatch,ingest,export",
         "-c", "2", "-B", "-s", str(folder / f"beat-{name}"), "-l", "WARNING", "-n", f"{name}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env, folder / f"{name}.log",
    )  # fmt: skip


def clear_broker() -> None:
    """Drop queued messages of earlier runs: they name rows of an older test database."""
    from generation import caps

    client = caps.redis_client()
    assert client is not None, "the live tests need REDIS_URL"
    for pattern in (
        "celery*",
        "dispatch*",
        "ingest*",
        "export*",
        "unacked*",
        "_kombu*",
    ):
        if keys := list(client.scan_iter(pattern)):
            client.delete(*keys)
