"""The attack driver: (run folder, cell) pairs are the units of evaluation work.

For each run, the cells of the requested suite that are not yet in its ``results.csv`` are
measured one at a time; each finished cell is appended atomically under a per-run file lock,
so an interrupted attack loses at most the cell in flight and two processes on the same runs
never corrupt or duplicate results. The core never prints; progress goes to ``on_event``.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from .config import AttackConfig
from .data import ImageData, load_dataset
from .device import eval_batch_size
from .errors import RbgError
from .perturbations import PERTURBATIONS, Cell, EvalContext
from .perturbations.deepfool import subset_indices
from .records import (
    COLUMNS,
    append_results,
    cell_key,
    completed_cells,
    read_results,
    without_cells,
    write_results,
)
from .runs import RESULTS, LoadedRun, find_runs, load_run

LOCK = ".rbg.lock"


@dataclass
class CellEvent:
    run: str
    cell: Cell
    index: int
    total: int
    status: str  # start | done | skipped
    seconds: float = 0.0


@dataclass
class RunReport:
    run_dir: Path
    name: str
    computed: list[Cell] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    table: pd.DataFrame | None = None


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """An exclusive advisory lock on a run folder (held only while its results change)."""
    with open(Path(run_dir) / LOCK, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def resolve_runs(paths: list[Path]) -> list[Path]:
    """Run folders from folders given on the command line (a run folder or a folder of runs)."""
    runs: list[Path] = []
    for path in paths:
        if not Path(path).exists():
            raise RbgError(f"no such folder: {path}")
        found = find_runs(Path(path))
        if not found:
            raise RbgError(f"no run folders (with config.json) under {path}")
        runs += found
    return list(dict.fromkeys(runs))


def plan_cells(names: list[str], cfg: AttackConfig) -> list[Cell]:
    cells: list[Cell] = []
    for name in names:
        cells += PERTURBATIONS.create(name).cells(cfg)
    return cells


_DATA_CACHE: dict[tuple[str, int, int | None], ImageData] = {}


def load_test_split(dataset: str, split_seed: int, samples: int | None,
              data_dir: Path | None) -> ImageData:
    key = (dataset, split_seed, samples)
    if key not in _DATA_CACHE:
        data = load_dataset(dataset, False, data_dir, split_seed=split_seed)
        if samples is not None and samples < len(data):
            data = data.subset(subset_indices(len(data), samples))
        _DATA_CACHE[key] = data
    return _DATA_CACHE[key]


def _rows(run: LoadedRun, cell: Cell, measurements) -> list[dict]:  # noqa: ANN001
    cfg = run.train_config
    return [{
        "run": run.name, "dataset": cfg.dataset, "model": cfg.model, "loss": cfg.loss,
        "seed": run.seed, "perturbation": cell.perturbation, "param": cell.param,
        "param_value": float(cell.param_value), "repeat": m.repeat, "metric": m.metric,
        "value": float(m.value), "n": m.n,
    } for m in measurements]


def attack_run(
    run_dir: Path,
    names: list[str],
    cfg: AttackConfig,
    *,
    device: torch.device,
    overwrite: bool = False,
    data_dir: Path | None = None,
    on_event: Callable[[CellEvent], None] | None = None,
) -> RunReport:
    """Measure every missing cell of the suite on one run; returns what was done."""
    run = load_run(run_dir, device)
    dataset_cfg = cfg.for_dataset(run.train_config.dataset)
    cells = plan_cells(names, dataset_cfg)
    results_path = Path(run_dir) / RESULTS
    with run_lock(run_dir):
        existing = read_results(results_path)  # validates before any work
        if overwrite and not existing.empty:
            existing = without_cells(existing, [c.key for c in cells])
            write_results(results_path, existing)
    done = completed_cells(existing)
    data = load_test_split(run.train_config.dataset, run.train_config.split_seed, cfg.samples,
                     data_dir)
    ctx = EvalContext(run.model, data.to(device), device, run.name,
                      cfg.batch_size or eval_batch_size(device))
    report = RunReport(Path(run_dir), run.name)
    for i, cell in enumerate(cells):
        if cell_key(*cell.key) in done:
            report.skipped.append(cell)
            if on_event:
                on_event(CellEvent(run.name, cell, i, len(cells), "skipped"))
            continue
        if on_event:
            on_event(CellEvent(run.name, cell, i, len(cells), "start"))
        t0 = time.perf_counter()
        measurements = PERTURBATIONS.create(cell.perturbation).measure(cell, ctx)
        seconds = time.perf_counter() - t0
        with run_lock(run_dir):
            if cell_key(*cell.key) not in completed_cells(read_results(results_path)):
                append_results(results_path, _rows(run, cell, measurements))
        report.computed.append(cell)
        report.seconds[cell.perturbation] = report.seconds.get(cell.perturbation, 0.0) + seconds
        if on_event:
            on_event(CellEvent(run.name, cell, i, len(cells), "done", seconds))
    report.table = read_results(results_path)
    return report


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """One line per (perturbation, param, param_value, metric): the mean over repeats."""
    if table.empty:
        return table
    keys = ["perturbation", "param", "param_value", "metric"]
    out = table.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    return out[[*keys, "mean", "std", "count"]]


__all__ = ["COLUMNS", "CellEvent", "RunReport", "attack_run", "plan_cells", "resolve_runs",
           "summarize"]
