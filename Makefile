# The two commands a person needs: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_ARGS ?=

.PHONY: run test test-bluez lint typecheck portable unit bench clean

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

unit: $(STAMP)
	$(BIN)/pytest

# Level 2 BLE tests: a real bluetoothd in an x86-64 Debian guest under qemu TCG (tests/bluez/).
# Builds the guest on first use (cached in build/bluez-guest/ by a hash of its inputs).
# WAYSTATION_BLUEZ_PROJECT=/other/tree runs the guest cases against another tree's node/.
test-bluez: $(STAMP)
	WAYSTATION_BLUEZ=1 $(BIN)/pytest -p no:randomly -s tests/bluez

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
