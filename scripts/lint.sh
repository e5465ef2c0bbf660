#!/usr/bin/env bash
# `make lint`: ruff check + ruff format --check + lint-imports (scripts/test.sh runs the same).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_venv dev
rc=0
say "ruff check ."
"$VENV/bin/ruff" check . || rc=$?
say "ruff format --check ."
"$VENV/bin/ruff" format --check --output-format concise . || rc=$?
say "lint-imports (the layering contract in pyproject.toml)"
"$VENV/bin/lint-imports" --no-cache || rc=$?
exit "$rc"
