# The two commands of the README. The work happens in scripts/ (bash), because the first step,
# finding a Python >= 3.12, has to run before any suitable Python exists.
#
#   make run                  set up .venv, migrate, load the demo data, start web + worker (Ctrl-C stops both)
#   make test [ARGS="-k x"]   set up .venv (dev extra), ruff, pytest on PostgreSQL + Redis
#   make prod                 production topology on this machine: gunicorn, I/O + CPU workers, beat (scripts/prod.sh)
#   make lint                 ruff, lint-imports and mypy only (no tests)
#   make lock                 re-pin requirements/*.lock from pyproject.toml (after changing a dependency)
#   make demo                 (re)load the demo data only
#   make clean                remove .venv and var/ (the SQLite database, media, queue, artefacts)

ARGS ?=

.PHONY: run prod test lint lock demo clean help
.DEFAULT_GOAL := help

help:
	@sed -n '4,10p' Makefile | sed 's/^#  *//'

run:
	@scripts/run.sh

prod:
	@scripts/prod.sh

test:
	@scripts/test.sh $(ARGS)

lint:
	@scripts/lint.sh

lock:
	@scripts/lock.sh

demo:
	@scripts/run.sh --setup-only

clean:
	rm -rf .venv .venv-ml var
