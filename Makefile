# The two commands a person needs: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_ARGS ?=
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 1

.PHONY: run test lint typecheck portable unit fuzz fuzz-smoke bench clean

$(STAMP): pyproject.toml tools/bootstrap.sh tools/debian-packages.txt
	sh tools/bootstrap.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/waystation run $(RUN_ARGS)

test: lint typecheck portable unit fuzz-smoke

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The portable tests under the MicroPython unix port (pytest runs them under CPython too).
portable: $(STAMP)
	$(BIN)/micropython -X heapsize=64M tests/portable/run.py

unit: $(STAMP)
	$(BIN)/pytest

# Coverage-guided fuzzing (atheris), every target FUZZ_SECONDS each, FUZZ_JOBS at a time; the
# working corpus and any crash are kept in .fuzz/ (docs/security.md, "Fuzzing").
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) --work .fuzz

# The fuzz step of `make test`: every target for 2 s from the committed corpus (about a minute).
fuzz-smoke: $(STAMP)
	$(BIN)/python -m tests.fuzz.run --seconds 2 --jobs 2

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .fuzz
