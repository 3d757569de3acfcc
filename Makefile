# Two commands on a fresh machine:
#   make run    install into .venv and start the gateway with its defaults
#   make test   install everything the tests need and run the whole suite

PYTHON ?= python3
VENV ?= .venv
DEBIAN_PACKAGES := $(shell cat .ci/debian-packages.txt)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench deps install clean

run: install
	$(VENV)/bin/xform serve

test: deps install lint
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The benchmarks: the gateway against baselines written for comparison, in
# the same run (bench/README.md). Options through BENCH_ARGS, e.g.
#   make bench BENCH_ARGS=--quick
#   make bench BENCH_ARGS='amp-200 ws-200 --rounds 5'
#   make bench BENCH_ARGS='--profile amp-200'     (a py-spy flame graph)
# It installs what it needs beyond the tests': Debian's wrk (HTTP load),
# gcc (to build loadgen) and taskset, and the bench extra into .venv.
BENCH_DEBIAN_PACKAGES := wrk gcc libc6-dev util-linux

bench: install $(VENV)/.bench-installed
	@$(MAKE) --no-print-directory deps DEBIAN_PACKAGES="$(BENCH_DEBIAN_PACKAGES)"
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

$(VENV)/.bench-installed: pyproject.toml
	$(VENV)/bin/pip install --quiet --config-settings editable_mode=compat -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --config-settings editable_mode=compat -e '.[test]'
	touch $@

# The Debian packages the tests use (netcat-openbsd, ...), installed only
# when missing.
deps:
	@missing=$$(for package in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'ok installed' || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
