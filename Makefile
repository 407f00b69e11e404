# Two commands for a newcomer: `make demo` and `make test`. Both run `make setup` first,
# which installs everything into .venv/ and node_modules/ and is a no-op when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Static checks that must not touch the project's pins get a venv of their own:
# checkov (Terraform security scan, tests/test_checkov.py) pulls its own boto3 & co.
TOOLS_VENV := .venv-tools
CHECKOV_VERSION := 3.3.30
TOOLS_STAMP := $(TOOLS_VENV)/.installed-checkov-$(CHECKOV_VERSION)
PYTEST_ARGS ?=

.PHONY: setup tools browser demo workshop test test-fast golden bench clean sandbox-down gpu-check faults

setup: tools $(STAMP) $(TOOLS_STAMP) node_modules/.installed

# Before anything else: install the tools Debian offers (kubectl, node/npm) when missing,
# and name what cannot be installed (terraform: version needed, install page).
tools:
	@$(PYTHON) lib/eks_hub_runbook/tools.py setup

$(VENV)/bin/python: | tools
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3

$(STAMP): $(VENV)/bin/python pyproject.toml sandbox/pyproject.toml requirements.lock
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]' -e ./sandbox
	$(BIN)/python -m eks_hub_runbook.kernel >/dev/null
	touch $(STAMP)

$(TOOLS_STAMP): | tools
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --upgrade pip==25.3
	$(TOOLS_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

node_modules/.installed: package.json package-lock.json | tools
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's chromium for the browser walkthrough (never a downloaded browser build).
browser: tools
	@$(PYTHON) lib/eks_hub_runbook/tools.py setup --browser

demo: setup
	$(BIN)/runbook demo

# The workshop: the sandbox up, JupyterLab on the runbooks with the forms on (prints its URL).
workshop: setup
	$(BIN)/runbook lab

test: setup browser
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=40 $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not terraform and not browser and not slow" $(PYTEST_ARGS)

golden: setup
	$(BIN)/runbook golden

bench: setup
	$(BIN)/python -m benchmarks

# On a machine with an NVIDIA GPU (not in CI): the sandbox hands the real GPU to two pods and
# prints what it saw (nvidia-smi -L, the node's GPUs, each pod's devices, nvidia-smi's processes).
gpu-check: setup
	$(BIN)/python -m eks_hub_sandbox.gpu_check

# The fault matrix alone (tests/test_faults.py, ~7 min; `make test` runs it too), its matrix printed.
faults: setup
	$(BIN)/python -m pytest -s -m faults tests/test_faults.py $(PYTEST_ARGS)

sandbox-down:
	-$(BIN)/runbook sandbox down

clean: sandbox-down
	rm -rf .runbook .pytest_cache
