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

demo: $(STAMP)  ## trains 2 seeds on the embedded mnist5k
	$(BIN)/rbg train --dataset mnist5k --model smallcnn --loss ce --seeds 0-1 --epochs 5 --out $(RUNS)
	@echo "results: $(abspath $(RUNS))"

test: $(STAMP)  ## the fast test suite (CI)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check robustbench_graph tests bench
