# Two commands on a fresh machine with Python 3.11 and pip: `make reproduce` and `make test`.
# Both create .venv and install the package on first use; afterwards that step is a no-op.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SEEDS ?=  # empty: each target's default seeds (0 1 2; training-size 0 1)
SEED_ARGS = $(if $(strip $(SEEDS)),--seeds $(SEEDS))

.PHONY: venv data test tables reproduce bench search ablations distortions training-size figures

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
	$(BIN)/python experiments/reproduce.py $(SEED_ARGS)

distortions: data
	$(BIN)/python experiments/reproduce.py --experiment distortions $(SEED_ARGS)

training-size: data
	$(BIN)/python experiments/reproduce.py --experiment training_size $(SEED_ARGS)

figures: data
	$(BIN)/python experiments/figures.py

BENCH_SECONDS ?= 30
bench: data
	BENCH_SECONDS=$(BENCH_SECONDS) $(BIN)/python experiments/bench.py

search: data
	$(BIN)/python experiments/search.py

ablations: data
	$(BIN)/python experiments/ablations.py $(SEED_ARGS) $(if $(VARIANTS),--variants $(VARIANTS))
