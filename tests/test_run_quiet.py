"""`make run` says what matters (issue 18): the first 40 lines a start prints hold no warning, and
SIGTERM, or Ctrl-C through make on a terminal, stops everything with exit status 0 (make prints no
"make: *** ... Error/Interrupt").

Runs the real script on SQLite and the filesystem broker in a temporary data folder on a free port.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_run_script import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
NOISE = re.compile(r"warn|error|traceback|hint:|no hostname", re.IGNORECASE)


def run_env(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "MEDIA_ROOT",
            "MAKEFLAGS",
        )
    }
    env.update(
        STUDIO_DATA_DIR=str(tmp_path / "var"), PORT=str(free_port()), NO_COLOR="1"
    )
    return env


def assert_quiet(output: str) -> None:
    assert "Studio is running" in output
    first = output.splitlines()[:40]
    noisy = [line for line in first if NOISE.search(line)]
    assert not noisy, "\n".join(first)


def test_sigterm_stops_a_quiet_start_with_exit_0(tmp_path: Path) -> None:
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "run.sh")],
            cwd=ROOT,
            env=run_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while "Studio is running" not in log_path.read_text(errors="replace"):
            assert proc.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "no banner"
            time.sleep(0.3)
        time.sleep(3)  # the workers' and beat's first lines come after the banner
        assert_quiet(log_path.read_text(errors="replace"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, log_path.read_text(errors="replace")[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_ctrl_c_through_make_exits_0_without_a_make_error(tmp_path: Path) -> None:
    env = run_env(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: `make run` on a terminal, as a person types it
        os.chdir(ROOT)
        os.execvpe("make", ["make", "--no-print-directory", "run"], env)
    output = b""

    def read_for(seconds: float, until: bytes | None = None) -> None:
        nonlocal output
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until and until in output):
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    output += os.read(fd, 65536)
                except OSError:  # the terminal closed: everything exited
                    return

    try:
        read_for(240, until=b"Studio is running")
        read_for(3)
        text = output.decode(errors="replace").replace("\r", "")
        assert_quiet(text)
        os.write(fd, b"\x03")  # Ctrl-C
        read_for(40, until=b"Stopped.")
        read_for(2)
        _, status = os.waitpid(pid, 0)
        text = output.decode(errors="replace").replace("\r", "")
        assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
        assert "make: ***" not in text, text[-2000:]
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
