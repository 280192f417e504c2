# Quickstart targets: `make demo`, `make test`, `make dev`. Each installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

# Project-local defaults (git-ignored var/); the environment overrides each of them.
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home
export LAKEHOUSE_ROOT ?= $(CURDIR)/var/lakehouse
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/var/mlflow/mlflow.db
# LightGBM/OpenMP threads must not spin against the Spark JVM on a 2-core machine.
export OMP_WAIT_POLICY ?= PASSIVE
# Local-first: nothing is sent out unless asked. MLflow's usage telemetry is on by default (every process that
# imports mlflow: runs, the daemon, the MLflow UI); dbt's is off in dbt_project.yml (`flags:`).
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= true
# Where `make dev` and `make mlflow` listen: always loopback (no auth on either), the port is yours to pick.
DAGSTER_PORT ?= 3000
MLFLOW_PORT ?= 5000
TEST_WORKERS ?= 2

.PHONY: install browser hey demo experiment experiment-dev test dev serve lint format bench clean home manifest mlflow rollback dbt restore history connect-server canary shadow rollout-status rollout-abort

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml uv.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv sync --frozen --inexact --quiet
	touch $@

install: $(VENV)/.installed manifest

# The dbt manifest dagster-dbt builds the gold assets from (a few seconds; no Spark needed).
manifest: $(VENV)/.installed
	cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir .

home:
	mkdir -p "$(DAGSTER_HOME)" "$(LAKEHOUSE_ROOT)" "$(dir $(subst sqlite:///,,$(MLFLOW_TRACKING_URI)))"
	cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

demo: install home
	$(BIN)/python -m mlops_assets.cli demo

# One experiment (mlops_assets/experiments/specs/retention_offer.yaml) from plan to decision, in its own
# instance, lakehouse and MLflow store under var/experiment (a larger source population than the demo's).
EXPERIMENT_HOME := $(CURDIR)/var/experiment
EXPERIMENT_ENV := DAGSTER_HOME=$(EXPERIMENT_HOME)/dagster_home LAKEHOUSE_ROOT=$(EXPERIMENT_HOME)/lakehouse \
	MLFLOW_TRACKING_URI=sqlite:///$(EXPERIMENT_HOME)/mlflow/mlflow.db
experiment: install
	mkdir -p "$(EXPERIMENT_HOME)/dagster_home" "$(EXPERIMENT_HOME)/lakehouse" "$(EXPERIMENT_HOME)/mlflow"
	cp dagster.yaml "$(EXPERIMENT_HOME)/dagster_home/dagster.yaml"
	$(EXPERIMENT_ENV) $(BIN)/python -m mlops_assets.cli experiment

# The Dagster UI on the experiment's instance (after `make experiment`).
experiment-dev: install
	$(EXPERIMENT_ENV) PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(DAGSTER_PORT)

# Two pytest-xdist workers, one whole module group each at a time (see mlops_assets_tests/conftest.py);
# TEST_WORKERS=0 runs the suite in one process.
test: install browser
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

# Debian's Chromium for the UI test (Playwright drives it; Playwright's own browser download cannot work here).
browser:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the UI test"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq chromium >/dev/null; }

# The venv first on PATH: `dagster dev` re-parses the dbt project (DbtProject.prepare_if_dev) with `dbt` from PATH.
dev: install home
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(DAGSTER_PORT)

# The scoring service on @champion (127.0.0.1 unless SERVE_HOST says otherwise, which then needs SERVING_API_KEYS).
# Score a customer: see README "Online serving". Ctrl-C stops it; the request log it writes is ingested by the
# serving/inference_log asset.
SERVE_HOST ?= 127.0.0.1
SERVE_PORT ?= 8080
serve: install home
	$(BIN)/python -m mlops_assets.serving --host $(SERVE_HOST) --port $(SERVE_PORT)

# Debian's hey, the load generator of `make bench` (a Python load loop would saturate the cores itself).
hey:
	@command -v hey >/dev/null || { echo "installing Debian's hey for the serving benchmark"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq hey >/dev/null; }

# The MLflow UI on the local store (no auth: bound to 127.0.0.1 only).
mlflow: install home
	$(BIN)/mlflow ui --backend-store-uri "$(MLFLOW_TRACKING_URI)" --host 127.0.0.1 --port $(MLFLOW_PORT)

# Restore the previous @champion (audited in ml/promotion_audit).
rollback: install home
	$(BIN)/python -m mlops_assets.cli rollback

# Safe rollouts (audited): `make canary VERSION=n [STEPS=0.05,0.25,0.5,1.0]` serves v<n> to a growing share of
# customers, judged every 3 minutes by rollout_sensor; `make shadow VERSION=n` scores it beside @champion unseen.
canary: install home
	$(BIN)/python -m mlops_assets.cli rollout start --candidate "$(VERSION)" --mode canary $(if $(STEPS),--steps "$(STEPS)")

shadow: install home
	$(BIN)/python -m mlops_assets.cli rollout start --candidate "$(VERSION)" --mode shadow $(if $(STEPS),--steps "$(STEPS)")

rollout-status: install home
	$(BIN)/python -m mlops_assets.cli rollout status

rollout-abort: install home
	$(BIN)/python -m mlops_assets.cli rollout abort

# Undo a bad overwrite: `make history TABLE=gold.fct_usage_daily`, then `make restore TABLE=... VERSION=N`.
restore: install home
	$(BIN)/python -m mlops_assets.cli restore --table "$(TABLE)" --version "$(VERSION)" $(if $(REASON),--reason "$(REASON)")

history: install home
	$(BIN)/python -m mlops_assets.cli history --table "$(TABLE)"

# dbt's own CLI on the same lakehouse, e.g. `make dbt ARGS=build` or `make dbt ARGS="docs generate"`.
# It writes gold without a Dagster materialization (Dagster does not see it): for debugging models only.
dbt: install home
	cd dbt_project && ../$(BIN)/dbt $(or $(ARGS),debug) --profiles-dir .

# A Spark Connect server with Delta on 127.0.0.1 (foreground; Ctrl-C stops it). Then, in another shell:
# `MLOPS_SPARK=sc://127.0.0.1:15002 make demo` (or `make dev`): the same assets, on that server.
CONNECT_PORT ?= 15002
connect-server: install
	$(BIN)/python -m mlops_assets.cli connect-server --port $(CONNECT_PORT)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

# Every benchmark on a quiet machine (ratios, never pass/fail); one alone: `make bench ONLY=drift`
# (or backfill, noise, growth, scale, engines, serve; options follow: ONLY="drift --sizes 1000000").
bench: install hey
	$(BIN)/uv sync --frozen --inexact --quiet --group bench
	$(BIN)/python -m bench $(ONLY)

clean:
	rm -rf var dbt_project/target
