# Two commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench eval clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/guardrail demo

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check guardrail tests benchmarks examples
	$(BIN)/ruff format --check guardrail tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/detection_throughput.py

eval: $(STAMP)
	$(BIN)/python benchmarks/eval_quality.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build
