"""robustbench_graph: train image classifiers with robustness-oriented losses and measure
how robust they are (graph smoothness, Laplacian/Parseval, large-margin, stationary-point)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_dataset", "load_run"]

# Resolved on first use so that light importers (the CLI's start-up, ``rbg --help``) do not
# import torch: ``from robustbench_graph import load_run`` works as before.
_LAZY = {"load_dataset": ".data", "load_run": ".rundir.runs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
