"""Engine throughput: N generations against the fake BFL server (latency L, C tasks at once) with
real Celery workers; wall time against the limit ceil(N/C)·L, and CPU time.

    .venv/bin/python bench/engine_throughput.py -n 500 -c 24 -l 2

The limit: the provider runs at most C tasks at once and each takes L seconds; with N identical
jobs the last of ceil(N/C) rounds ends no earlier than ceil(N/C)·L (N/C·L is only the fluid bound,
below it whenever C does not divide N). The ratio wall/limit says how much the engine adds
(dispatch latency, poll granularity, ingest of the last ones). CPU time per generation is the
workers' user+system time (from /proc, each worker's whole process group) divided by N, given
per worker.

Needs PostgreSQL and Redis, given by their own variables so that a development database is never
touched by accident:
    BENCH_DATABASE_URL  a database the bench owns: it is migrated and its generations are DELETED
                        at the start (default: `engine_bench` on 127.0.0.1:5432, created when missing)
    BENCH_REDIS_URL     a Redis database the bench may FLUSH (default redis://127.0.0.1:6379/6): it
                        carries the broker queues, so stale messages of other runs must go.
The workers (the production split, README): the I/O worker `celery -A studio worker -Q dispatch
-P threads -c 32` and the CPU worker `celery -A studio worker -Q celery,ingest -P prefork -c 2`;
`--single` runs the former single worker (`-P prefork -c 2 -Q celery,dispatch,ingest`) instead.
No beat (the sweep only re-drives stuck work; nothing gets stuck here), default settings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--generations", type=int, default=500)
    parser.add_argument(
        "-c", "--concurrency", type=int, default=24, help="the provider's cap (C)"
    )
    parser.add_argument(
        "-l",
        "--latency",
        type=float,
        default=2.0,
        help="seconds per generation at the provider (L)",
    )
    parser.add_argument(
        "--size", type=int, default=1024, help="image side in px (default 1024: 1 MP)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="worker pool processes (at most 2 here)",
    )
    parser.add_argument(
        "--threads", type=int, default=32, help="I/O worker threads (default 32)"
    )
    parser.add_argument(
        "--single",
        action="store_true",
        help="one prefork worker on all queues (the layout before the split)",
    )
    parser.add_argument(
        "--json", default="", help="also write the figures to this file"
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the worker's log (INFO) and print its path",
    )
    parser.add_argument(
        "--worker-command",
        default="",
        help="diagnostics: run this command line as the worker instead",
    )
    args = parser.parse_args()
    if not 1 <= args.processes <= 2:
        parser.error("--processes must be 1 or 2")
    return args


def ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def group_cpu_seconds(pgid: int) -> float:
    """user+system CPU seconds of every live process in a process group (children included)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[2] = pgrp, [11] utime, [12] stime, [13] cutime, [14] cstime (after the comm)
        if int(fields[2]) == pgid:
            total += sum(int(v) for v in fields[11:15])
    return total / CLOCK_TICKS


def where_time_goes(ids: list[int], latency: float) -> dict[str, float]:
    """Per-generation timings from the rows' transition timestamps."""
    import statistics

    from generation.models import Generation

    rows = list(
        Generation.objects.filter(
            pk__in=ids, finished_at__isnull=False, ingesting_at__isnull=False
        ).values_list("dispatched_at", "submitted_at", "ingesting_at", "finished_at")
    )
    if not rows:
        return {}

    def seconds(a: object, b: object) -> float:
        return (b - a).total_seconds()  # type: ignore[operator]

    held = [seconds(d, i) for d, _s, i, _f in rows]
    seen = sorted(seconds(s, i) - latency for _d, s, i, _f in rows)
    span = seconds(min(r[0] for r in rows), max(r[3] for r in rows))
    return {
        "slot_held_mean_s": round(statistics.mean(held), 4),
        "dispatch_to_submitted_ms": round(
            statistics.median(seconds(d, s) for d, s, _i, _f in rows) * 1000, 1
        ),
        "ready_seen_after_ms": round(statistics.median(seen) * 1000, 1),
        "ready_seen_after_p90_ms": round(seen[int(len(seen) * 0.9)] * 1000, 1),
        "ingest_ms": round(
            statistics.median(seconds(i, f) for _d, _s, i, f in rows) * 1000, 1
        ),
        # Share of the C slots busy from the first dispatch to the last finish.
        "slot_utilisation": round(sum(held) / (span * max(1, _cap())), 4),
    }


def _cap() -> int:
    return int(os.environ.get("ENGINE_CONCURRENCY_BFL", "24"))


def main() -> int:
    args = parse_args()
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/engine_bench"
    )
    os.environ["REDIS_URL"] = os.environ.get(
        "BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("SECRET_KEY", "bench-" + uuid.uuid4().hex)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    media = tempfile.mkdtemp(prefix="engine-bench-media-")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ["MEDIA_ROOT"] = media
    os.environ["ENGINE_REDIS_PREFIX"] = prefix
    os.environ["ENGINE_CONCURRENCY_BFL"] = str(args.concurrency)
    ensure_database(os.environ["DATABASE_URL"])

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction

    from generation import caps
    from generation.engine.create import generation_create
    from generation.models import TERMINAL_STATES, Generation
    from studio.celery import app
    from studio.models import Workspace
    from tests.fakes import bfl_server

    call_command("migrate", verbosity=0)
    # Earlier runs' rows would compete for the same fair queue and cap: start empty.
    Generation.objects.all().delete()
    client = caps.redis_client()
    assert client is not None
    client.flushdb()

    # http.server writes headers and body separately; with Nagle on, every answer would wait
    # ~40 ms for the client's delayed ACK, which no production API server does.
    bfl_server._Handler.disable_nagle_algorithm = True
    fake = bfl_server.FakeBFL(
        latency=args.latency, concurrency=args.concurrency
    ).start()
    settings.BFL_API_KEY, settings.BFL_API_URL = fake.api_key, fake.base_url
    settings.BFL_ALLOWED_HOSTS = fake.allowed_hosts

    handle, name = tempfile.mkstemp(prefix="engine-bench-worker-", suffix=".log")
    os.close(handle)
    log_path = Path(name)
    env = {
        **os.environ,
        **fake.env(),
        "LOG_LEVEL": "INFO" if args.keep_logs else "WARNING",
    }
    celery = str(Path(sys.executable).parent / "celery")
    common = ["-A", "studio", "worker", "-l", env["LOG_LEVEL"], "--without-gossip",
              "--without-mingle", "--without-heartbeat"]  # fmt: skip
    if args.single:
        commands = {"worker": [celery, *common, "-P", "prefork", "-c", str(args.processes),
                               "-Q", "celery,dispatch,ingest", "-n", f"bench-{prefix}@%h"]}  # fmt: skip
    else:
        commands = {
            "io": [celery, *common, "-P", "threads", "-c", str(args.threads), "-Q", "dispatch",
                   "-n", f"bench-io-{prefix}@%h"],
            "cpu": [celery, *common, "-P", "prefork", "-c", str(args.processes),
                    "-Q", "celery,ingest", "-n", f"bench-cpu-{prefix}@%h"],
        }  # fmt: skip
    if args.worker_command:
        commands = {"worker": args.worker_command.split()}
    workers: dict[str, subprocess.Popen[bytes]] = {}
    with log_path.open("wb") as log:
        for role, command in commands.items():
            workers[role] = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    try:
        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=0.5)) < len(workers):
            if any(w.poll() is not None for w in workers.values()) or (
                time.monotonic() > deadline
            ):
                print(log_path.read_text()[-3000:])
                raise SystemExit("the worker did not start")
        time.sleep(1.0)  # let the pool processes finish importing

        workspace, _ = Workspace.objects.get_or_create(
            slug="bench", defaults={"name": "Benchmark"}
        )
        print(
            f"creating {args.generations} generations ({args.size}×{args.size}, flux-2-pro)...",
            flush=True,
        )
        created = time.monotonic()
        with transaction.atomic():
            ids = [
                generation_create(
                    workspace=workspace,
                    backend="bfl",
                    model="flux-2-pro",
                    prompt=f"benchmark {i}",
                    width=args.size,
                    height=args.size,
                    seed=i,
                    owner_key=f"bench:{prefix}",
                ).pk
                for i in range(args.generations)
            ]
            cpu_before = {r: group_cpu_seconds(w.pid) for r, w in workers.items()}
            # The clock starts when the rows commit (that wakes the dispatcher).
        start = time.monotonic()
        print(f"created in {start - created:.1f} s; running...", flush=True)
        done = 0
        while done < len(ids):
            time.sleep(0.05)
            done = Generation.objects.filter(
                pk__in=ids, state__in=TERMINAL_STATES
            ).count()
            if (
                time.monotonic() - start
                > 20 * args.generations / args.concurrency * args.latency + 120
            ):
                print("giving up: too slow")
                break
        wall = time.monotonic() - start
        cpu_by = {
            r: group_cpu_seconds(w.pid) - cpu_before[r] for r, w in workers.items()
        }
        cpu = sum(cpu_by.values())
    finally:
        for worker in workers.values():
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers.values():
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        fake.stop()

    limit = math.ceil(args.generations / args.concurrency) * args.latency
    states = Counter(
        Generation.objects.filter(pk__in=ids).values_list("state", flat=True)
    )
    counts = fake.counts
    where = where_time_goes(ids, args.latency)
    figures = {
        "generations": args.generations,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "image": f"{args.size}x{args.size}",
        "workers": "single prefork"
        if args.single
        else f"io threads x{args.threads} + cpu prefork x{args.processes}",
        "worker_processes": args.processes,
        "wall_s": round(wall, 2),
        "limit_s": round(limit, 2),
        "ratio": round(wall / limit, 3),
        "worker_cpu_s": round(cpu, 2),
        "cpu_ms_per_generation": round(cpu / args.generations * 1000, 1),
        "cpu_ms_per_generation_by_worker": {
            r: round(c / args.generations * 1000, 1) for r, c in cpu_by.items()
        },
        "states": dict(states),
        "provider_submissions": counts["submissions"],
        "polls_per_generation": round(counts["polls"] / args.generations, 2),
        "rate_limited": counts["rate_limited"],
        "max_active_at_provider": fake.max_active,
        "where_time_goes": where,
    }
    print(
        f"\nN={args.generations} C={args.concurrency} L={args.latency:g}s, workers: {figures['workers']}\n"
        f"wall {wall:.2f} s   limit ceil(N/C)·L {limit:.2f} s   ratio {wall / limit:.3f}\n"
        f"worker CPU {cpu:.2f} s = {cpu / args.generations * 1000:.1f} ms per generation "
        f"({', '.join(f'{r} {c / args.generations * 1000:.1f}' for r, c in cpu_by.items())})\n"
        f"states {dict(states)}; submissions {counts['submissions']}; polls/generation "
        f"{counts['polls'] / args.generations:.2f}; 429s {counts['rate_limited']}; "
        f"max active at provider {fake.max_active}\n"
        f"per generation (medians): slot held {where['slot_held_mean_s']:.3f} s on average for L={args.latency:g} s; "
        f"slot taken -> submitted {where['dispatch_to_submitted_ms']:.0f} ms; provider done -> seen "
        f"{where['ready_seen_after_ms']:.0f} ms (p90 {where['ready_seen_after_p90_ms']:.0f}); "
        f"ingest {where['ingest_ms']:.0f} ms; slot use {where['slot_utilisation']:.1%}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    if args.keep_logs:
        print(f"worker log: {log_path}")
    else:
        log_path.unlink()
    return 0 if states.get("succeeded") == args.generations else 1


if __name__ == "__main__":
    raise SystemExit(main())
