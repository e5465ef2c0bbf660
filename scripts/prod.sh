#!/usr/bin/env bash
# `make prod`: the production topology on one machine, in one command (README "Deployment").
#
#   web         gunicorn (uvicorn workers, ASGI; deploy/gunicorn.conf.py), pooled DB connections, DEBUG=0
#   I/O worker  celery -A studio worker -Q dispatch -P threads -c 16   (submit, poll: waiting on HTTP)
#   CPU worker  celery -A studio worker -Q celery,ingest,export -c 2          (download, Pillow, storage)
#   beat        celery -A studio beat                                   (exactly one per installation)
#
# On PostgreSQL (DATABASE_URL) and Redis (REDIS_URL), both required, and S3: AWS_STORAGE_BUCKET_NAME
# with its endpoint and credentials, or, when no bucket is given, a local S3-protocol server
# (moto_server, in memory: development and the topology test only) started here.
# Every process logs JSON lines (LOG_FORMAT=json) to $PROD_DIR/logs/<process>.log; the processes
# share one prometheus-client multiprocess folder, so /metrics on the web port shows them all.
# Ctrl-C (or SIGTERM) stops everything this script started, by process group.
#
# Environment: PORT (8000), STUDIO_HOST (127.0.0.1), PROD_DIR (var/prod), WEB_WORKERS (2),
# SECRET_KEY (else one kept in $PROD_DIR/secret_key), and everything in .env.example.
# This machine speaks plain HTTP unless PROD_TLS=1 (a TLS proxy in front: then the HTTPS redirect,
# HSTS and secure cookies stay on, as in .env.example).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

[ -n "${DATABASE_URL:-}" ] || die "make prod needs DATABASE_URL (PostgreSQL), e.g. postgres://postgres@127.0.0.1:5432/studio"
[ -n "${REDIS_URL:-}" ] || die "make prod needs REDIS_URL, e.g. redis://127.0.0.1:6379/0"

HOST="${STUDIO_HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
PROD_DIR="${PROD_DIR:-$ROOT/var/prod}"
LOGS="$PROD_DIR/logs"
mkdir -p "$LOGS" "$PROD_DIR/static"
[ -x "$VPY" ] || ensure_venv
BIN="$(dirname "$VPY")"

export DEBUG=0 LOG_FORMAT="${LOG_FORMAT:-json}" PYTHONUNBUFFERED=1
export STATIC_ROOT="${STATIC_ROOT:-$PROD_DIR/static}"
export ALLOWED_HOSTS="${ALLOWED_HOSTS:-localhost,127.0.0.1}"
if [ -z "${SECRET_KEY:-}${SECRET_KEY_FILE:-}" ]; then
    [ -s "$PROD_DIR/secret_key" ] || "$VPY" -c 'import secrets; print(secrets.token_urlsafe(64))' >"$PROD_DIR/secret_key"
    export SECRET_KEY_FILE="$PROD_DIR/secret_key"
fi
if [ -z "${PROD_TLS:-}" ]; then
    export SECURE_SSL_REDIRECT=0 SESSION_COOKIE_SECURE=0 CSRF_COOKIE_SECURE=0 SECURE_HSTS_SECONDS=0
fi
# One multiprocess folder for every process of this machine, emptied: stale files of dead
# processes from an earlier run would add their counts to this one's.
export PROMETHEUS_MULTIPROC_DIR="$PROD_DIR/metrics"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

PIDS=()
cleanup() {
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() {  # start NAME COMMAND...: its own process group, output to $LOGS/NAME.log
    local name="$1"; shift
    setsid "$@" >>"$LOGS/$name.log" 2>&1 &
    PIDS+=("$!")
    printf '%s\n' "$!" >"$PROD_DIR/$name.pid"
}

if [ -z "${AWS_STORAGE_BUCKET_NAME:-}" ]; then
    S3_PORT="$(free_port)"
    say "No AWS_STORAGE_BUCKET_NAME: starting a local S3-protocol server (moto_server) on port $S3_PORT"
    start s3 "$BIN/moto_server" -H 127.0.0.1 -p "$S3_PORT"
    export AWS_STORAGE_BUCKET_NAME=studio-media AWS_S3_ENDPOINT_URL="http://127.0.0.1:$S3_PORT"
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_S3_REGION_NAME=us-east-1 AWS_S3_ADDRESSING_STYLE=path
    "$VPY" - <<'PY'
import os, time, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"], region_name="us-east-1")
for _ in range(100):
    try:
        s3.create_bucket(Bucket=os.environ["AWS_STORAGE_BUCKET_NAME"]); break
    except Exception:
        time.sleep(0.2)
else:
    raise SystemExit("moto_server did not answer")
PY
fi

say "Migrating and collecting static files"
"$VPY" manage.py migrate --noinput >"$LOGS/migrate.log" 2>&1 || { tail -20 "$LOGS/migrate.log"; die "migrate failed"; }
"$VPY" manage.py collectstatic --noinput >"$LOGS/collectstatic.log" 2>&1 || die "collectstatic failed"

say "Starting web, I/O worker, CPU worker and beat (logs: $LOGS)"
GUNICORN_BIND="$HOST:$PORT" GUNICORN_WORKERS="${WEB_WORKERS:-2}" DB_POOL_MAX_SIZE="${DB_POOL_MAX_SIZE:-20}" \
    start web "$BIN/gunicorn" -c deploy/gunicorn.conf.py
start worker-io "$BIN/celery" -A studio worker -Q dispatch -P threads -c 16 -n "io-$$@%h" -l INFO \
    --without-gossip --without-mingle
start worker-cpu "$BIN/celery" -A studio worker -Q celery,ingest,export -c 2 -n "cpu-$$@%h" -l INFO \
    --without-gossip --without-mingle
start beat "$BIN/celery" -A studio beat -l INFO -s "$PROD_DIR/beat-schedule"

for _ in $(seq 150); do
    if "$VPY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://$HOST:$PORT/readyz" 2>/dev/null; then
        say "Studio (production topology) is ready: http://$HOST:$PORT/   health: /healthz /readyz   metrics: /metrics"
        printf 'ready\n' >"$PROD_DIR/ready"
        break
    fi
    sleep 0.2
done
[ -f "$PROD_DIR/ready" ] || warn "/readyz did not answer 200 yet: see $LOGS/web.log and curl http://$HOST:$PORT/readyz"

# Run until a process dies or we are stopped; then stop the rest.
wait -n "${PIDS[@]}" || true
warn "a process of the topology exited; stopping the others (see $LOGS)"
exit 1
