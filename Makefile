# Two commands set everything up on a fresh machine:
#   make repro   create .venv, then run the whole DVC pipeline on the embedded default data
#   make test    create .venv, lint, then run the test suite
#   make test-fast  the unit tests only, for development (minutes; docs/development.md)
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# dvc.yaml's commands call `python`: the project's environment must come first on PATH. The quiet
# environment of every comic process is set in comic/env.py; DVC's analytics are off in .dvc/config.
export PATH := $(abspath $(BIN)):$(PATH)
LINTED := comic pipelines tests benchmarks tools infra

.PHONY: setup test test-fast repro lint clean

setup: $(VENV)/.installed

# pip, not uv or poetry: on the machines this was built on, torch and torchvision come from a local wheel
# store that pip reads (docs/stack.md says how to install elsewhere). -qq keeps pip's errors and drops its
# warnings: on such machines pip warns once per configured index folder it cannot find (272 lines).
# --no-compile: Python compiles the modules a run imports when it first imports them, instead of all 20,726
# files at install: in a fresh clone make setup takes 2 min 10 s instead of 3 min 5 s, and the first training
# run's start-up about 30 s longer (docs/studies/pipeline-times.md).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --no-compile -e '.[dev]'
	touch $@

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

# tests/__main__.py: pytest, then exit with its status without Python's teardown (a native library's
# finalizer crashed it once on CI after every test had passed).
test: lint
	$(BIN)/python -m tests

# The development loop (docs/development.md): no lint, no test marked slow, none of the folders whose tests
# start Ray, an MLflow server or a DVC pipeline, and none of the files whose tests start processes (gloo ranks,
# a benchmark script, fresh interpreters, an S3 server). `make test` runs them all.
FAST_SKIPPED := tests/infra tests/registry tests/training tests/test_ddp.py tests/test_bench_gpu.py \
	tests/test_env.py tests/test_runner.py tests/data/test_s3.py
test-fast: setup
	$(BIN)/python -m tests -q -m "not slow" $(addprefix --ignore=,$(FAST_SKIPPED))

repro: setup
	@$(BIN)/dvc repro

clean:
	rm -rf $(VENV)
