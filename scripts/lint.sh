#!/usr/bin/env bash
# `make lint`: ruff check + ruff format --check + lint-imports + mypy (scripts/test.sh runs the same).
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
# The django-stubs plugin imports studio.settings: STUDIO_TESTING=1 lets it load without a secret.
say "mypy (types, with django-stubs)"
if STUDIO_TESTING=1 "$VENV/bin/mypy"; then say "mypy: ok"; else rc=1; warn "mypy: failed"; fi
exit "$rc"
