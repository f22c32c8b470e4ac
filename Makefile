# paraphe — the two commands a newcomer needs are `make run` and `make test`.
# Everything else is installed on first use: a pinned uv (into .tools/), the Python environment (.venv/,
# from uv.lock) and, when missing, Debian's python3-venv, PostgreSQL, Redis, NATS and nginx packages.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# checkov checks the Kubernetes manifests; it pins old versions of packaging and pytest, so it
# lives in an environment of its own rather than in uv.lock.
CHECKOV_VERSION := 3.3.30
CHECKOV := $(TOOLS)/checkov/bin/checkov
VENV := .venv
BIN := $(VENV)/bin
# Never download a Python: the machine's 3.11 is the one the lock was made for.
export UV_PYTHON_DOWNLOADS := never
# The packages of a project with a typed shared library: checked one by one, so that tests of
# different services may share file names.
TYPED := libs/common libs/devstack $(wildcard services/*) tests bench

.PHONY: help install run stop test lint format typecheck pytest bench loadtest clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Debian ships venv's pip installer apart (python3-venv): installed when missing, as npm is.
define ensure_venv
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "installing python3-venv (Debian package)"; \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); $$sudo apt-get update -qq \
		&& $$sudo apt-get install -y -qq --no-install-recommends python3-venv; }
endef

$(TOOLS)/bin/uv:
	$(ensure_venv)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	$(UV) sync --frozen --all-packages
	@touch $@

# The pages' front-end packages (the DSFR, axe-core for the browser tests), from web/package-lock.json.
# npm comes from Debian when missing; @gouvfr/dsfr's install script reads web/.dsfr.yml.
web/node_modules/.installed: web/package.json web/package-lock.json web/.dsfr.yml
	@command -v npm >/dev/null || { echo "installing npm (Debian package)"; \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); $$sudo apt-get update -qq \
		&& $$sudo apt-get install -y -qq --no-install-recommends npm; }
	cd web && npm ci --no-audit --no-fund
	@touch $@

install: $(VENV)/.synced web/node_modules/.installed ## install the Python environment and the pages' npm packages

$(CHECKOV):
	$(ensure_venv)
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet checkov==$(CHECKOV_VERSION)

checkov: $(CHECKOV) ## install checkov (Kubernetes manifest checks) into .tools/checkov

run: install ## start the whole stack on http://localhost:8080 (Ctrl-C stops it)
	$(BIN)/paraphe-dev run

stop: ## stop a stack started by `make run` in another terminal
	$(BIN)/paraphe-dev stop

format: install ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: install ## format check, lint, and uv.lock up to date with the pyproject files
	$(UV) lock --check
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install ## mypy (strict on the shared library)
	@set -e; for package in $(TYPED); do $(BIN)/mypy $$package; done

pytest: install $(CHECKOV) ## the test suite only
	$(BIN)/pytest

test: lint typecheck pytest ## everything CI runs

bench: install ## benchmarks (not tests): print tables, write bench/results/*.json
	$(BIN)/python bench/tokens.py
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/count.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/end_to_end.py

loadtest: install ## a Locust campaign against `make run`'s stack (or LOCUST_HOST): loadtest/README.md
	$(BIN)/python loadtest/run.py

clean: ## remove the environment and the local stack's state
	rm -rf $(VENV) $(TOOLS) web/node_modules .paraphe .mypy_cache .ruff_cache .pytest_cache
