"""Soak: N generations against the fake BFL server (C slots, L s each) on the production process
split, with faults: a random worker SIGKILLed every --kill-every seconds, one Redis restart and
one PostgreSQL restart during the run. Prints lost generations (must be 0), duplicate
submissions (provider submissions beyond N; at most one per kill), the time to recover after each
fault, and the wall time against the limit ceil(N/C)·L.

    .venv/bin/python bench/soak.py                 # N = 10,000 (about 14 min at C=24, L=2)
    .venv/bin/python bench/soak.py -n 1000 --kill-every 30

Everything runs on throwaway servers this script starts and deletes (a PostgreSQL cluster from
initdb and a Redis without persistence, each on a free port), so the faults never touch a shared
server. As root, PostgreSQL runs as the `postgres` user (PG_BINDIR or /usr/lib/postgresql/*/bin).

Processes (as in the README's production section, default settings): the I/O worker
(`-Q dispatch -P threads -c 32`), the CPU worker (`-Q celery,ingest -P prefork -c 2`) and beat.
The script is their supervisor: a killed worker is started again at once, as systemd's
Restart=on-failure would.

Recovery after a fault = seconds from the fault until C more generations have finished (a full
round of the provider's slots: work flows again at the rate the provider allows). The Redis
restart: stopped with SIGTERM, down 5 s, back empty. The PostgreSQL restart: `pg_ctl restart -m
fast` (connections dropped).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CELERY = str(Path(sys.executable).parent / "celery")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--generations", type=int, default=10_000)
    parser.add_argument("-c", "--concurrency", type=int, default=24)
    parser.add_argument("-l", "--latency", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=256, help="image side in px")
    parser.add_argument("--kill-every", type=float, default=60.0)
    parser.add_argument(
        "--redis-at",
        type=float,
        default=0.3,
        help="Redis restart at this share of the limit",
    )
    parser.add_argument(
        "--postgres-at",
        type=float,
        default=0.6,
        help="PostgreSQL restart at this share",
    )
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp folder (logs)"
    )
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def pg_bin() -> str:
    if os.environ.get("PG_BINDIR"):
        return os.environ["PG_BINDIR"]
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(f"{folder}/initdb", os.X_OK):
            return folder
    found = shutil.which("pg_ctl")
    if not found:
        raise SystemExit(
            "no initdb/pg_ctl: apt-get install -y postgresql (or set PG_BINDIR)"
        )
    return str(Path(found).parent)


class Postgres:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "pgdata"
        self.bin = pg_bin()
        self.port = free_port()
        self.root = os.geteuid() == 0

    def run(self, *args: str) -> None:
        command = list(args)
        if self.root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(
            command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def start(self) -> Postgres:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.root:
            shutil.chown(self.folder, "postgres")
        self.run(f"{self.bin}/initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                 "-E", "UTF8", "--no-sync")  # fmt: skip
        self.ctl("start")
        return self

    def ctl(self, action: str, *extra: str) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")  # fmt: skip
        self.run(f"{self.bin}/pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"),
                 "-w", "-t", "60", "-o", options, *extra, action)  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.ctl("stop", "-m", "immediate")


class Redis:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Redis:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if not wait_port(self.port, 10):
            raise SystemExit("redis-server did not start")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Process:
    """One supervised process in its own process group."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], log: Path
    ) -> None:
        self.name, self.command, self.env, self.log = name, command, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def main() -> int:  # noqa: C901, PLR0915
    args = parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="studio-soak-"))
    os.chmod(folder, 0o755)
    pg = Postgres(folder / "pg")
    redis_server = Redis(folder)
    processes: dict[str, Process] = {}
    fake = None
    try:
        pg.start()
        redis_server.start()
        print(
            f"throwaway PostgreSQL {pg.url}, Redis {redis_server.url}, logs in {folder}",
            flush=True,
        )
        prefix = f"soak-{uuid.uuid4().hex[:6]}"
        os.environ.update(
            DATABASE_URL=pg.url,
            REDIS_URL=redis_server.url,
            SECRET_KEY="soak-" + uuid.uuid4().hex,
            DJANGO_SETTINGS_MODULE="studio.settings",
            MEDIA_ROOT=str(folder / "media"),
            ENGINE_REDIS_PREFIX=prefix,
            ENGINE_CONCURRENCY_BFL=str(args.concurrency),
        )
        os.environ.pop("CELERY_BROKER_URL", None)
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import close_old_connections, connection, transaction

        from generation.engine.create import generation_create
        from generation.models import TERMINAL_STATES, Generation
        from studio.models import Workspace
        from tests.fakes import bfl_server

        call_command("migrate", verbosity=0)
        bfl_server._Handler.disable_nagle_algorithm = True
        fake = bfl_server.FakeBFL(
            latency=args.latency, concurrency=args.concurrency
        ).start()
        settings.BFL_API_KEY, settings.BFL_API_URL = fake.api_key, fake.base_url
        settings.BFL_ALLOWED_HOSTS = fake.allowed_hosts
        env = {**os.environ, **fake.env(), "LOG_LEVEL": "WARNING"}
        common = ["-A", "studio", "worker", "-l", "WARNING", "--without-gossip",
                  "--without-mingle", "--without-heartbeat"]  # fmt: skip
        processes = {
            "worker-io": Process("worker-io", [CELERY, *common, "-Q", "dispatch", "-P", "threads",
                                 "-c", str(args.threads), "-n", f"io-{prefix}@%h"], env, folder / "worker-io.log"),
            "worker-cpu": Process("worker-cpu", [CELERY, *common, "-Q", "celery,ingest", "-P", "prefork",
                                  "-c", str(args.processes), "-n", f"cpu-{prefix}@%h"], env, folder / "worker-cpu.log"),
            "beat": Process("beat", [CELERY, "-A", "studio", "beat", "-l", "WARNING", "-s",
                            str(folder / "beat-schedule")], env, folder / "beat.log"),
        }  # fmt: skip
        for process in processes.values():
            process.start()
        time.sleep(3)

        workspace, _ = Workspace.objects.get_or_create(
            slug="soak", defaults={"name": "Soak"}
        )
        print(f"creating {args.generations} generations...", flush=True)
        with transaction.atomic():
            for i in range(args.generations):
                generation_create(
                    workspace=workspace, backend="bfl", model="flux-2-pro",
                    prompt=f"soak {i}", width=args.size, height=args.size, seed=i,
                    owner_key=f"soak:{prefix}",
                )  # fmt: skip
        start = time.monotonic()
        limit = math.ceil(args.generations / args.concurrency) * args.latency
        redis_at, postgres_at = args.redis_at * limit, args.postgres_at * limit
        next_kill = args.kill_every
        faults: list[
            dict[str, object]
        ] = []  # {kind, at, done_at_fault, recovered_after}
        done = 0
        give_up = 3 * limit + 600

        def count_done() -> int | None:
            try:
                return Generation.objects.filter(state__in=TERMINAL_STATES).count()
            except Exception:  # the database is restarting
                close_old_connections()
                connection.close()
                return None

        while True:
            now = time.monotonic() - start
            value = count_done()
            if value is not None:
                done = value
                for fault in faults:
                    if (
                        fault["recovered_after"] is None
                        and done >= int(fault["done"]) + args.concurrency
                    ):  # type: ignore[call-overload]
                        fault["recovered_after"] = round(now - float(fault["at"]), 1)  # type: ignore[arg-type]
            if done >= args.generations or now > give_up:
                break
            # Supervision: a worker that died (killed, or crashed on its own) starts again.
            for process in processes.values():
                if not process.alive():
                    process.restarts += 1
                    process.start()
            if now >= next_kill:
                victim = processes[rng.choice(["worker-io", "worker-cpu"])]
                victim.kill()
                victim.start()
                faults.append(
                    {
                        "kind": f"SIGKILL {victim.name}",
                        "at": now,
                        "done": done,
                        "recovered_after": None,
                    }
                )
                next_kill += args.kill_every
            if redis_at is not None and now >= redis_at:
                redis_server.stop()
                time.sleep(5)
                redis_server.start()
                faults.append(
                    {
                        "kind": "Redis restart (5 s down, empty)",
                        "at": now,
                        "done": done,
                        "recovered_after": None,
                    }
                )
                redis_at = None  # type: ignore[assignment]
            if postgres_at is not None and now >= postgres_at:
                connection.close()
                pg.ctl("restart", "-m", "fast")
                faults.append(
                    {
                        "kind": "PostgreSQL restart",
                        "at": now,
                        "done": done,
                        "recovered_after": None,
                    }
                )
                postgres_at = None  # type: ignore[assignment]
            time.sleep(0.5)
        wall = time.monotonic() - start
        close_old_connections()
        states = Counter(Generation.objects.values_list("state", flat=True))
        submissions = fake.counts["submissions"]
    finally:
        for process in processes.values():
            process.stop()
        if fake is not None:
            fake.stop()
        redis_server.stop()
        pg.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)

    lost = args.generations - states.get("succeeded", 0)
    kills = sum(1 for f in faults if str(f["kind"]).startswith("SIGKILL"))
    print(f"\nN={args.generations} C={args.concurrency} L={args.latency:g}s; faults: {kills} SIGKILLs, "
          f"1 Redis restart, 1 PostgreSQL restart")  # fmt: skip
    print(f"states {dict(states)}")
    print(f"lost {lost} (must be 0)")
    print(
        f"duplicate submissions {submissions - args.generations} (at most one per kill: {kills})"
    )
    print(
        f"max active at provider {fake.max_active if fake else '?'}; 429s {fake.counts['rate_limited'] if fake else '?'}"
    )
    for fault in faults:
        print(
            f"  at {float(fault['at']):7.1f} s  {fault['kind']:<34} recovered after {fault['recovered_after']} s"
        )  # type: ignore[arg-type]
    print(
        f"wall {wall:.1f} s   limit ceil(N/C)·L {limit:.1f} s   ratio {wall / limit:.3f}"
    )
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
