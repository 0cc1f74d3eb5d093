# The two commands of the README:
#   make run    installs what the service needs and runs it on http://127.0.0.1:8888/
#   make test   installs what the tests need (Python packages, Chromium) and runs the whole suite
# Everything is installed into .venv; system packages come from apt-get.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint system-deps

run: $(VENV)/.run-deps
	$(BIN)/python server.py

test: $(VENV)/.test-deps system-deps lint
	$(BIN)/python -m pytest

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

system-deps:
	scripts/install-test-services

$(VENV)/.run-deps: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.run-deps $@
