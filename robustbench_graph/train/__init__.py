"""Training: one (configuration, seed) run into one run folder (``rbg train``).

* :mod:`.spec`: :class:`~.spec.RunSpec`, the run's name and ``config.json`` record, the sweep
  of runs (:func:`~.spec.plan_runs`) and what to do with an existing folder;
* :mod:`.checkpoint`: the resumable per-epoch checkpoint;
* :mod:`.selection`: the validation metrics of each epoch and the best validation epoch
  (``--select best-val``);
* :mod:`.loop`: :func:`~.loop.train_run`, the training loop.
"""

from .loop import Progress, RunOutcome, TrainingDiverged, augment_batch, train_run
from .spec import RunSpec, loss_head, method_of, plan_runs, prepare_run_dir, run_name

__all__ = ["Progress", "RunOutcome", "RunSpec", "TrainingDiverged", "augment_batch",
           "loss_head", "method_of", "plan_runs", "prepare_run_dir", "run_name", "train_run"]
