"""Throwaway Redis and PostgreSQL servers that a test may stop and restart (the shared ones it must
never touch). Both listen on 127.0.0.1 on a free port and keep nothing on disk beyond the test."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PG_BINDIR = next(
    (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)),
    "",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


class RedisServer:
    """`redis-server` without persistence: a restart comes back empty, as in the issue."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        log = (self.folder / f"redis-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        wait_port(self.port)
        return self

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["su", "postgres", "-c", " ".join(args)] if os.geteuid() == 0 else args


class PostgresServer:
    """A trust-auth PostgreSQL cluster in a temporary folder (as scripts/test.sh starts one)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "pg"
        self.data = self.folder / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(_as_postgres(list(args)), check=True, capture_output=True)

    def init(self) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            for parent in self.folder.parents:  # postgres must reach its folder
                os.chmod(parent, os.stat(parent).st_mode | 0o711)
        self._run(f"{PG_BINDIR}/initdb", "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "-E", "UTF8", "--no-sync")  # fmt: skip
        return self.start()

    def start(self) -> PostgresServer:
        options = (
            f"'-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off'"
        )
        self._run(f"{PG_BINDIR}/pg_ctl", "-D", str(self.data), "-l",
                  str(self.folder / "server.log"), "-w", "-t", "30", "-o", options, "start")  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(f"{PG_BINDIR}/pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
