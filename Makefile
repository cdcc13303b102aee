# pmemkit: the README's two commands are `make run` and `make test`.
# Both install what is missing first (host packages via apt, the Python venv), so they work on a
# fresh Debian machine of this kind with nothing installed by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PMEMKIT := $(VENV)/bin/pmemkit
# The default run: one boot with each pmem source and mode the smoke suite must cover.
RUN_PMEM ?= --pmem memmap:512M \
            --pmem nvdimm:512M,mode=fsdax,map=mem \
            --pmem nvdimm:512M,mode=fsdax,map=dev \
            --pmem nvdimm:512M,mode=devdax \
            --pmem nvdimm:512M,mode=raw \
            --pmem virtio-pmem:512M
RUN_ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-unit test-vm image lint deps venv clean bench

deps:
	@bash scripts/install-host-deps.sh

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

image: deps venv
	@$(PMEMKIT) image

run: deps venv
	@$(PMEMKIT) run $(RUN_PMEM) $(RUN_ARGS)

test-unit: venv
	@$(PY) -m pytest -q -m 'not vm' $(PYTEST_ARGS)

test-vm: deps venv
	@$(PY) -m pytest -q -m vm $(PYTEST_ARGS)

# Unit tests (host, seconds) and VM tests (boot the real guest) in one pytest run.
test: deps venv
	@$(PY) -m pytest -q $(PYTEST_ARGS)

# A benchmark, not a test: fio parity on the default six devices (full profile, interleaved rounds)
# and the repeatability of two quick runs (pmemkit compare). Prints ratios; asserts nothing.
BENCH_ARGS ?= --repeat
bench: deps venv
	@$(PY) scripts/bench-fio-parity.py $(BENCH_ARGS)

lint: venv
	@$(PY) -m ruff check pmemkit tests

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache .ruff_cache
	@echo "the image cache (\$${PMEMKIT_CACHE:-~/.cache/pmemkit}) is kept; delete it to rebuild from nothing"
