# TradingChassis Ops Lab: the front door. Each target calls one invoke task (tasks.py).
# RUNTIME=native runs the task in .venv; RUNTIME=container runs it inside the dev image
# (scripts/container-task; the host needs only make and Podman or Docker); RUNTIME=auto (default)
# picks native when the host has a Python for an engine profile, else container. `make image` builds
# through the engine directly (scripts/image), whatever the runtime.
# Engine profiles (docs/engine-profiles.md): one per supported NautilusTrader release, each with its locks in
# requirements/engine-VERSION/, its Python (scripts/engine-python finds one; PYTHON=... chooses) and its venv
# .venv-VERSION. The default (scripts/default-engine) is the newest release a Python on this host runs;
# .venv links to its venv. ENGINE=VERSION selects another (native only); the default image holds the newest.
.DEFAULT_GOAL := help
SHELL := /bin/sh

NEWEST_ENGINE := $(shell ./scripts/default-engine --newest)
# Finding the host's interpreters takes up to a second (pyenv's shims); `make help` and `make clean` need none.
ifneq ($(filter-out help clean,$(or $(MAKECMDGOALS),help)),)
  HOST_ENGINE := $(shell PYTHON='$(PYTHON)' ./scripts/default-engine 2>/dev/null)
endif
DEFAULT_ENGINE := $(or $(HOST_ENGINE),$(NEWEST_ENGINE))
ENGINE ?= $(DEFAULT_ENGINE)
RUNTIME ?= auto
REQS := requirements/engine-$(ENGINE)
ifeq ($(wildcard $(REQS)/runtime.lock),)
  $(error ENGINE=$(ENGINE): no such engine profile (profiles: $(patsubst requirements/engine-%/,%,$(wildcard requirements/engine-*/))))
endif
VENV ?= .venv-$(ENGINE)
FIND_PYTHON = $(if $(PYTHON),PYTHON=$(PYTHON) )./scripts/engine-python $(REQS)
STAMP := $(VENV)/.installed
INVOKE := $(VENV)/bin/invoke
ifeq ($(ENGINE),$(DEFAULT_ENGINE))
  READY := venv-link
else
  READY := $(STAMP)
  # Another engine profile's targets run natively; `make image ENGINE=...` builds its images.
  override RUNTIME := native
endif
LOCKS := $(REQS)/runtime.lock $(REQS)/dev.lock pyproject.toml

ifeq ($(TC_IN_CONTAINER),1)
  # Inside the dev image (RUNTIME=container, the Dev Container): its /opt/venv holds the locks already.
  override RUNTIME := native
  STAMP :=
  READY :=
  INVOKE := invoke
endif
ifeq ($(RUNTIME),auto)
  override RUNTIME := $(if $(HOST_ENGINE),native,container)
endif
ifeq ($(RUNTIME),container)
  NEEDS := image
  TASK := ./scripts/container-task
  # The stack tasks drive the engine from inside the dev image through its API socket.
  ENGINE_TASK := ./scripts/container-task --engine
  # Inside the image: the unit and cli tests. The integration tests drive make, the host's Prometheus and
  # the container engine, so they run natively (CI runs both).
  TESTS ?= tests/unit tests/cli
else ifeq ($(RUNTIME),native)
  NEEDS := $(READY)
  TASK := $(INVOKE)
  ENGINE_TASK := $(INVOKE)
else
  $(error RUNTIME must be native, container or auto, not '$(RUNTIME)')
endif
# TESTS=PATHS: what `make test` runs (pytest paths or node ids; default: everything natively, tests/unit and tests/cli
# in the image).
TEST_ARGS := $(if $(TESTS),--args '$(TESTS)')

.PHONY: help setup demo test test-fast check bench docs docs-serve clean drill image stack-up stack-down stack-status
.PHONY: samples screenshots venv-link

help: ## list the targets (this text)
	@echo "TradingChassis Ops Lab. Usage: make TARGET [RUNTIME=native|container|auto]"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Artifacts land in \$$TC_ARTIFACTS_DIR (default ./artifacts). Docs: docs/ (make docs)."

# Says what it does before each long step and how long it took (a fresh install takes about a minute).
$(VENV)/.installed: $(LOCKS)
	@start=$$(date +%s); \
	if [ ! -x $(VENV)/bin/python ]; then \
	  python=$$($(FIND_PYTHON)) || exit 1; \
	  echo "setup: creating $(VENV) (engine $(ENGINE)) with $$($$python --version 2>&1) ..."; \
	  $$python -m venv $(VENV) || exit 1; \
	fi; \
	count=$$(cat $(REQS)/runtime.lock $(REQS)/dev.lock | sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*\)==.*/\1/p' | sort -u | wc -l); \
	echo "setup: installing $$count locked packages into $(VENV) (hash-checked; about a minute the first time) ..."; \
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r $(REQS)/runtime.lock -r $(REQS)/dev.lock || exit 1; \
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . || exit 1; \
	touch $@; \
	echo "setup: $(VENV) ready in $$(( $$(date +%s) - start )) s"

# .venv is a link to the default engine's venv (what editors and `. .venv/bin/activate` find). A .venv folder
# from before engine profiles is replaced by the link; the link follows the default when it changes.
venv-link: $(STAMP)
	@if [ "$$(readlink .venv 2>/dev/null)" != "$(VENV)" ]; then \
	  if [ -d .venv ] && [ ! -L .venv ]; then echo "setup: .venv is a venv from before engine profiles: replacing it with a link to $(VENV)"; rm -rf .venv; fi; \
	  ln -sfn $(VENV) .venv && echo "setup: .venv -> $(VENV) (the default engine, $(ENGINE))"; \
	fi

setup: $(NEEDS) ## create .venv-ENGINE from its hashed locks, .venv linking the default's (re-installs only when a lock changed)
	@echo "runtime: $(RUNTIME)"; $(TASK) setup

demo: $(NEEDS) ## run the whole demo flow into $TC_ARTIFACTS_DIR and print where the run is
	@echo "runtime: $(RUNTIME)"; $(TASK) demo

test: $(NEEDS) ## run the test suite (unit + cli + integration; RUNTIME=container: unit + cli tests in the image; TESTS=PATHS: only those)
	@echo "runtime: $(RUNTIME)"; $(TASK) test $(TEST_ARGS)

test-fast: $(NEEDS) ## the in-process unit tests only (tests/unit, under 2 minutes): run while working
	@echo "runtime: $(RUNTIME)"; $(TASK) test-fast

check: $(NEEDS) ## static checks: schemas vs metaschema, ruff, promtool, amtool, docs build --strict
	@echo "runtime: $(RUNTIME)"; $(TASK) check

bench: $(NEEDS) ## benchmarks as ratios against same-run baselines, kept in a history (QUICK=1: CI's pass, under 3 minutes)
	@echo "runtime: $(RUNTIME)"; $(TASK) bench $(if $(filter 1,$(QUICK)),--quick)

docs: $(NEEDS) ## build the MkDocs site into site/
	@echo "runtime: $(RUNTIME)"; $(TASK) docs

docs-serve: $(STAMP) ## serve the docs and runbooks on http://127.0.0.1:8000 (what alerts' runbook links open)
	@$(INVOKE) docs-serve

samples: $(NEEDS) ## regenerate docs/samples/ from a real run (make check runs it with --check)
	@echo "runtime: $(RUNTIME)"; $(TASK) samples

screenshots: $(STAMP) ## retake docs/images/*.png in headless Chromium (the browser test's recipe)
	@$(INVOKE) screenshots

drill: $(NEEDS) ## run one failure drill: make drill NAME=mismatch (NAME=all: lab drills, NAME=node: node drills, NAME=every: both)
	@echo "runtime: $(RUNTIME)"; $(TASK) drill --name "$(NAME)"

image: ## build the container images (the newest engine's; ENGINE=1.221.0: that profile's; skipped when their inputs did not change)
	@$(if $(filter command line environment,$(origin ENGINE)),TC_ENGINE_PROFILE=$(ENGINE) )./scripts/image

stack-up: image $(NEEDS) ## start metrics + Prometheus + Alertmanager + alert receiver + Grafana (127.0.0.1), wait until they answer
	@echo "runtime: $(RUNTIME)"; $(ENGINE_TASK) stack-up

stack-down: $(NEEDS) ## stop the stack (volumes kept)
	@echo "runtime: $(RUNTIME)"; $(ENGINE_TASK) stack-down

stack-status: $(NEEDS) ## show which stack services answer
	@echo "runtime: $(RUNTIME)"; $(ENGINE_TASK) stack-status

clean: ## remove build output and caches; FORCE=1 also removes ./artifacts
	rm -rf site .bench .pytest_cache build dist *.egg-info
	@if [ "$(FORCE)" = "1" ]; then rm -rf artifacts && echo "removed artifacts/"; else echo "kept artifacts/ (FORCE=1 removes it)"; fi

# --- Kubernetes (issue 20): deploy/k8s, deploy/gitops, docs/kubernetes.md ---------------------------
.PHONY: k8s-render k8s-validate k8s-play
k8s-render: $(STAMP) ## render k8s overlays into build/k8s/ (+ SPECS="a.yaml b.yaml" NAME= PARALLELISM=, KILLSWITCH=engage REASON=, REPO_URL=)
	@$(INVOKE) k8s-render $(foreach s,$(SPECS),--spec $(s)) $(if $(NAME),--name $(NAME)) $(if $(PARALLELISM),--parallelism $(PARALLELISM)) \
	  $(if $(KILLSWITCH),--killswitch $(KILLSWITCH) --reason "$(REASON)") $(if $(REPO_URL),--repo-url "$(REPO_URL)")

k8s-validate: $(STAMP) ## validate the overlays: kubernetes-validate --strict, CRDs, policy tests
	@$(INVOKE) k8s-validate

k8s-play: $(STAMP) ## play the podman overlay with podman kube play, check it, then kube down (KEEP=1 leaves it up)
	@$(INVOKE) k8s-play $(if $(filter 1,$(KEEP)),--keep)
