# Two commands on a fresh machine:
#   make run    install the gateway into .venv and start it with its defaults
#   make test   install everything the tests need and run the whole suite
# and the whole system under Docker (docs/deploy.md):
#   make compose-test   the compose system, tested through HAProxy
#   make swarm-test     the same system as a Swarm stack, scaled and updated
# and longer runs than the suite's, for reliability (docs/reliability.md):
#   make fuzz           each parser under atheris, FUZZ_SECONDS each (45: about 4 minutes)
#   make soak           mixed and hostile traffic, SOAK_SECONDS (180: a little over 3 minutes)

PYTHON ?= python3
VENV ?= .venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench conformance fuzz soak deps bench-deps compose-deps compose-test swarm-test install clean

run: $(VENV)/.runtime
	$(VENV)/bin/xform serve

# The suite on three processes (pytest-xdist), each module or test case
# class whole in one of them; plain `pytest` runs it in one process. Three on
# a 2-core machine: the process tests wait on real sockets and processes for
# a sixth of the time, which the third fills (65 against 58 s, measured in
# alternate runs). Python's bytecode cache stays on for the suite even where
# the machine sets PYTHONDONTWRITEBYTECODE (this project's do): else each of
# the ~165 Python processes the suite starts compiles the project's modules
# again (45 ms of each `xform serve`; 9 s of the suite), and each pytest
# process rewrites every test module's asserts again (1.4 s each).
test: deps install lint
	env -u PYTHONDONTWRITEBYTECODE $(VENV)/bin/pytest -n 3 --dist loadscope

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The benchmarks: the gateway against baselines written for comparison, in
# the same run (bench/README.md). Options through BENCH_ARGS, e.g.
#   make bench BENCH_ARGS=--quick
#   make bench BENCH_ARGS='amp-200 ws-200 --rounds 5'
#   make bench BENCH_ARGS='--profile amp-200'     (a py-spy flame graph)
# It installs what it needs beyond the tests': Debian's wrk (HTTP load),
# gcc (to build loadgen) and taskset (.ci/bench-packages.txt), and the bench
# extra into .venv.
bench: install bench-deps $(VENV)/.bench-installed
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

$(VENV)/.bench-installed: pyproject.toml
	$(VENV)/bin/pip install --quiet --config-settings editable_mode=compat -e '.[test,bench]'
	touch $@

# WebSocket conformance: Autobahn|Testsuite's fuzzing client against /ws and
# its echo twin (tests/conformance/run.py). wstest runs on Python 2.7 only,
# which pyenv provides; it gets a virtualenv of its own.
PYTHON27 ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)/versions/2.7.18/bin/python
WSTEST_VENV ?= .venv-wstest

conformance: $(VENV)/.runtime $(WSTEST_VENV)/.installed
	$(VENV)/bin/python tests/conformance/run.py --wstest $(WSTEST_VENV)/bin/wstest

$(WSTEST_VENV)/.installed:
	$(PYTHON27) -m pip install --quiet --target $(WSTEST_VENV)-tools 'virtualenv<20.22'
	PYTHONPATH=$(WSTEST_VENV)-tools $(PYTHON27) -m virtualenv --quiet $(WSTEST_VENV)
	$(WSTEST_VENV)/bin/pip install --quiet autobahntestsuite
	touch $@

# Fuzzing: each target of tests/fuzz/targets.py (netstring, AMP, JSON-RPC,
# HTTP) under atheris for FUZZ_SECONDS; an input that fails one is kept in
# tests/fuzz/regressions/, which the suite replays (tests/fuzz/run.py).
FUZZ_SECONDS ?= 45

fuzz: $(VENV)/.fuzz
	$(VENV)/bin/python -m tests.fuzz.run --seconds $(FUZZ_SECONDS)

$(VENV)/.fuzz: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --config-settings editable_mode=compat -e '.[test,fuzz]'
	touch $@

# The soak: a real gateway under mixed traffic on every protocol, with bad
# clients mixed in, for SOAK_SECONDS; it prints the errors, the answers
# checked, and the gateway's descriptors and memory (tests/soak.py).
SOAK_SECONDS ?= 180

soak: install
	$(VENV)/bin/python -m tests.soak --seconds $(SOAK_SECONDS)

# The gateway and what it needs to run, nothing more: what `make run` needs.
$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --config-settings editable_mode=compat -e .
	touch $@

# The gateway and the test tools.
install: $(VENV)/.installed

$(VENV)/.installed: $(VENV)/.runtime
	$(VENV)/bin/pip install --quiet --config-settings editable_mode=compat -e '.[test]'
	touch $@

# The compose system under a real Docker engine: the images built, the system
# up, the integration suite in its tests service and the scale-out scenarios
# from the host, the system down (.ci/compose-test). It starts dockerd (as
# root) when no engine runs, and stops that one after.
compose-test: compose-deps install
	VENV=$(VENV) .ci/with-dockerd .ci/compose-test

# The same system as a Swarm stack on a single-node Swarm (which it makes,
# and leaves after, unless the engine is in one): the stack deployed, the
# integration suite against it, then from the host scaling to four replicas
# and a rolling update under load, the stack removed (.ci/swarm-test). It
# starts dockerd (as root) when no engine runs, and stops that one after.
swarm-test: compose-deps install
	VENV=$(VENV) .ci/with-dockerd .ci/swarm-test

# $(call install-missing,FILE): install the Debian packages listed in FILE
# that are missing.
define install-missing
	@missing=$$(for package in $$(cat $(1)); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'ok installed' || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi
endef

# The Debian packages the tests use (netcat-openbsd, ...), installed only
# when missing.
deps:
	$(call install-missing,.ci/debian-packages.txt)

bench-deps:
	$(call install-missing,.ci/bench-packages.txt)

# Those of make compose-test: Docker's engine and compose, and debootstrap
# for CI's stand-in base images.
compose-deps:
	$(call install-missing,.ci/compose-packages.txt)

clean:
	rm -rf $(VENV) $(WSTEST_VENV) $(WSTEST_VENV)-tools *.egg-info .pytest_cache .ruff_cache artifacts/fuzz
