"""Training: one (configuration, seed) run into one run folder (``rbg train``).

* :mod:`.spec`: :class:`~.spec.RunSpec`, the run's name and ``config.json`` record, the sweep
  of runs (:func:`~.spec.plan_runs`) and what to do with an existing folder;
* :mod:`.checkpoint`: the resumable per-epoch checkpoint;
* :mod:`.selection`: the validation metrics of each epoch and the best validation epoch
  (``--select best-val``);
* :mod:`.loop`: :func:`~.loop.train_run`, the training loop.

:mod:`.spec` imports no torch (``rbg status`` and ``rbg run --dry-run`` plan runs with it);
the loop's names are imported from :mod:`.loop`, and torch with them, on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .spec import RunSpec, loss_head, method_of, plan_runs, prepare_run_dir, run_name

_LOOP = ("Progress", "RunOutcome", "TrainingDiverged", "augment_batch", "train_run")


def __getattr__(name: str) -> Any:
    if name in _LOOP:
        return getattr(importlib.import_module(f"{__name__}.loop"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Progress", "RunOutcome", "RunSpec", "TrainingDiverged", "augment_batch",
           "loss_head", "method_of", "plan_runs", "prepare_run_dir", "run_name", "train_run"]
