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

.PHONY: demo test test-slow lint bench paper clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]' 2>&1 | $(QUIET_PIP)
	$(BIN)/python -c "import robustbench_graph, torch, torchvision, foolbox"
	touch $(STAMP)

# The demo: CE and the Laplacian regulariser, 2 seeds each, 5 epochs on the embedded mnist5k,
# the whole suite with fewer noise draws, a 200-image DeepFool subset and PGD at one budget,
# then the report.
DEMO_ATTACK := -p gaussian.draws=5 -p gaussian-iid.draws=5 -p dropout.repeats=5 -p deepfool.samples=200 \
               -p pgd.eps=0.1
demo: $(STAMP)
	$(BIN)/rbg train --dataset mnist5k --model smallcnn --loss ce --seeds 0-1 --epochs 5 --out $(RUNS)
	$(BIN)/rbg train --dataset mnist5k --model smallcnn --loss laplacian --seeds 0-1 --epochs 5 --out $(RUNS)
	$(BIN)/rbg attack --runs $(RUNS) --suite all $(DEMO_ATTACK)
	$(BIN)/rbg report --runs $(RUNS) --out $(RUNS)/report --baseline ce
	@echo "runs:   $(abspath $(RUNS))"
	@echo "report: $(abspath $(RUNS))/report/index.html"

# The LapNet protocol (docs/losses.md#laplacian): 4 configurations x 10 seeds, 100 epochs of
# PreActResNet18 on CIFAR-10, the paper's attack settings. Needs a GPU and the CIFAR-10 files
# (add DOWNLOAD=--download when online).
PAPER_RUNS ?= runs/lapnet-cifar10
PAPER_TRAIN := --dataset cifar10 --model preactresnet18 --seeds 0-9 --epochs 100 --out $(PAPER_RUNS) $(DOWNLOAD)
paper: $(STAMP)
	$(BIN)/rbg train $(PAPER_TRAIN) --loss ce
	$(BIN)/rbg train $(PAPER_TRAIN) --loss ce --parseval
	$(BIN)/rbg train $(PAPER_TRAIN) --loss laplacian
	$(BIN)/rbg train $(PAPER_TRAIN) --loss laplacian --parseval
	$(BIN)/rbg attack --runs $(PAPER_RUNS) --suite all
	$(BIN)/rbg report --runs $(PAPER_RUNS) --out $(PAPER_RUNS)/report --baseline ce

test: $(STAMP)  ## the fast test suite (CI)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check robustbench_graph tests bench
