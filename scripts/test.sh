#!/usr/bin/env bash
# `make test`: set up and run the whole suite, lint included, on PostgreSQL and Redis.
#
#   scripts/test.sh [pytest args...]        e.g. scripts/test.sh -k tenancy -x
#
# 1. finds Python >= 3.12 and creates/updates .venv with the dev extra (pip only when pyproject.toml
#    changed since the last install);
# 2. installs Debian's chromium with apt-get when /usr/bin/chromium is missing (browser tests), and
#    tesseract-ocr when `tesseract` is missing (brand checks' OCR), and libimage-exiftool-perl when
#    `exiftool` is missing (asset packs' provenance is read back with it);
# 3. ruff check ., ruff format --check ., lint-imports (the layering contract in pyproject.toml) and
#    mypy with django-stubs ([tool.mypy] in pyproject.toml; strict on generation/backends/);
# 4. pytest on PostgreSQL and Redis: DATABASE_URL / REDIS_URL when set, otherwise throwaway servers
#    started from the local binaries for this run (stopped again on exit, Ctrl-C and failure too);
# 5. tests/ml in .venv-ml (Python 3.11 with the CPU torch wheel): scripts/ml-tests.sh creates or
#    updates it (pip only when the diffusers extra changed) and runs them; without a Python 3.11
#    it says they were skipped and why, except on CI (CI=1), where that is an error.
#
# Exit status: pytest's, then tests/ml's, or lint's when both passed and lint did not.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

TMP=""
PG_BIN=""
PG_DATA=""
REDIS_PIDFILE=""

as_postgres() {
    # initdb and postgres refuse to run as root: run them as the postgres user then.
    if [ "$(id -u)" -eq 0 ]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    trap '' PIPE  # output may be gone (a closed pipe or terminal): stop the servers all the same
    if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        say "Stopping the throwaway PostgreSQL"
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ -n "$REDIS_PIDFILE" ] && [ -f "$REDIS_PIDFILE" ]; then
        local pid
        pid="$(cat "$REDIS_PIDFILE" 2>/dev/null || true)"
        if [ -n "$pid" ]; then
            say "Stopping the throwaway Redis (pid $pid)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    fi
    if [ -n "$TMP" ]; then rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

find_pg_bin() {
    local dir
    if [ -n "${PG_BINDIR:-}" ]; then
        [ -x "$PG_BINDIR/initdb" ] && [ -x "$PG_BINDIR/pg_ctl" ] && echo "$PG_BINDIR"
        return  # PG_BINDIR set: that folder or nothing
    fi
    # Debian/Ubuntu keep the server binaries out of PATH: take the newest installed major version.
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"; return 0
    fi
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir)"
        if [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
    fi
    return 1
}

install_hint() {
    if [ "$(uname -s)" = "Darwin" ]; then
        echo "brew install postgresql redis"
    else
        echo "apt-get install -y postgresql redis-server"
    fi
}

start_postgres() {
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        die "running as root, but there is no postgres user to run a throwaway PostgreSQL: $(install_hint) creates it, or set DATABASE_URL"
    fi
    local dir="$TMP/pg" port attempt
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chmod 755 "$TMP"
        chown postgres "$dir"
        as_postgres test -w "$dir" \
            || die "the postgres user cannot write to $dir (a parent folder is not traversable): set TMPDIR=/tmp or DATABASE_URL"
    fi
    PG_DATA="$dir/data"
    say "Starting a throwaway PostgreSQL ($PG_BIN)"
    as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    for attempt in 1 2 3; do
        port="$(free_port)"
        if as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$dir/server.log" -w -t 30 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null 2>&1; then
            export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
            say "PostgreSQL is up: $DATABASE_URL"
            return 0
        fi
        warn "PostgreSQL did not start on port $port (attempt $attempt)"
    done
    tail -n 20 "$dir/server.log" >&2 || true
    die "could not start a throwaway PostgreSQL; set DATABASE_URL to use a running one"
}

start_redis() {
    local port attempt
    REDIS_PIDFILE="$TMP/redis.pid"
    say "Starting a throwaway Redis ($(command -v redis-server))"
    for attempt in 1 2 3; do
        port="$(free_port)"
        if redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
            --pidfile "$REDIS_PIDFILE" --logfile "$TMP/redis.log" --dir "$TMP" >/dev/null \
            && wait_port 127.0.0.1 "$port" 10; then
            export REDIS_URL="redis://127.0.0.1:$port/0"
            say "Redis is up: $REDIS_URL"
            return 0
        fi
        warn "Redis did not start on port $port (attempt $attempt)"
    done
    tail -n 20 "$TMP/redis.log" >&2 || true
    die "could not start a throwaway Redis; set REDIS_URL to use a running one"
}

# ensure_apt_package PACKAGE WHAT EFFECT CHECK...: when CHECK fails (the tool is missing), install
# Debian's PACKAGE with apt-get (as root, or through a password-less sudo), running apt-get update
# and trying again once if the install fails. Never fatal: without it the tests that need WHAT skip
# (EFFECT says which), and on CI (CI=1) they fail instead.
ensure_apt_package() {
    local package="$1" what="$2" effect="$3"
    shift 3
    "$@" >/dev/null 2>&1 && return 0
    [ "$(uname -s)" = "Linux" ] && command -v apt-get >/dev/null 2>&1 || {
        warn "$what is missing: $effect (install $package)"
        return 0
    }
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo"
        else
            warn "$what is missing and apt-get needs root: run 'sudo apt-get install -y $package' ($effect)"
            return 0
        fi
    fi
    say "$what is missing: ${sudo:+$sudo }apt-get install -y $package"
    if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$package"; then
        say "The install failed: ${sudo:+$sudo }apt-get update, then again"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q \
            && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$package" \
            || warn "could not install $package: $effect"
    fi
}

# Which servers does this run need to start, and are their binaries here?
need_pg=""
need_redis=""
if [ -z "${DATABASE_URL:-}" ]; then need_pg=1; fi
if [ -z "${REDIS_URL:-}" ]; then need_redis=1; fi
missing=""
if [ -n "$need_pg" ]; then PG_BIN="$(find_pg_bin)" || missing="PostgreSQL (initdb, pg_ctl)"; fi
if [ -n "$need_redis" ] && ! command -v redis-server >/dev/null 2>&1; then
    missing="${missing:+$missing and }Redis (redis-server)"
fi
if [ -n "$missing" ]; then
    echo "The tests run on PostgreSQL and Redis; $missing not found. Install them with: $(install_hint)   (or set DATABASE_URL and REDIS_URL to running servers)" >&2
    exit 1
fi

ensure_venv dev
# The browser tests drive /usr/bin/chromium; brand checks read rendered text with tesseract
# (checks/text.py); asset packs' provenance (XMP Digital Source Type) is read back with an
# independent reader, exiftool.
ensure_apt_package chromium /usr/bin/chromium "the browser tests are skipped (on CI they fail)" \
    test -x /usr/bin/chromium
ensure_apt_package tesseract-ocr tesseract "the OCR tests are skipped (on CI they fail)" \
    command -v tesseract
ensure_apt_package libimage-exiftool-perl exiftool "the packs' metadata checks are skipped" \
    command -v exiftool

export STUDIO_TEST_ARTIFACTS="${STUDIO_TEST_ARTIFACTS:-$ROOT/var/test-artifacts}"
mkdir -p "$STUDIO_TEST_ARTIFACTS"
# WhiteNoise warns on every request when STATIC_ROOT does not exist (collectstatic never ran).
mkdir -p "${STATIC_ROOT:-${STUDIO_DATA_DIR:-$ROOT/var}/static}"
export PYTHONUNBUFFERED=1
export PYTHONDONTWRITEBYTECODE=1

TMP="$(mktemp -d "${TMPDIR:-/tmp}/studio-test.XXXXXX")"
if [ -n "$need_pg" ]; then start_postgres; else say "Using the PostgreSQL at DATABASE_URL"; fi
if [ -n "$need_redis" ]; then start_redis; else say "Using the Redis at REDIS_URL"; fi

lint_rc=0
say "ruff check ."
"$VENV/bin/ruff" check . || lint_rc=$?
say "ruff format --check ."
"$VENV/bin/ruff" format --check --output-format concise . || lint_rc=$?
say "lint-imports (layers: studio <- campaigns <- generation <- feature apps)"
"$VENV/bin/lint-imports" --no-cache || lint_rc=$?
# mypy with django-stubs ([tool.mypy] in pyproject.toml; strict on generation/backends/). The plugin
# imports studio.settings, which needs STUDIO_TESTING=1 (or DEBUG=1) to load without a secret.
say "mypy (types, with django-stubs)"
if STUDIO_TESTING=1 "$VENV/bin/mypy"; then say "mypy: ok"; else lint_rc=1; warn "mypy: failed"; fi

say "pytest $*"
test_rc=0
# -rs: one console line per skipped test with its reason (not only in the JUnit report).
"$VPY" -m pytest -rs --junitxml="$STUDIO_TEST_ARTIFACTS/junit.xml" "$@" || test_rc=$?

ml_rc=0
"$ROOT/scripts/ml-tests.sh" || ml_rc=$?

if [ "$test_rc" -ne 0 ]; then
    if [ "$lint_rc" -ne 0 ]; then warn "lint (ruff, lint-imports or mypy) failed too (exit $lint_rc)"; fi
    if [ "$ml_rc" -ne 0 ]; then warn "tests/ml failed too (exit $ml_rc)"; fi
    warn "pytest failed (exit $test_rc)"
    exit "$test_rc"
fi
if [ "$ml_rc" -ne 0 ]; then
    if [ "$lint_rc" -ne 0 ]; then warn "lint (ruff, lint-imports or mypy) failed too (exit $lint_rc)"; fi
    warn "tests/ml failed (exit $ml_rc): scripts/ml-tests.sh runs them alone"
    exit "$ml_rc"
fi
if [ "$lint_rc" -ne 0 ]; then
    warn "Tests passed, but lint found problems (exit $lint_rc): run '.venv/bin/ruff check --fix . && .venv/bin/ruff format .', '.venv/bin/lint-imports' and 'STUDIO_TESTING=1 .venv/bin/mypy'"
    exit "$lint_rc"
fi
say "All green. Artefacts: $STUDIO_TEST_ARTIFACTS"
