# The two front-door commands. `make run` installs Safeguard and starts its main job on the
# embedded default; `make test` installs everything the tests need and runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

run: install
	$(BIN)/safeguard serve

install-test: $(BIN)/python
	bash scripts/install-test-deps.sh
	$(BIN)/pip install --quiet -e '.[test]'

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: install-test lint
	bash scripts/run-tests.sh

bench: install-test
	$(BIN)/python bench/registry.py
