# Two commands: `make demo` and `make test`. Both create .venv when missing.
# `make demo` installs the light runtime only (no Chroma, Qdrant, Ray, pyarrow or test tools);
# `make test` installs the `dev` extra: every integration and the test tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-runtime

.PHONY: demo test lint typecheck unit bench eval clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# the runtime only, for the demo; a venv that already has [dev] has all of it
$(DEMO_STAMP): $(BIN)/python pyproject.toml
	if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then :; else $(BIN)/pip install --quiet -e .; fi
	touch $(DEMO_STAMP)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(DEMO_STAMP)
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
