# paraphe — the two commands a newcomer needs are `make run` and `make test`.
# Everything else is installed on first use: a pinned uv (into .tools/), the Python environment (.venv/,
# from uv.lock) and, when missing, Debian's PostgreSQL, Redis, NATS and nginx packages.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
# Never download a Python: the machine's 3.11 is the one the lock was made for.
export UV_PYTHON_DOWNLOADS := never
# The packages of a project with a typed shared library: checked one by one, so that tests of
# different services may share file names.
TYPED := libs/common libs/devstack $(wildcard services/*) tests bench

.PHONY: help install run stop test lint format typecheck pytest bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	$(UV) sync --frozen --all-packages
	@touch $@

install: $(VENV)/.synced ## install the Python environment from uv.lock

run: install ## start the whole stack on http://localhost:8080 (Ctrl-C stops it)
	$(BIN)/paraphe-dev run

stop: ## stop a stack started by `make run` in another terminal
	$(BIN)/paraphe-dev stop

format: install ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: install ## format check and lint
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install ## mypy (strict on the shared library)
	@set -e; for package in $(TYPED); do $(BIN)/mypy $$package; done

pytest: install ## the test suite only
	$(BIN)/pytest

test: lint typecheck pytest ## everything CI runs

bench: install ## benchmarks (not tests): print tables, write bench/results/*.json
	$(BIN)/python bench/tokens.py
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/memory.py

clean: ## remove the environment and the local stack's state
	rm -rf $(VENV) $(TOOLS) .paraphe .mypy_cache .ruff_cache .pytest_cache
