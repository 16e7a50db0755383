# The README's two commands: `make demo` and `make test`. Both create .venv when missing.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rbg-installed
RUNS ?= runs/demo
# pip prints one harmless warning per missing local index folder on this machine; hide them.
QUIET_PIP := grep -v "^WARNING: Location 'file:" || true

.PHONY: demo test test-slow lint paper bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]' 2>&1 | $(QUIET_PIP)
	$(BIN)/python -c "import robustbench_graph, torch, torchvision, foolbox"
	touch $(STAMP)

# The demo (robustbench_graph/experiment/shipped/demo.toml): CE and the Laplacian regulariser, 2
# seeds each, 5 epochs on the embedded mnist5k, LapNet's suite with fewer noise draws, a
# 200-image DeepFool subset and PGD at one budget, then the report. Interrupted? Run it again.
demo: $(STAMP)
	$(BIN)/rbg run demo --out $(RUNS)
	@echo "runs:   $(abspath $(RUNS))"
	@echo "report: $(abspath $(RUNS))/report/index.html"

# The LapNet protocol (robustbench_graph/experiment/shipped/lapnet-cifar10.toml): 4 configurations
# x 10 seeds, 100 epochs of PreActResNet18 on CIFAR-10, the paper's attack settings. Needs a
# GPU and the CIFAR-10 files (DATA_DIR=...); on a cluster use rbg run with --executor.
PAPER_RUNS ?= runs/lapnet-cifar10
paper: $(STAMP)
	$(BIN)/rbg run lapnet-cifar10 --out $(PAPER_RUNS) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

test: $(STAMP)  ## the fast test suite (CI)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)  ## ruff, and the import layers (no circles, nothing up the layers)
	$(BIN)/ruff check robustbench_graph tests bench scripts
	$(BIN)/python scripts/import_graph.py

bench: $(STAMP)  ## every speed target at a small size (a few minutes): one table of ratios, appended to bench/RESULTS.md
	$(BIN)/python bench/run_all.py --quick
