# One-command entry points. `make demo` and `make test` each do all the set-up they need on a fresh
# machine (a virtualenv in .venv with the pinned dependencies), so the README needs no other step.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test test-fast ui bench

$(STAMP): pyproject.toml setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default: sample portfolios, synthetic market, SQLite, 300 trading days.
demo: $(STAMP)
	$(BIN)/sigmasight demo --days 300

## The whole test suite (Postgres tests use the server on 127.0.0.1:5432 when it is there).
test: $(STAMP)
	$(BIN)/python -m pytest -q

## The Dagster UI on the demo instance (with the partitions start the demo recorded, if any).
ui: $(STAMP)
	set -a; [ ! -f "$(DAGSTER_HOME)/sigmasight.env" ] || . "$(DAGSTER_HOME)/sigmasight.env"; set +a; \
	$(BIN)/dagster dev -w workspace.yaml

## Benchmarks at full scale (see benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
