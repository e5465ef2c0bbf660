#!/usr/bin/env bash
# Print the absolute path of a Python >= 3.12 interpreter, or explain in one line how to get one.
#
# Usage:  PY=$(scripts/find-python.sh) || exit 1
#         scripts/find-python.sh --check     (exit 0 when one is found, print it to stderr)
#
# Order: $STUDIO_PYTHON (if set), python3.13, python3.12, the pyenv interpreters
# (PYENV_VERSION=3.13.0 python3.13, PYENV_VERSION=3.12.1 python3.12, then any
# $PYENV_ROOT/versions/3.1[2-9]*/bin/python3, newest first), python3.14+, and plain python3 only
# when it is >= 3.12. The path printed is the real interpreter (sys.executable), so it keeps
# working without PYENV_VERSION set.
set -u

MIN_MINOR=12

# try CMD... : run the candidate; print its sys.executable when it is CPython >= 3.12.
try() {
    local out
    out=$("$@" -c "import sys
if sys.version_info >= (3, $MIN_MINOR):
    print(sys.executable)
else:
    raise SystemExit(1)" 2>/dev/null) || return 1
    [ -n "$out" ] && [ -x "$out" ] || return 1
    printf '%s\n' "$out"
}

found=""
candidates() {
    if [ -n "${STUDIO_PYTHON:-}" ]; then
        try "$STUDIO_PYTHON" && return 0
        echo "find-python: STUDIO_PYTHON=$STUDIO_PYTHON is not a Python >= 3.$MIN_MINOR; looking further" >&2
    fi
    try python3.13 && return 0
    try python3.12 && return 0
    try env PYENV_VERSION=3.13.0 python3.13 && return 0
    try env PYENV_VERSION=3.12.1 python3.12 && return 0
    local root="${PYENV_ROOT:-$HOME/.pyenv}" dirs d
    # Newest first: sort the version folders by version number, descending.
    dirs=$(ls -d "$root"/versions/3.1[2-9]* "$root"/versions/3.[2-9][0-9]* 2>/dev/null | sort -V -r)
    for d in $dirs; do
        try "$d/bin/python3" && return 0
    done
    for minor in 19 18 17 16 15 14; do
        try "python3.$minor" && return 0
    done
    try python3 && return 0
    return 1
}

if found=$(candidates); then
    found=$(printf '%s\n' "$found" | head -n 1)
    if [ "${1:-}" = "--check" ]; then
        echo "$found" >&2
    else
        printf '%s\n' "$found"
    fi
    exit 0
fi

have=$(command -v python3 >/dev/null 2>&1 && python3 -V 2>&1 | cut -d' ' -f2)
echo "No Python >= 3.$MIN_MINOR found (python3 is ${have:-missing}): install one (pyenv install 3.13, brew install python@3.13, or your distribution's python3.12+ package), or set STUDIO_PYTHON=/path/to/python3.12+" >&2
exit 1
