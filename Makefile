# The two commands a person needs: `make run` and `make test`. Both install what they need first:
# `make run` only what running needs (Debian packages in tools/debian-packages-run.txt, the
# package and its runtime dependencies); `make test` adds the development toolchain
# (tools/debian-packages.txt, the `dev` extra). `make dist` builds the wheel that
# docs/operations.md installs on a Debian or Raspberry Pi OS machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed
RUN_ARGS ?=
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 1
DIST ?= dist
WEB_STAMP := web/node_modules/.installed

.PHONY: run test test-bluez lint typecheck portable unit fuzz fuzz-smoke bench dist clean image image-test web

$(RUNTIME): pyproject.toml tools/bootstrap.sh tools/debian-packages-run.txt
	sh tools/bootstrap.sh tools/debian-packages-run.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME) tools/debian-packages.txt
	sh tools/bootstrap.sh tools/debian-packages.txt
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(RUNTIME)
	$(BIN)/waystation run $(RUN_ARGS)

test: lint typecheck portable unit fuzz-smoke

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The portable tests under the MicroPython unix port (pytest runs them under CPython too).
portable: $(STAMP)
	$(BIN)/micropython -X heapsize=64M tests/portable/run.py

unit: $(STAMP) $(WEB_STAMP)
	$(BIN)/pytest

# Level 2 BLE tests: a real bluetoothd in an x86-64 Debian guest under qemu TCG (tests/bluez/).
# Builds the guest on first use (cached in .cache/bluez-guest/ by a hash of its inputs).
# WAYSTATION_BLUEZ_PROJECT=/other/tree runs the guest cases against another tree's node/.
test-bluez: $(STAMP)
	WAYSTATION_BLUEZ=1 $(BIN)/pytest -p no:randomly -s tests/bluez

# The phone web app (web/, docs/web.md): npm packages exactly as web/package-lock.json says, and
# `make web` builds the static folder build/web (serve it over HTTPS or from localhost).
$(WEB_STAMP): web/package-lock.json | $(STAMP)
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_STAMP)

web: $(STAMP) $(WEB_STAMP)
	cd web && node build.mjs ../build/web

# Coverage-guided fuzzing (atheris), every target FUZZ_SECONDS each, FUZZ_JOBS at a time; the
# working corpus and any crash are kept in .fuzz/ (docs/security.md, "Fuzzing").
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) --work .fuzz

# The fuzz step of `make test`: every target for 2 s from the committed corpus, two at a time
# (16 targets: 34 s wall on a quiet 2-core machine, 53 to 71 s under load; docs/security.md).
fuzz-smoke: $(STAMP)
	$(BIN)/python -m tests.fuzz.run --seconds 2 --jobs 2

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

# $(DIST) (dist/): the wheel, the systemd unit and the example configuration
# (docs/operations.md, "Install as a service").
dist: $(RUNTIME)
	rm -rf $(DIST) build/lib build/bdist.*  # not build/cache: the image base (make image)
	$(BIN)/pip wheel -q --no-deps -w $(DIST) .
	cp config/waystation.service config/waystation.toml $(DIST)/

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .fuzz dist build web/node_modules

# The Raspberry Pi image (needs root, binfmt_misc and Debian's archive: it stops with an error
# without them) and its boot test under qemu-system-aarch64. The base root file system and the
# .deb files are cached in build/cache (WAYSTATION_IMAGE_CACHE); times in docs/performance.md.
image: $(STAMP)
	bash images/raspberrypi/build.sh build/image

# The static checks first (seconds, no boot), then the boot test (minutes under emulation).
image-test: image
	$(BIN)/pytest -p no:cacheprovider tests/image/test_static.py tests/image/test_boot.py
