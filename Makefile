# PharmaCRM. `make run` serves the app with demo data; `make test` runs every check on SQLite and PostgreSQL.
# Stamps in .venv/ and static/vendor/ make a second run skip what is already installed.

SHELL := /bin/bash
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
ECHARTS := pharmacrm/static/vendor/echarts/echarts.min.js
export PORT

.PHONY: run test lint assets system-run system-test help

help:
	@echo "make run    serve PharmaCRM with demo data on http://127.0.0.1:$(PORT) (PORT=8010 make run for another port)"
	@echo "make test   lint, checks and the whole test suite on SQLite and PostgreSQL, browser tests included"
	@echo "make lint   ruff only"

run: system-run $(VENV)/.runtime $(ECHARTS)
	@scripts/run.sh

test: system-test $(VENV)/.dev $(ECHARTS)
	@scripts/test.sh

lint: $(VENV)/.dev
	$(BIN)/ruff check .

system-run:
	@scripts/system-packages.sh run

system-test:
	@scripts/system-packages.sh test

$(BIN)/python:
	@scripts/venv.sh $(PYTHON) $(VENV)

# Pinned runtime dependencies, then the project itself (the `pharmacrm` command) without touching them.
$(VENV)/.requirements: requirements.txt | $(BIN)/python
	@echo "Installing the pinned Python packages into $(VENV) (a minute or two the first time)"
	$(BIN)/pip install -qq -r requirements.txt
	@touch $@

$(VENV)/.runtime: $(VENV)/.requirements pyproject.toml
	$(BIN)/pip install -qq -e . --no-deps
	@touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	@echo "Installing the test tools into $(VENV)"
	$(BIN)/pip install -qq -r requirements-dev.txt
	@touch $@

assets: $(ECHARTS)

$(ECHARTS): package.json package-lock.json
	@scripts/assets.sh
