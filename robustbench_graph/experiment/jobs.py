"""The job function every executor runs: one unit, by module path
(``robustbench_graph.experiment.jobs.run_unit``), so that worker processes, Slurm jobs and
Ray tasks import it the same way. It takes and returns plain data."""

from __future__ import annotations

import contextlib
import time
import traceback
from pathlib import Path
from typing import Any

from .units import (
    Unit,
    clear_attack_failed,
    mark_attack_failed,
    state,
    train_done,
    unit_lock,
)


def set_threads(threads: int | None) -> None:
    """Torch's intra-op threads for this process (executors give each unit a fixed count:
    the same numbers on every executor, and never more threads than cores)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def run_unit(unit_data: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """Run one unit unless it is done; returns ``{"id", "status": done|skipped|failed,
    "seconds", "message"}``. Waits for the unit's lock, so two runs of one experiment never
    compute a unit twice; a failure is recorded in the run folder and returned, not raised."""
    set_threads(threads)
    unit = Unit.from_dict(unit_data)
    t0 = time.perf_counter()
    try:
        with unit_lock(unit):
            current, _ = state(unit)
            if current == "done":
                return {"id": unit.id, "status": "skipped", "seconds": 0.0, "message": ""}
            if unit.kind == "attack" and not train_done(Path(unit.run_dir)):
                return {"id": unit.id, "status": "failed", "seconds": 0.0,
                        "message": "its training unit is not done"}
            _run(unit)
    except Exception as err:  # noqa: BLE001 - recorded; the others go on
        message = (str(err).splitlines() or [type(err).__name__])[0]
        from ..errors import RbgError

        if not isinstance(err, RbgError):
            message = f"{type(err).__name__}: {message}"
            traceback.print_exc()
        if unit.kind == "attack":
            with contextlib.suppress(OSError, RbgError):  # e.g. the lock is not a file
                mark_attack_failed(unit, message)
        return {"id": unit.id, "status": "failed",
                "seconds": time.perf_counter() - t0, "message": message}
    return {"id": unit.id, "status": "done", "seconds": time.perf_counter() - t0,
            "message": ""}


def _run(unit: Unit) -> None:
    from ..device import resolve_device

    device = resolve_device(unit.device)
    data_dir = Path(unit.data_dir) if unit.data_dir else None
    if unit.kind == "train":
        from ..train import RunSpec, train_run

        train_run(RunSpec(unit.train_config, unit.seed, Path(unit.run_dir)), device=device,
                  data_dir=data_dir)
        return
    from ..attack import TestSplits, attack_run

    cfg = unit.attack_config()
    attack_run(Path(unit.run_dir), unit.suite, cfg, device=device,
               splits=TestSplits(data_dir))
    clear_attack_failed(unit)
