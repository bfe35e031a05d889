# The two commands a person needs: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_ARGS ?=
WEB_STAMP := web/node_modules/.installed

.PHONY: run test lint typecheck portable unit bench clean web

$(STAMP): pyproject.toml tools/bootstrap.sh tools/debian-packages.txt
	sh tools/bootstrap.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/waystation run $(RUN_ARGS)

test: lint typecheck portable unit

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The portable tests under the MicroPython unix port (pytest runs them under CPython too).
portable: $(STAMP)
	$(BIN)/micropython -X heapsize=64M tests/portable/run.py

unit: $(STAMP) $(WEB_STAMP)
	$(BIN)/pytest

# The phone web app (web/, docs/web.md): npm packages exactly as web/package-lock.json says, and
# `make web` builds the static folder build/web (serve it over HTTPS or from localhost).
$(WEB_STAMP): web/package-lock.json | $(STAMP)
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_STAMP)

web: $(STAMP) $(WEB_STAMP)
	cd web && node build.mjs ../build/web

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis web/node_modules build/web
