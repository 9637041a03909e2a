# finoa — two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
CLAIMS ?= 200

.PHONY: demo test lint readme bench bench-workflow bench-archive bench-callbacks bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## Run the whole loop on the embedded default (SQLite): hub, OA and ERP simulators, N claims.
demo: $(STAMP)
	$(BIN)/finoa demo --claims $(CLAIMS) $(DEMO_ARGS)

## Run the whole test suite (SQLite and the PostgreSQL at 127.0.0.1:5432).
test: $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## ruff and mypy.
lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## Regenerate the README's command table from the CLI.
readme: $(STAMP)
	$(BIN)/python -m finoa.cli_reference --write README.md

## Benchmarks: throughput and latency of the loop through the simulators.
bench: $(STAMP)
	$(BIN)/python bench/loop.py $(BENCH_ARGS)

## The approval engine alone: ms per claim lifecycle and decisions/s (no database).
bench-workflow: $(STAMP)
	$(BIN)/python bench/workflow.py $(BENCH_ARGS)

## Archive packages built and checked per second; SHA-256 and SM3 fixity in MB/s.
bench-archive: $(STAMP)
	$(BIN)/python bench/archive.py $(BENCH_ARGS)

## Encrypted OA callbacks: verify µs per callback, and the loop through DingTalk and WeCom
## beside the generic OA (claims/s, decision → write-back p99, as ratios).
bench-callbacks: $(TEST_STAMP)
	$(BIN)/python bench/callbacks.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) finoa-data .pytest_cache .mypy_cache .ruff_cache
