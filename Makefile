# Two commands on a fresh machine with Python 3.11 and pip: `make reproduce` and `make test`.
# Both create .venv and install the package on first use; afterwards that step is a no-op.
# `make` alone (or `make help`) lists the targets with the wall time of their last full run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SEEDS ?=  # empty: each target's default seeds (reproduce 0-9, paper-literal 0-4; distortions 0-9, distortions-fresh 0-4; training-size 0-2; ablations 0-4)
SEED_ARGS = $(if $(strip $(SEEDS)),--seeds $(SEEDS))
# Only a target's full default run writes results/ (and RESULTS.md, README.md), and only from committed code.
# SCRATCH=1 sends any run to the git-ignored scratch/ (runs with other SEEDS, VARIANTS or
# BENCH_SECONDS go there anyway).
SCRATCH ?=
SCRATCH_ARG = $(if $(strip $(SCRATCH)),--scratch)
# TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU-only torch build from that index
# (about 1.8 GB of virtualenv instead of 5.8 GB: the PyPI build brings the CUDA stack); same numbers.
TORCH_INDEX ?=

.DEFAULT_GOAL := help
.PHONY: help venv data test readme tables reproduce bench mu-study ablations distortions training-size figures eps-range compare svm-search compare-findings recipe-study head-study rbf-search protocol-study

help:  ## this list
	@$(PYTHON) experiments/make_help.py

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(strip $(TORCH_INDEX)),$(BIN)/python -m pip install -q --index-url $(TORCH_INDEX) torch==2.15.0 torchvision==0.29.2)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)  ## the virtualenv .venv with the package and its dependencies (TORCH_INDEX: see above)

data: venv  ## fetch MNIST and check its checksums
	$(BIN)/python -m repro.data

test: data  ## the test suite (CI runs this)
	$(BIN)/python -m pytest -q

tables: venv  ## results/tables: the paper's per-layer tables from the code [results/tables]
	$(BIN)/python experiments/tables.py $(SCRATCH_ARG)

reproduce: data  ## LeNet-5, Sec. III-B: the recipe (10 seeds) and the literal text (5) [results/reproduce]
	$(BIN)/python experiments/reproduce.py $(SEED_ARGS) $(SCRATCH_ARG)

distortions: data  ## LeNet-5 with the paper's distortions, Sec. III-C [results/distortions]
	$(BIN)/python experiments/reproduce.py --experiment distortions $(SEED_ARGS) $(SCRATCH_ARG)

training-size: data  ## Fig. 6: the recipe on 15,000 and 30,000 training images [results/training_size]
	$(BIN)/python experiments/reproduce.py --experiment training_size $(SEED_ARGS) $(SCRATCH_ARG)

figures: data  ## the paper's figures from the committed runs [results/figures]
	$(BIN)/python experiments/figures.py $(SCRATCH_ARG)

BENCH_SECONDS ?= 30
bench: data  ## samples/s of the native step against plain eager PyTorch [results/bench]
	BENCH_SECONDS=$(BENCH_SECONDS) $(BIN)/python experiments/bench.py $(SCRATCH_ARG)

mu-study: data  ## the mu study (pre-registered in PAPER_NOTES) [results/mu_study]
	$(BIN)/python experiments/mu_study.py $(SCRATCH_ARG)

recipe-study: data  ## mu, distortion ranges, initialisation on validation (pre-registered; 120 runs) [results/recipe_study]
	$(BIN)/python experiments/recipe_study.py $(SCRATCH_ARG)

head-study: data  ## LeNet-5's and LeNet-4's layers with each head x mu on validation (pre-registered; 60 runs) [results/head_study]
	$(BIN)/python experiments/head_study.py $(SCRATCH_ARG)

ablations: data  ## one paper choice at a time against its modern counterpart, 5 seeds [results/ablations]
	$(BIN)/python experiments/ablations.py $(SEED_ARGS) $(if $(VARIANTS),--variants $(VARIANTS)) $(SCRATCH_ARG)

# EPS_TRAIN=1 also trains the readings within a factor of 2 of both ends (20 passes per run, long).
EPS_TRAIN ?=
eps-range: data  ## the first-pass eps range for every reading of the unstated choices [results/eps_range]
	$(BIN)/python experiments/eps_range.py $(SEED_ARGS) $(if $(strip $(EPS_TRAIN)),--train) $(SCRATCH_ARG)

compare: data  ## Sec. III-C, Figs. 9-12: the classical classifiers and the other networks [results/compare]
	$(BIN)/python experiments/compare.py $(if $(METHODS),--methods $(METHODS)) $(SCRATCH_ARG)

svm-search: data  ## C of the SVMs on validation (pre-registered) [results/svm_search]
	$(BIN)/python experiments/svm_search.py $(SCRATCH_ARG)

rbf-search: data  ## the RBF network's ridge on validation (pre-registered) [results/rbf_search]
	$(BIN)/python experiments/rbf_search.py $(SCRATCH_ARG)

protocol-study: data  ## k-NN's reference set, the 300-10 net's loss x passes x training set on validation and test (pre-registered; 59 runs) [results/protocol_study]
	$(BIN)/python experiments/protocol_study.py $(SCRATCH_ARG)

compare-findings: data  ## what moves the comparison's rows that miss the paper (needs compare, svm-search) [results/compare_findings]
	$(BIN)/python experiments/compare_findings.py $(SCRATCH_ARG)

readme: venv  ## rewrite every generated text from committed results, no training
	$(BIN)/python experiments/readme.py --write
