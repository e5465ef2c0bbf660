#!/usr/bin/env bash
# `make run`: the studio for development, from a fresh clone, in one command.
#
# 1. finds Python >= 3.12 and creates/updates .venv (pip only when pyproject.toml changed);
# 2. creates the data folders (var/: SQLite database, media, the filesystem Celery broker);
# 3. migrates and loads the demo data (idempotent; prints the login);
# 4. starts the web server (runserver, DEBUG=1) and a Celery worker with embedded beat, prints the
#    URL and the login, and stops both on Ctrl-C.
#
# Environment: PORT (8000), STUDIO_HOST (127.0.0.1), and everything in .env.example; with
# DATABASE_URL and REDIS_URL set the studio uses PostgreSQL and Redis instead of SQLite and the
# filesystem broker.   scripts/run.sh --setup-only  stops after step 3.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

SETUP_ONLY=""
if [ "${1:-}" = "--setup-only" ]; then SETUP_ONLY=1; fi

HOST="${STUDIO_HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
# `make run` is the development server: DEBUG on (production: gunicorn, see the README).
export DEBUG=1
DATA_DIR="${STUDIO_DATA_DIR:-$ROOT/var}"
case "$PORT" in '' | *[!0-9]*) die "PORT must be a number (got '$PORT')" ;; esac

ensure_venv

# The filesystem broker needs its folders before the worker starts.
mkdir -p "$DATA_DIR/celery/queue" "$DATA_DIR/celery/processed" "$DATA_DIR/celery/control" \
    "${MEDIA_ROOT:-$DATA_DIR/media}" "${STATIC_ROOT:-$DATA_DIR/static}"

if [ -n "${DATABASE_URL:-}" ]; then db="PostgreSQL (DATABASE_URL)"; else db="SQLite ($DATA_DIR/studio.sqlite3)"; fi
if [ -n "${CELERY_BROKER_URL:-}${REDIS_URL:-}" ]; then broker="Redis (REDIS_URL)"; else broker="filesystem ($DATA_DIR/celery)"; fi

say "Migrating the database: $db"
"$VPY" manage.py migrate --noinput
say "Loading the demo data"
"$VPY" manage.py load_demo
if [ -n "$SETUP_ONLY" ]; then exit 0; fi

if "$VPY" -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()' \
    "$HOST" "$PORT" 2>/dev/null; then
    die "Port $PORT on $HOST is already in use: stop what runs there, or choose another port: PORT=8001 make run"
fi

WEB_PID=""
WORKER_PID=""

stop_group() {
    # stop_group PID SIGNAL: signal the whole process group (runserver's reloader child, the
    # worker's pool processes and embedded beat).
    [ -n "$1" ] && kill "-$2" -- "-$1" 2>/dev/null || true
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

cleanup() {
    local rc=$?
    set +e
    trap - EXIT HUP
    trap '' PIPE  # output may be gone (a closed pipe or terminal): stop the servers all the same
    # A second Ctrl-C does not wait for the warm shutdown.
    trap 'stop_group "$WEB_PID" KILL; stop_group "$WORKER_PID" KILL; exit 130' INT TERM
    if alive "$WEB_PID" || alive "$WORKER_PID"; then
        echo
        say "Stopping the web server and the worker (Ctrl-C again to kill them at once)"
        stop_group "$WEB_PID" TERM
        # The worker's main process only: a warm shutdown lets its pool finish the current tasks
        # (TERM to the whole group would kill the pool children mid-task).
        if alive "$WORKER_PID"; then kill -TERM "$WORKER_PID" 2>/dev/null || true; fi
        # Give them 15 s, then kill whatever is left of both groups.
        for _ in $(seq 150); do
            alive "$WEB_PID" || alive "$WORKER_PID" || break
            sleep 0.1
        done
        stop_group "$WEB_PID" KILL
        stop_group "$WORKER_PID" KILL
    fi
    wait 2>/dev/null || true
    say "Stopped."
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

# Beat's schedule only remembers when the periodic sweep last ran; a copy left by a killed run can
# fail to open (Python 3.13's sqlite-backed shelve), so every start begins with a fresh one.
rm -f "$DATA_DIR"/celerybeat-schedule*

# Each server in its own process group (job control on only while starting them), so that one
# kill reaches all of its processes, and Ctrl-C reaches this script, which stops them in order.
set -m
"$VPY" manage.py runserver "$HOST:$PORT" &
WEB_PID=$!
"$VENV/bin/celery" -A studio worker -Q celery,dispatch,ingest,export -c 2 -B -l INFO \
    -s "$DATA_DIR/celerybeat-schedule" &
WORKER_PID=$!
set +m

if ! wait_port "$HOST" "$PORT" 60; then
    die "The web server did not come up on $HOST:$PORT (see the output above)"
fi
alive "$WORKER_PID" || die "The Celery worker did not start (see the output above)"

url_host="$HOST"
case "$HOST" in 0.0.0.0 | ::) url_host="127.0.0.1" ;; esac
cat <<BANNER

  ==============================================================================
    Studio is running:  http://$url_host:$PORT/
    Log in as:          demo / studio-demo   (workspace admin; dev-only demo login)
    Other demo users:   dana (editor), alex (approver), vera (viewer), same password
    Database:           $db
    Worker:             Celery (queues celery, dispatch, ingest) + beat, broker $broker
    Stop:               Ctrl-C (stops the web server and the worker)
  ==============================================================================

BANNER

# Run until Ctrl-C, or until one of the two exits on its own (then stop the other).
while alive "$WEB_PID" && alive "$WORKER_PID"; do
    sleep 1
done
if ! alive "$WEB_PID"; then warn "The web server exited"; else warn "The Celery worker exited"; fi
exit 1
