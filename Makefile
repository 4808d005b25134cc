# Two commands set everything up on a fresh machine:
#   make repro   create .venv, then run the whole DVC pipeline on the embedded default data
#   make test    create .venv, then run the test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# dvc.yaml's commands call `python`: the project's environment must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

# Each of these stops a network call or noise (shared/docs/stack.md).
export RAY_USAGE_STATS_ENABLED := 0
export MLFLOW_DISABLE_TELEMETRY := true
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
export DVC_NO_ANALYTICS := 1
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: setup test repro lint clean

setup: $(VENV)/.installed

# pip, not uv or poetry: torch and torchvision come from this machine's local wheel store.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: setup
	$(BIN)/python -m pytest

repro: setup
	$(BIN)/dvc repro

lint: setup
	$(BIN)/ruff check comic pipelines tests scripts infra
	$(BIN)/ruff format --check comic pipelines tests scripts infra

clean:
	rm -rf $(VENV)
