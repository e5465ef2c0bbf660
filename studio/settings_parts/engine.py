"""The generation engine's settings: concurrency caps, polling, retries, recovery, breakers,
routing, and the Celery queues and schedule that carry its work (docs/engine-recovery.md)."""

from __future__ import annotations

import os

from studio.settings_parts.env import env_float, env_int

# Active tasks each provider account may have at once, shared by every worker through Redis
# (generation/caps.py). BFL allows 24 per account; a ProviderAccount.max_concurrency overrides.
ENGINE_CONCURRENCY = {
    "default": env_int("ENGINE_CONCURRENCY_DEFAULT", 8),
    "bfl": env_int("ENGINE_CONCURRENCY_BFL", 24),
    "preview": env_int("ENGINE_CONCURRENCY_PREVIEW", 4),
    # In-process FLUX.2 on the GPU workers' own GPUs: one job per GPU, so the number of GPU
    # workers (`celery -A studio worker -Q gpu -c 1` each).
    "diffusers": env_int("ENGINE_CONCURRENCY_DIFFUSERS", 1),
}
ENGINE_REDIS_PREFIX = os.environ.get("ENGINE_REDIS_PREFIX", "engine")
# Polling (seconds): first poll after ENGINE_POLL_INITIAL without a latency hint, then each wait
# grows with the time already waited, clamped to MIN..MAX; with a hint (provider progress or the
# observed duration of recent generations) polls aim at the expected finish (AIM × estimate).
ENGINE_POLL_INITIAL = env_float("ENGINE_POLL_INITIAL", 0.5)
ENGINE_POLL_MIN = env_float("ENGINE_POLL_MIN", 0.1)
ENGINE_POLL_MAX = env_float("ENGINE_POLL_MAX", 8.0)
ENGINE_POLL_AIM = env_float("ENGINE_POLL_AIM", 0.95)
# The learned provider duration (engine.record_duration) stays within these bounds (seconds).
ENGINE_ESTIMATE_MIN = env_float("ENGINE_ESTIMATE_MIN", 0.1)
ENGINE_ESTIMATE_MAX = env_float("ENGINE_ESTIMATE_MAX", 300.0)
# Retries of network errors, timeouts and 5xx: full-jitter exponential backoff from BASE up to
# CAP seconds, at most MAX_RETRIES times, then the generation fails with the last error. 429s
# wait out Retry-After (at most RETRY_AFTER_MAX, below the broker's visibility_timeout so a waiting
# retry is not redelivered as a duplicate) and have their own budget, MAX_RATE_LIMITED.
ENGINE_RETRY_BASE = env_float("ENGINE_RETRY_BASE", 1.0)
ENGINE_RETRY_CAP = env_float("ENGINE_RETRY_CAP", 60.0)
ENGINE_MAX_RETRIES = env_int("ENGINE_MAX_RETRIES", 5)
ENGINE_MAX_RATE_LIMITED = env_int("ENGINE_MAX_RATE_LIMITED", 50)
ENGINE_RETRY_AFTER_MAX = env_float("ENGINE_RETRY_AFTER_MAX", 120.0)
# Recovery after a crash. A submit or ingest claims its row for CLAIM_TTL (longer than any
# HTTP call's timeout, so a slow call is never run twice); the sweep runs every SWEEP_INTERVAL
# and re-drives a row whose next step is STUCK_AFTER overdue. STUCK_AFTER sits well above the
# normal lag between a countdown and its task starting (broker backlog: seconds), so healthy work
# is never re-driven, and far below Redis' redelivery (visibility_timeout, 300 s), so a SIGKILLed
# worker's generations resume within about STUCK_AFTER + SWEEP_INTERVAL (+ CLAIM_TTL for a step
# that was mid-call). A concurrency lease outlives that window (LEASE_TTL), so a crash never
# frees a slot the provider still counts, yet a leaked lease frees itself.
ENGINE_CLAIM_TTL = env_float("ENGINE_CLAIM_TTL", 60.0)
ENGINE_SWEEP_INTERVAL = env_float("ENGINE_SWEEP_INTERVAL", 15.0)
ENGINE_STUCK_AFTER = env_float("ENGINE_STUCK_AFTER", 30.0)
ENGINE_LEASE_TTL = env_float("ENGINE_LEASE_TTL", 180.0)
ENGINE_CAP_RECHECK = env_float("ENGINE_CAP_RECHECK", 2.0)
# A worker that starts sweeps every this many seconds, re-driving work this overdue, until its
# dead predecessor's polls are due and claims released, instead of waiting for STUCK_AFTER: a
# restarted worker resumes its predecessor's generations in seconds (docs/engine-recovery.md).
ENGINE_STARTUP_STUCK_AFTER = env_float("ENGINE_STARTUP_STUCK_AFTER", 1.0)
# A process holding a submit/ingest claim keeps a liveness key with this TTL (s) in Redis; once
# it lapses the holder counts as dead and the sweep releases its claims (generation/claims.py).
ENGINE_HOLDER_ALIVE_TTL = env_float("ENGINE_HOLDER_ALIVE_TTL", 6.0)
# Deadlines: at the provider (then `expired`), and waiting in the queue.
ENGINE_PROVIDER_DEADLINE = env_float("ENGINE_PROVIDER_DEADLINE", 900.0)
ENGINE_QUEUE_DEADLINE = env_float("ENGINE_QUEUE_DEADLINE", 86400.0)
ENGINE_THUMBNAIL_SIZE = env_int("ENGINE_THUMBNAIL_SIZE", 512)
ENGINE_MAX_RESULT_PIXELS = env_int("ENGINE_MAX_RESULT_PIXELS", 64_000_000)
# Circuit breakers, one per backend + credentials (generation/breaker.py): open after THRESHOLD
# failures within WINDOW seconds, one probe after COOLDOWN (its lease PROBE_TTL), closed by a
# finished image; generations held by an open breaker re-check every RECHECK seconds.
ENGINE_BREAKER_THRESHOLD = env_int("ENGINE_BREAKER_THRESHOLD", 5)
ENGINE_BREAKER_WINDOW = env_float("ENGINE_BREAKER_WINDOW", 60.0)
ENGINE_BREAKER_COOLDOWN = env_float("ENGINE_BREAKER_COOLDOWN", 30.0)
ENGINE_BREAKER_PROBE_TTL = env_float("ENGINE_BREAKER_PROBE_TTL", 60.0)
ENGINE_BREAKER_RECHECK = env_float("ENGINE_BREAKER_RECHECK", 5.0)
# With a webhook expected (STUDIO_PUBLIC_URL set), the first poll waits at most this long.
ENGINE_WEBHOOK_POLL_DELAY = env_float("ENGINE_WEBHOOK_POLL_DELAY", 30.0)
# Routing's "fastest": median of the last SAMPLE succeeded generations, cached TTL seconds.
ROUTING_SPEED_SAMPLE = env_int("ROUTING_SPEED_SAMPLE", 20)
ROUTING_SPEED_TTL = env_int("ROUTING_SPEED_TTL", 60)

# Queues by kind of work: "dispatch" (submit/poll: short I/O, many in flight), "ingest"
# (download, Pillow, storage: CPU), "gpu" (the diffusers backend's submits, which run the
# pipeline in-process: generation.tasks.route_by_backend); later "export".
# Workers (README, deploy/systemd): the I/O worker -Q dispatch -P threads -c 32 (waiting on a
# provider holds a thread, not a process), the CPU worker -Q celery,ingest,export -P prefork; on each GPU
# machine also -Q gpu -c 1 (one per GPU).
CELERY_TASK_ROUTES = (
    "generation.tasks.route_by_backend",
    {
        "generation.tasks.generation_ingest": {"queue": "ingest"},
        # Brand checks are CPU work too; they run after the asset is stored, never before.
        "checks.tasks.*": {"queue": "ingest"},
        "exports.tasks.export_pack_build_task": {"queue": "export"},
        # Import checks and cleans images (CPU); URL fetches are short I/O next to ingest.
        "catalog.tasks.*": {"queue": "ingest"},
        "generation.tasks.*": {"queue": "dispatch"},
    },
)
CELERY_BEAT_SCHEDULE = {
    "generation-sweep": {
        "task": "generation.tasks.generation_sweep",
        "schedule": ENGINE_SWEEP_INTERVAL,
        # A sweep not started by the next one is pointless: do not let them pile up.
        "options": {"expires": ENGINE_SWEEP_INTERVAL},
    },
    "export-packs-sweep": {
        "task": "exports.tasks.export_packs_sweep_task",
        "schedule": 600.0,
        "options": {"expires": 600.0},
    },
}
# Celery's Django fixup closes the database connection before and after every task unless this is
# set: a new PostgreSQL connection per task (~5 ms and a server process fork) would cost more than
# most of our tasks. With it, a worker process keeps its connection for up to this many tasks
# (generation/tasks.py drops a connection that broke meanwhile).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 200)
