# The two commands of the README: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test install browser sdk lint typecheck bench screenshots clean chat tail psql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The console's end-to-end tests drive Debian's Chromium (no browser download at run time).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the console's browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# `make dev DEV_ARGS="--api-port 8001"` passes flags to `deeployd dev`.
DEV_ARGS ?=
dev: install
	$(BIN)/deeployd dev $(DEV_ARGS)

# The quick start's terminal commands without activating .venv (the stack runs in `make dev`).
# ARGS goes to the command, e.g. `make chat ARGS="--yes"`.
ARGS ?=
chat: install
	$(BIN)/deeployd chat demo $(ARGS)

tail: install
	$(BIN)/deeployd tail $(ARGS)

psql: install
	$(BIN)/deeployd psql $(ARGS)

# The TypeScript SDK: its dev dependencies from the lockfile, then a strict type-check. Its tests
# run inside pytest (tests/test_sdk_typescript.py), against the same real stack as the others.
sdk:
	cd sdk/typescript && npm ci --no-audit --no-fund && ./node_modules/.bin/tsc --noEmit -p tsconfig.json

test: install browser sdk
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# Refresh docs/screenshots/ from the console's end-to-end tests.
screenshots: install browser
	DEEPLOYD_UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q tests/test_console_*_e2e.py

# Every benchmark, one after the other, on the embedded stack (figures: docs/BENCHMARKS.md).
BENCHES := sse_fanout pipeline_throughput pipeline_sources transforms token_stream a2a_tasks tts_stream
bench: install
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .deeployd
