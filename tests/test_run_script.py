"""`make run` supervises its processes (issue 10): a worker that dies is restarted while the web
server keeps answering, and SIGTERM stops everything cleanly with exit status 0.

Runs scripts/run.sh for real, on SQLite and the filesystem broker in a temporary data folder (so
no shared server is touched), on a free port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> dict[int, str]:
    """Direct children of `pid`: pid -> command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def io_worker(script_pid: int) -> int | None:
    return next(
        (pid for pid, cmd in children(script_pid).items() if "-Q dispatch" in cmd), None
    )


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as r:
            return r.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_make_run_restarts_a_dead_worker_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MEDIA_ROOT")
    }
    env.update(STUDIO_DATA_DIR=str(tmp_path / "var"), PORT=str(port), NO_COLOR="1")
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "run.sh")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: set[int] = set()
    try:
        wait_for(
            lambda: "Studio is running" in log_path.read_text(errors="replace"),
            240,
            "the banner",
        )
        first = io_worker(proc.pid)
        assert first is not None, children(proc.pid)
        seen.update(children(proc.pid))
        os.killpg(first, signal.SIGKILL)  # the worker and its threads, at once
        wait_for(
            lambda: (new := io_worker(proc.pid)) is not None and new != first,
            60,
            "the I/O worker to be restarted",
        )
        assert "The worker-io process exited" in log_path.read_text(errors="replace")
        assert proc.poll() is None
        wait_for(lambda: answers(port), 60, "the web server")
        seen.update(children(proc.pid))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, log_path.read_text(errors="replace")[-3000:]
        for pid in seen:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
            ), pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in seen:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
