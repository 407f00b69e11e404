# Two commands for a newcomer: `make demo` and `make test`. Both run `make setup` first,
# which installs everything into .venv/ and node_modules/ and is a no-op when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup browser demo test test-fast golden bench clean sandbox-down

setup: $(STAMP) node_modules/.installed

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3

$(STAMP): $(VENV)/bin/python pyproject.toml requirements.lock
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (eks-hub-runbook)" >/dev/null
	touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's chromium for the browser walkthrough (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: setup
	$(BIN)/runbook demo

test: setup browser
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=25 $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not terraform and not browser and not slow" $(PYTEST_ARGS)

golden: setup
	$(BIN)/runbook golden

bench: setup
	$(BIN)/python -m benchmarks

sandbox-down:
	-$(BIN)/runbook sandbox down

clean: sandbox-down
	rm -rf .runbook .pytest_cache
