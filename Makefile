# Two entry points: `make demo` (the main job on SQLite with simulated chargers)
# and `make test` (lint, types, layer contracts, the whole test suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chargegrid demo

lint: $(STAMP)
	$(BIN)/ruff check chargegrid tests benchmarks
	$(BIN)/mypy chargegrid
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_meter_values.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
