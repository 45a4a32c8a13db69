# Two commands on a fresh machine with Python 3.11 and pip: `make reproduce` and `make test`.
# Both create .venv and install the package on first use; afterwards that step is a no-op.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SEEDS ?= 0 1 2

.PHONY: venv data test tables reproduce bench search ablations

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

data: venv
	$(BIN)/python -m repro.data

test: data
	$(BIN)/python -m pytest -q

tables: venv
	$(BIN)/python experiments/tables.py

reproduce: data
	$(BIN)/python experiments/reproduce.py --seeds $(SEEDS)

BENCH_SECONDS ?= 30
bench: data
	BENCH_SECONDS=$(BENCH_SECONDS) $(BIN)/python experiments/bench.py

search: data
	$(BIN)/python experiments/search.py

ablations: data
	$(BIN)/python experiments/ablations.py --seeds $(SEEDS) $(if $(VARIANTS),--variants $(VARIANTS))
