#!/usr/bin/env bash
# tests/ml: the diffusers backend's real pipeline code on tiny FLUX.2 pipelines, on the CPU.
#
#   scripts/ml-tests.sh [pytest args...]        (scripts/test.sh runs it after the main suite)
#
# The studio needs Python >= 3.12, but the CPU build of torch on this machine's disk is a
# Python 3.11 wheel (torch 2.13.0 in /opt/wheels); from PyPI, any other Python would get a CUDA build
# of several GB. So these tests run in their own venv, .venv-ml, made with a Python 3.11:
#
# 1. finds a Python 3.11: $STUDIO_ML_PYTHON, python3.11, then $PYENV_ROOT/versions/3.11.*;
# 2. creates/updates .venv-ml with the `diffusers` extra of pyproject.toml (torch pinned to 2.13.0,
#    taken from $STUDIO_ML_WHEELS, default /opt/wheels, or from $STUDIO_ML_TORCH_INDEX, e.g.
#    https://download.pytorch.org/whl/cpu), plus pillow and pytest; pip runs only when that list
#    or the interpreter changed (stamp .venv-ml/.studio-ml-install);
# 3. .venv-ml/bin/pytest -q tests/ml (its own pytest.ini: no Django, nothing downloaded).
#
# Without a Python 3.11 or a CPU torch wheel this prints that the tests were skipped and why, and
# exits 0, except on CI (CI=1, set by .ci/run), where the step is mandatory and that is an error.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ML_VENV="${STUDIO_ML_VENV:-$ROOT/.venv-ml}"
ML_PY="$ML_VENV/bin/python"
ML_STAMP="$ML_VENV/.studio-ml-install"
WHEELS="${STUDIO_ML_WHEELS:-/opt/wheels}"
TORCH="2.13.0"

skipped() {
    if [ -n "${CI:-}" ]; then
        die "tests/ml could not run, and on CI it must: $*"
    fi
    warn "tests/ml skipped: $* (CI makes this an error)"
    exit 0
}

# is311 CMD...: print the real interpreter path when CMD is a CPython 3.11.
is311() {
    local out
    out=$("$@" -c 'import sys
if sys.version_info[:2] != (3, 11):
    raise SystemExit(1)
print(sys.executable)' 2>/dev/null) || return 1
    [ -n "$out" ] && [ -x "$out" ] && printf '%s\n' "$out"
}

find_python311() {
    local d
    if [ -n "${STUDIO_ML_PYTHON:-}" ]; then
        is311 "$STUDIO_ML_PYTHON" && return 0
        warn "STUDIO_ML_PYTHON=$STUDIO_ML_PYTHON is not a Python 3.11; looking further"
    fi
    is311 python3.11 && return 0
    for d in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11* 2>/dev/null | sort -V -r); do
        is311 "$d/bin/python3" && return 0
    done
    is311 python3 && return 0
    return 1
}

# The requirement lines: the diffusers extra (torch pinned to the CPU wheel), pillow, pytest.
requirements() {
    "$1" - "$ROOT/pyproject.toml" "$TORCH" <<'PY'
import re, sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
extras = project["optional-dependencies"]
def name(req):
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower()
lines = [f"torch=={sys.argv[2]}" if name(r) == "torch" else r for r in extras["diffusers"]]
lines += [r for r in project["dependencies"] if name(r) == "pillow"]
lines += [r for r in extras.get("dev", []) if name(r) == "pytest"]
print("\n".join(lines))
PY
}

ensure_ml_venv() {
    local py reqs want have="" find_args=()
    py="$(find_python311)" || skipped "no Python 3.11 found (set STUDIO_ML_PYTHON, or pyenv install 3.11)"
    reqs="$(requirements "$py")" || die "could not read the diffusers extra from pyproject.toml"
    want="$(printf '%s\n%s\n' "$py" "$reqs" | "$py" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
    if [ -x "$ML_PY" ] && [ -f "$ML_STAMP" ]; then read -r have <"$ML_STAMP" || true; fi
    if [ "$have" = "$want" ]; then
        say "$ML_VENV is up to date ($("$ML_PY" -V 2>&1), torch $TORCH CPU)"
        return 0
    fi
    local wheel
    wheel="$(ls "$WHEELS"/torch-"$TORCH"*-cp311-*.whl 2>/dev/null | head -n 1 || true)"
    if [ -n "$wheel" ]; then
        find_args=(--find-links "$WHEELS")
    elif [ -n "${STUDIO_ML_TORCH_INDEX:-}" ]; then
        find_args=(--extra-index-url "$STUDIO_ML_TORCH_INDEX")
    else
        skipped "no CPU torch $TORCH wheel for Python 3.11 in $WHEELS, and from PyPI pip would fetch a multi-GB CUDA build (set STUDIO_ML_WHEELS to a folder with one, or STUDIO_ML_TORCH_INDEX=https://download.pytorch.org/whl/cpu)"
    fi
    if ! is311 "$ML_PY" >/dev/null; then
        rm -rf "$ML_VENV"
        say "Creating $ML_VENV with $py ($("$py" -V 2>&1))"
        "$py" -m venv "$ML_VENV" || die "could not create $ML_VENV"
    fi
    local started=$SECONDS
    say "Installing torch $TORCH (CPU${wheel:+, $(basename "$wheel")}), diffusers, transformers, accelerate into $ML_VENV (about a minute the first time)"
    printf '%s\n' "$reqs" >"$ML_VENV/requirements.txt"
    "$ML_PY" -m pip install --disable-pip-version-check --quiet --progress-bar off \
        "${find_args[@]}" -r "$ML_VENV/requirements.txt" \
        || die "pip install into $ML_VENV failed (see above)"
    "$ML_PY" -c "import torch, sys; sys.exit(not torch.__version__.startswith('$TORCH'))" \
        || die "$ML_VENV has torch $("$ML_PY" -c 'import torch; print(torch.__version__)'), not $TORCH"
    printf '%s\n' "$want" >"$ML_STAMP"
    say "$ML_VENV ready in $((SECONDS - started)) s"
}

ensure_ml_venv
say "pytest tests/ml ($ML_VENV: $("$ML_PY" -V 2>&1), CPU torch)"
export PYTHONDONTWRITEBYTECODE=1
exec "$ML_VENV/bin/pytest" -q tests/ml "$@"
