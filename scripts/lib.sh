# Shared helpers for scripts/run.sh and scripts/test.sh (sourced, not executed).
#
# ensure_venv [dev]   create .venv with a Python >= 3.12 (scripts/find-python.sh) and install the
#                     locked dependencies (requirements/runtime.lock, or dev.lock with the dev extra;
#                     hashes required; `make lock` makes them from pyproject.toml). pip runs only when
#                     the lock changed since the last install (stamp file .venv/.studio-install).
# free_port           print a free TCP port on 127.0.0.1.
# say MESSAGE         print a progress line.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STUDIO_VENV:-$ROOT/.venv}"
VPY="$VENV/bin/python"
STAMP="$VENV/.studio-install"

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    _B=$'\033[1m' _Y=$'\033[1;33m' _R=$'\033[1;31m' _N=$'\033[0m'
else
    _B="" _Y="" _R="" _N=""
fi
# (never fail: a closed pipe or terminal must not abort a cleanup under set -e)
say() { printf '%s==> %s%s\n' "$_B" "$*" "$_N" 2>/dev/null || true; }
warn() { printf '%s==> %s%s\n' "$_Y" "$*" "$_N" >&2 2>/dev/null || true; }
die() { printf '%s==> %s%s\n' "$_R" "$*" "$_N" >&2; exit 1; }

_venv_ok() {
    [ -x "$VPY" ] && "$VPY" -c 'import sys; raise SystemExit(sys.version_info < (3, 12))' 2>/dev/null
}

# The hash of pyproject.toml's dependency lists (runtime, plus the extras named): what a lock was made
# from. VPY may be any Python >= 3.11 (tomllib).
deps_hash() {
    "$VPY" - "$ROOT/pyproject.toml" "${1:-}" <<'PY'
import hashlib, json, sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
lists = {"dependencies": sorted(project.get("dependencies", []))}
for extra in filter(None, sys.argv[2].split(",")):
    lists[extra] = sorted(project.get("optional-dependencies", {}).get(extra, []))
print(hashlib.sha256(json.dumps(lists, sort_keys=True).encode()).hexdigest())
PY
}

_file_hash() {
    "$VPY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
}

ensure_venv() {
    local extras="${1:-}"
    if ! _venv_ok; then
        local py
        py="$("$ROOT/scripts/find-python.sh")" || exit 1
        if [ -e "$VENV" ]; then
            warn "$VENV is missing or not Python >= 3.12: recreating it"
            rm -rf "$VENV"
        fi
        say "Creating $VENV with $py ($("$py" -V 2>&1))"
        "$py" -m venv "$VENV" || die "could not create $VENV (on Debian/Ubuntu: apt-get install python3-venv)"
    fi

    local want="$extras" have_hash="" have_extras=""
    if [ -f "$STAMP" ]; then
        read -r have_hash have_extras <"$STAMP" || true
    fi
    # Once the dev extra is installed keep it (a `make run` after `make test` must not drop it).
    if [ "$have_extras" = "dev" ]; then want="dev"; fi
    local lock="$ROOT/requirements/runtime.lock"
    if [ "$want" = "dev" ]; then lock="$ROOT/requirements/dev.lock"; fi
    [ -f "$lock" ] || die "$lock is missing: run 'make lock' (scripts/lock.sh)"
    # The lock must have been made from the dependency lists pyproject.toml has now.
    local made_from
    made_from="$(sed -n 's/^# pyproject-deps-sha256: //p' "$lock")"
    if [ "$made_from" != "$(deps_hash "$want")" ]; then
        die "pyproject.toml's dependencies changed since $lock was made: run 'make lock' and commit the lock"
    fi
    local hash
    hash="$(_file_hash "$lock")"
    if [ "$have_hash" = "$hash" ] && [ "$have_extras" = "$want" ]; then
        return 0  # the lock is unchanged since the last install: no pip at all
    fi
    say "Installing the locked dependencies (${lock#"$ROOT"/}) into $VENV (the first time takes a minute or two)"
    "$VPY" -m pip install --disable-pip-version-check --quiet --progress-bar off \
        --require-hashes --no-deps -r "$lock" \
        || die "pip install failed (see above); is PyPI reachable?"
    printf '%s %s\n' "$hash" "$want" >"$STAMP"
}

free_port() {
    "$VPY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_port HOST PORT SECONDS: wait until something accepts connections there.
wait_port() {
    "$VPY" - "$1" "$2" "$3" <<'PY'
import socket, sys, time
host, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        raise SystemExit(0)
    except OSError:
        time.sleep(0.1)
raise SystemExit(1)
PY
}
