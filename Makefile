# Everyday targets. `make demo` and `make test` work from a fresh clone: they create .venv and
# install the pinned dependencies first (torch==2.13.0 before the rest, then requirements.lock).
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
STAMP := $(VENV)/.installed

.PHONY: setup setup-slim tools demo repro test test-unit manifests lint format bench lock clean labelstudio

# The stamp holds the hash of what the venv was built from: scripts/ci-setup.sh compares it
# with a checkout's before it uses a runner's prebuilt venv.
LOCK_HASH = $$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	echo $(LOCK_HASH) > $(STAMP)

setup: $(STAMP)  ## create .venv with the pinned dependencies

# What jobs without a GPU need (ci plan/pack/publish/adopt, report, register, promote,
# rollback, status): no torch, no training stack; the same pins.
SLIM_DEPS := dvc dvc-s3 mlflow-skinny pyyaml rich matplotlib sacrebleu rouge-score
setup-slim:  ## .venv with only what release and report commands need
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.lock $(SLIM_DEPS)
	$(BIN)/python -m pip install --quiet --no-deps -e .

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
tools:  ## system tools the tests call: Debian's prometheus (+ promtool), its pushgateway, Node.js (the pinned actions under act), kubectl
	@missing=""; command -v promtool >/dev/null || missing="prometheus"; \
	  command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	  command -v node >/dev/null || missing="$$missing nodejs"; \
	  [ -z "$$missing" ] || $(SUDO) apt-get install -y -q $$missing >/dev/null 2>&1 \
	  || { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q $$missing >/dev/null; }
	@command -v kubectl >/dev/null || { echo "kubectl not found: install it (kustomize is built in)"; exit 1; }

repro: setup  ## run the DVC pipeline (only what changed)
	dvc repro

demo: setup tools  ## the whole loop on the embedded default: summary, release, canary rehearsal
	dvc repro
	llmops ci commit-results --local
	dvc push --quiet
	llmops register
	llmops promote staging
	llmops summary
	llmops status staging
	llmops rehearse --env staging --arg max-latency-ratio=2

test: setup tools labelstudio  ## everything CI runs
	pytest

test-unit: setup  ## fast tests only
	pytest tests/unit tests/data

manifests: setup tools  ## render every kustomization; validate schemas, policy and PromQL
	llmops manifests check

lint: setup  ## ruff (lint and format) and mypy, all clean
	ruff check .
	ruff format --check .
	mypy

format: setup
	ruff check --fix .
	ruff format .

bench: setup  ## speed figures -> bench/results.json
	llmops bench

lock:  ## re-resolve requirements.lock from pyproject.toml in a scratch venv
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet torch==2.13.0 && .venv-lock/bin/pip install --quiet -e '.[dev]'
	{ echo "# Exact versions of every dependency, resolved together on Python 3.11 (CPU)."; \
	  echo "# Installed with: pip install -c requirements.lock -e '.[dev]'  (torch==2.13.0 first)."; \
	  echo "# Regenerate: make lock"; \
	  .venv-lock/bin/pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements.lock
	rm -rf .venv-lock

clean:  ## remove pipeline outputs (DVC cache and git-tracked metrics stay)
	rm -rf data/prepared models/base models/adapter models/checkpoints bench/work reports

# The Label Studio server the feedback tests start: its own virtualenv, because its pins
# (Django, numpy) are not the pipeline's. The CLI only needs label-studio-sdk (in .venv).
LABEL_STUDIO_VERSION := 1.23.2
LS_VENV := .venv-labelstudio
$(LS_VENV)/.installed-$(LABEL_STUDIO_VERSION):
	rm -rf $(LS_VENV) && $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet label-studio==$(LABEL_STUDIO_VERSION)
	touch $@

labelstudio: $(LS_VENV)/.installed-$(LABEL_STUDIO_VERSION)  ## .venv-labelstudio: the Label Studio server for tests
