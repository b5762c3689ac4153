# Two entry points (see README): `make demo` and `make test`. Both set up .venv first.
# `make demo` installs only what the console needs; `make test` adds the test
# extras (pytest, scipy, numpy, the OpenTelemetry SDK, ruff, mypy) on top.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
TESTDEPS := $(VENV)/.installed-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME)

$(TESTDEPS): pyproject.toml $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(TESTDEPS)

.PHONY: setup demo console test bench fresh
setup: $(RUNTIME)

demo: $(RUNTIME)
	$(BIN)/agentdeck demo

console: $(RUNTIME)
	$(BIN)/agentdeck console

# compileall: our modules' bytecode once, up front. Where PYTHONDONTWRITEBYTECODE is set (as in this
# machine's environment) nothing else writes it, and every test worker and every process a test
# starts (the CLI, ingest processes, the analyst) compiled the sources again: ~0.2 s of CPU each.
# -n 4 on two cores: the suite waits more than it computes (Pilot tests wait on the console's workers
# and frames, others on processes and servers they start). With two workers the CPU time (~500 s) was
# only ~65% of the wall time; four overlap one test's waits with another's work. Same tree and load
# (4.7-5.4): -n 2 790 s, -n 4 432 s wall, CPU 516 s vs 503 s (2026-11-30). Tests that count reads
# or frames see more contention with four: see the branch suite-fast's report.
test: $(TESTDEPS)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m compileall -q console store replay sample_data
	$(BIN)/python -m pytest -n 4 -q

bench: $(TESTDEPS)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/cli.py

# Start afresh: remove the store, the live traces and the outbox (var/), keep .venv.
fresh:
	rm -rf var
