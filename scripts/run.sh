#!/usr/bin/env bash
# `make run`: the studio for development, from a fresh clone, in one command.
#
# 1. finds Python >= 3.12 and creates/updates .venv (pip only when pyproject.toml changed);
# 2. creates the data folders (var/: SQLite database, media, the filesystem Celery broker);
# 3. migrates and loads the demo data (idempotent; prints the login);
# 4. starts and supervises four processes: the web server (runserver, DEBUG=1), the I/O worker
#    (queue dispatch: submit, poll, download; a threads pool, waiting on a provider costs a thread,
#    not a process), the CPU worker (queues celery, ingest, export: decode, thumbnails, asset packs; prefork) and beat.
#    A worker or beat that dies is restarted (after 1 s, doubling up to 30 s while it keeps
#    dying); the web server is never stopped because of them. Ctrl-C or SIGTERM stops all four
#    (warm shutdown, 15 s, then killed) and exits 0; if the web server itself exits, the rest are
#    stopped and the script exits 1.
#
# Environment: PORT (8000), STUDIO_HOST (127.0.0.1), WORKER_IO_THREADS (32 with PostgreSQL, 4 on
# SQLite, whose single writer would only make more threads wait), WORKER_CPU_PROCESSES (2), and everything in .env.example; with
# DATABASE_URL and REDIS_URL set the studio uses PostgreSQL and Redis instead of SQLite and the
# filesystem broker.   scripts/run.sh --setup-only  stops after step 3.
set -euo pipefail

# Ctrl-C in a terminal reaches the whole foreground process group, make included, and make then
# reports "make: *** [run] Interrupt" and fails whatever this script exits with. So, on a terminal,
# the script runs itself again as a foreground job of its own (job control puts it in its own process
# group and hands it the terminal): Ctrl-C reaches only that job, which stops everything and exits 0,
# and make sees a clean exit.
if [ -z "${STUDIO_RUN_FOREGROUND:-}" ] && [ -t 0 ] && [ "${1:-}" != "--setup-only" ]; then
    set -m
    STUDIO_RUN_FOREGROUND=1 "$BASH" "$0" "$@" &
    fg %1 >/dev/null
    exit $?
fi

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
# Quiet unless something goes wrong: one line per migration would push the banner off screen.
"$VPY" manage.py migrate --noinput --verbosity 0
say "Loading the demo data"
"$VPY" manage.py load_demo
if [ -n "$SETUP_ONLY" ]; then exit 0; fi

if "$VPY" -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()' \
    "$HOST" "$PORT" 2>/dev/null; then
    die "Port $PORT on $HOST is already in use: stop what runs there, or choose another port: PORT=8001 make run"
fi

# The worker split (the same commands as the production section of the README and
# deploy/systemd/): I/O-bound steps on threads, CPU-bound ones in processes.
if [ -n "${DATABASE_URL:-}" ]; then io_default=32; else io_default=4; fi
IO_THREADS="${WORKER_IO_THREADS:-$io_default}"
CPU_PROCS="${WORKER_CPU_PROCESSES:-2}"
# `celery -q`: no banner per worker (this script prints one for all); beat logs warnings only
# (its "Sending due task" lines every few seconds are routine); the workers' routine sweep lines are
# filtered in studio/log_filters.py.
CELERY="$VENV/bin/celery"
# Development containers often run as root; Celery then warns at every worker start. The production
# units (deploy/systemd/) run as their own user, where the warning would matter, and keep it.
if [ "$(id -u)" = 0 ]; then export PYTHONWARNINGS="ignore:You're running the worker with superuser privileges"; fi
# Django's "This is a development server" notice: the banner below says so already.
export DJANGO_RUNSERVER_HIDE_WARNING=true
NAMES=(web worker-io worker-cpu beat)
declare -A PID=() STARTED=() DELAY=()

start() {
    # Each process in its own process group (job control on only while starting it), so one
    # kill reaches all of its processes and Ctrl-C reaches only this script.
    set -m
    case "$1" in
        web) "$VPY" manage.py runserver "$HOST:$PORT" & ;;
        worker-io) "$CELERY" -A studio -q worker -Q dispatch -P threads -c "$IO_THREADS" -l INFO -n "io@%h" & ;;
        worker-cpu) "$CELERY" -A studio -q worker -Q celery,ingest,export -P prefork -c "$CPU_PROCS" -l INFO -n "cpu@%h" & ;;
        # Beat's schedule only remembers when the sweep last ran; a copy left by a killed run can
        # fail to open (Python 3.13's sqlite-backed shelve), so every start begins with a fresh one.
        beat) rm -f "$DATA_DIR"/celerybeat-schedule*
              "$CELERY" -A studio -q beat -l WARNING -s "$DATA_DIR/celerybeat-schedule" & ;;
    esac
    PID[$1]=$!
    set +m
    STARTED[$1]=$SECONDS
}

alive() { [ -n "${PID[$1]:-}" ] && kill -0 "${PID[$1]}" 2>/dev/null; }

any_alive() {
    local name
    for name in "${NAMES[@]}"; do alive "$name" && return 0; done
    return 1
}

signal_group() {
    # signal_group NAME SIGNAL: the whole process group (runserver's reloader child, a pool).
    [ -n "${PID[$1]:-}" ] && kill "-$2" -- "-${PID[$1]}" 2>/dev/null || true
}

STOPPING=""
cleanup() {
    local rc=$?
    set +e
    STOPPING=1
    trap - EXIT HUP
    trap '' PIPE  # output may be gone (a closed pipe or terminal): stop the servers all the same
    # A second Ctrl-C does not wait for the warm shutdown.
    trap 'for n in "${NAMES[@]}"; do signal_group "$n" KILL; done; exit 130' INT TERM
    if any_alive; then
        echo
        say "Stopping the web server, the workers and beat (Ctrl-C again to kill them at once)"
        signal_group web TERM
        # Celery's main processes only: a warm shutdown lets the pools finish their current
        # tasks (TERM to the whole group would kill prefork children mid-task).
        local name
        for name in worker-io worker-cpu beat; do
            alive "$name" && kill -TERM "${PID[$name]}" 2>/dev/null
        done
        for _ in $(seq 150); do
            any_alive || break
            sleep 0.1
        done
        for name in "${NAMES[@]}"; do signal_group "$name" KILL; done
    fi
    wait 2>/dev/null || true
    say "Stopped."
    exit "$rc"
}
trap cleanup EXIT
# Ctrl-C and SIGTERM are the normal way to stop: a clean stop exits 0.
trap 'exit 0' INT TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

for name in "${NAMES[@]}"; do start "$name"; done

if ! wait_port "$HOST" "$PORT" 60; then
    die "The web server did not come up on $HOST:$PORT (see the output above)"
fi

url_host="$HOST"
case "$HOST" in 0.0.0.0 | ::) url_host="127.0.0.1" ;; esac
cat <<BANNER

  ==============================================================================
    Studio is running:  http://$url_host:$PORT/
    Log in as:          demo / studio-demo   (workspace admin; dev-only demo login)
    Other demo users:   dana (editor), alex (approver), vera (viewer), same password
    Database:           $db
    Workers:            I/O (queue dispatch, $IO_THREADS threads), CPU (queues celery, ingest, export,
                        $CPU_PROCS processes) and beat; broker $broker; restarted if they die
    Stop:               Ctrl-C (stops everything)
  ==============================================================================

BANNER

# Supervise: restart a worker or beat that exits; the web server's exit ends the run.
while :; do
    sleep 1
    if ! alive web; then
        warn "The web server exited: stopping the workers"
        exit 1
    fi
    for name in worker-io worker-cpu beat; do
        alive "$name" && continue
        code=0
        wait "${PID[$name]}" 2>/dev/null || code=$?
        # Kept up a minute: start over from a 1 s delay; else double it (at most 30 s).
        if (( SECONDS - STARTED[$name] > 60 )); then DELAY[$name]=1; fi
        delay=${DELAY[$name]:-1}
        warn "The $name process exited (status $code): restarting it in $delay s"
        sleep "$delay"
        DELAY[$name]=$(( delay * 2 > 30 ? 30 : delay * 2 ))
        [ -z "$STOPPING" ] && start "$name"
    done
done
