# TradingChassis Ops Lab: the front door. Each target calls one invoke task (tasks.py).
# RUNTIME=native runs the task in .venv; RUNTIME=container runs it inside the project image;
# RUNTIME=auto (default) picks native when python3 >= 3.11 with venv is present, else container.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
RUNTIME ?= auto
STAMP := $(VENV)/.installed
INVOKE := $(VENV)/bin/invoke
LOCKS := requirements/runtime.lock requirements/dev.lock pyproject.toml

ifeq ($(RUNTIME),auto)
  override RUNTIME := $(shell $(PYTHON) -c 'import sys, venv; print("native" if sys.version_info >= (3, 11) else "container")' 2>/dev/null || echo container)
endif
ifeq ($(RUNTIME),container)
  NEEDS :=
  TASK := ./scripts/container-task
  # Inside the image: the unit tests. The integration tests drive make, the host's Prometheus and
  # the container engine, so they run natively (CI runs both).
  TEST_ARGS := --args tests/unit
else ifeq ($(RUNTIME),native)
  NEEDS := $(STAMP)
  TASK := $(INVOKE)
  TEST_ARGS :=
else
  $(error RUNTIME must be native, container or auto, not '$(RUNTIME)')
endif

.PHONY: help setup demo test check bench docs clean drill image stack-up stack-down stack-status
.PHONY: samples screenshots

help: ## list the targets (this text)
	@echo "TradingChassis Ops Lab. Usage: make TARGET [RUNTIME=native|container|auto]"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Artifacts land in \$$TC_ARTIFACTS_DIR (default ./artifacts). Docs: docs/ (make docs)."

$(STAMP): $(LOCKS)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/runtime.lock -r requirements/dev.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(NEEDS) ## create .venv from the hashed locks (re-installs only when a lock changed)
	@echo "runtime: $(RUNTIME)"; $(TASK) setup

demo: $(NEEDS) ## run the whole demo flow into $TC_ARTIFACTS_DIR and print where the run is
	@echo "runtime: $(RUNTIME)"; $(TASK) demo

test: $(NEEDS) ## run the test suite (unit + integration; RUNTIME=container: unit tests in the image)
	@echo "runtime: $(RUNTIME)"; $(TASK) test $(TEST_ARGS)

check: $(NEEDS) ## static checks: schemas vs metaschema, ruff, promtool, docs build --strict
	@echo "runtime: $(RUNTIME)"; $(TASK) check

bench: $(NEEDS) ## benchmarks, reported as ratios against baselines measured in the same run
	@echo "runtime: $(RUNTIME)"; $(TASK) bench

docs: $(NEEDS) ## build the MkDocs site into site/
	@echo "runtime: $(RUNTIME)"; $(TASK) docs

samples: $(NEEDS) ## regenerate docs/samples/ from a real run (make check runs it with --check)
	@echo "runtime: $(RUNTIME)"; $(TASK) samples

screenshots: $(STAMP) ## retake docs/images/*.png in headless Chromium (the browser test's recipe)
	@$(INVOKE) screenshots

drill: $(NEEDS) ## run one failure drill: make drill NAME=mismatch (NAME=all for every drill)
	@echo "runtime: $(RUNTIME)"; $(TASK) drill --name "$(NAME)"

image: $(STAMP) ## build the container images (skipped when their inputs did not change)
	@$(INVOKE) image

stack-up: $(STAMP) ## start metrics + Prometheus + Grafana (127.0.0.1) and wait until they answer
	@$(INVOKE) stack-up

stack-down: $(STAMP) ## stop the stack (volumes kept)
	@$(INVOKE) stack-down

stack-status: $(STAMP) ## show which stack services answer
	@$(INVOKE) stack-status

clean: ## remove build output and caches; FORCE=1 also removes ./artifacts
	rm -rf site .bench .pytest_cache build dist *.egg-info
	@if [ "$(FORCE)" = "1" ]; then rm -rf artifacts && echo "removed artifacts/"; else echo "kept artifacts/ (FORCE=1 removes it)"; fi
