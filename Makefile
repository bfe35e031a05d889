# The two commands a person needs: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_ARGS ?=

.PHONY: run test lint typecheck portable unit bench clean image image-test

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

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# The Raspberry Pi image (needs root, binfmt_misc and Debian's archive; ~15 min the first time,
# then the base is cached in build/cache) and its boot test under qemu-system-aarch64.
image: $(STAMP)
	bash images/raspberrypi/build.sh build/image

image-test: image
	$(BIN)/pytest -p no:cacheprovider tests/image
