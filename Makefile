# The two commands of the README:
#   make run    installs what the service needs and runs it on http://127.0.0.1:8888/
#   make test   installs what the tests need (Python packages, Chromium) and runs the whole suite
# Everything is installed into .venv; system packages come from apt-get.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint system-deps bench

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

# The fan-out benchmark against nchan and Centrifugo (see BENCHMARKS.md); never part of `make test`.
bench:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[bench]'
	@missing=""; \
	 { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } || missing="$$missing nginx"; \
	 [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || missing="$$missing libnginx-mod-nchan"; \
	 { command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ]; } || missing="$$missing nats-server"; \
	 if [ -n "$$missing" ]; then \
	   sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	   echo "installing$$missing with apt-get"; \
	   $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	 fi
	[ -x "$${LIVECOMMENTS_TOOLS:-$$HOME/.cache/livecomments/bin}/ferretdb" ] || scripts/install-ferretdb
	[ -x "$${LIVECOMMENTS_TOOLS:-$$HOME/.cache/livecomments/bin}/centrifugo" ] || scripts/install-centrifugo
	$(BIN)/python -m bench.run $(BENCH_ARGS)

$(VENV)/.run-deps: setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(VENV)/.run-deps $@
