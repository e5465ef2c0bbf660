"""gunicorn settings for the studio (scripts/prod.sh, deploy/systemd): `gunicorn -c deploy/gunicorn.conf.py`.

Threads per worker: the API and htmx pages spend most of a request waiting on PostgreSQL and
Redis, so a few threads per process serve more concurrent reviewers than processes alone would,
at the memory of one process. Bind, worker and thread counts come from GUNICORN_* variables
(gunicorn reads GUNICORN_CMD_ARGS itself) or the command line.
"""

from __future__ import annotations

import os

# ASGI with uvicorn workers: an API call with `Prefer: wait=N` is a suspended coroutine, not a
# busy thread (GUNICORN_WORKER_CLASS=gthread with studio.wsgi also works, a thread per waiter).
wsgi_app = os.environ.get("GUNICORN_APP", "studio.asgi:application")
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "uvicorn.workers.UvicornWorker")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Longer than the slowest page (a big ZIP export streams, it does not block the worker).
timeout = 60
graceful_timeout = 30
keepalive = 5
# A worker process is recycled after this many requests (with jitter) to bound slow leaks.
max_requests = 2000
max_requests_jitter = 200
# Request logs come from the studio itself (JSON, with request ids, LOG_FORMAT=json) and the
# request-latency metric; gunicorn's own errors go to stderr.
accesslog = None
errorlog = "-"
# Behind a TLS proxy on this machine: trust its X-Forwarded-* headers (BEHIND_TLS_PROXY=1).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


def child_exit(server, worker):  # noqa: ANN001 - gunicorn's hook signature
    # prometheus-client multiprocess mode: drop the dead worker's live-gauge files.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
