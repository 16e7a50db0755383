"""The attack driver: (run folder, cell) pairs are the units of evaluation work.

For each run, the suite is resolved for the run's dataset family and expanded into cells.
A cell already in ``results.csv`` under the same settings fingerprint is reused; under other
settings it is refused (naming what differs) unless ``overwrite``, which recomputes it. Each
finished cell is written under a per-run file lock: its settings into ``attack.json``, then
its per-image values where the family keeps any (DeepFool's minimal distances,
``per_image/``, :mod:`robustbench_graph.rundir.per_image`), then its rows into
``results.csv`` in one atomic write that replaces any earlier rows of the cell.
An interrupted attack loses at most the cell in flight and never an earlier result; two
processes on the same runs never corrupt or duplicate results. The core never prints;
progress goes to ``on_event``: each cell's start, its batches as they finish (``progress``,
across every repeat) and its end with the headline value.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from . import __version__
from .config import AttackConfig, ImageSubset
from .data import ImageData, load_dataset
from .device import eval_batch_size
from .errors import RbgError
from .perturbations import (
    Cell,
    EvalContext,
    build_suite,
    dataset_family,
    plan_cells,
    suite_names,
)
from .rundir.atomic import clean_stale_temp_files
from .rundir.attack_record import (
    note_cell,
    read_attack_record,
    recorded_rows,
    settings_difference,
    settings_of,
)
from .rundir.folder import RESULTS, find_runs
from .rundir.per_image import per_image_path, write_per_image
from .rundir.results import (
    cell_fingerprints,
    read_results,
    repair,
    replace_cell,
    write_results,
)
from .rundir.runs import LoadedRun, load_run

LOCK = ".rbg.lock"


@dataclass
class CellEvent:
    run: str
    cell: Cell
    index: int
    total: int
    status: str  # start | progress | done | skipped
    seconds: float = 0.0
    done: int = 0  # units (batches) of the cell finished, of ``units``
    units: int = 0
    headline: float | None = None  # the family's headline metric (mean over repeats), if done


@dataclass
class RunReport:
    run_dir: Path
    name: str
    planned: list[Cell] = field(default_factory=list)  # the suite's cells, in order
    computed: list[Cell] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    table: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """An exclusive advisory lock on a run folder (held only while its results change). The
    lock file is never opened through a symbolic link (one planted there would make rbg
    create or lock a file elsewhere)."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise RbgError(f"{path} is a symbolic link; rbg refuses to lock through it "
                           "(remove it)") from None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


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


class TestSplits:
    """Test splits, each loaded once per attack command and keyed by everything that selects
    it (dataset, split seed, test images and the data folder); training splits likewise, on
    demand (:meth:`train`)."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        self._loaded: dict[tuple, tuple[ImageData, torch.Tensor | None]] = {}
        self._train: dict[tuple, ImageData] = {}

    def get(self, dataset: str, split_seed: int, test_images: ImageSubset) -> ImageData:
        return self.get_indexed(dataset, split_seed, test_images)[0]

    def get_indexed(self, dataset: str, split_seed: int, test_images: ImageSubset
                    ) -> tuple[ImageData, torch.Tensor | None]:
        """The chosen test images and their indices in the test split (None: all of it)."""
        key = (dataset, split_seed, test_images, self.data_dir)
        if key not in self._loaded:
            data = load_dataset(dataset, False, self.data_dir, split_seed=split_seed)
            chosen = test_images.indices(len(data))
            indices = None
            if len(chosen) < len(data):
                indices = torch.tensor(chosen)
                data = data.subset(indices)
            self._loaded[key] = (data, indices)
        return self._loaded[key]

    def train(self, dataset: str, split_seed: int) -> ImageData:
        """The training split (in the order ``load_dataset`` returns it), loaded once."""
        key = ("train", dataset, split_seed, self.data_dir)
        if key not in self._train:
            self._train[key] = load_dataset(dataset, True, self.data_dir, split_seed=split_seed)
        return self._train[key]


def _rows(run: LoadedRun, cell: Cell, measurements) -> list[dict]:  # noqa: ANN001
    cfg = run.train_config
    return [{
        "run": run.name, "dataset": cfg.dataset, "model": cfg.model, "loss": cfg.loss,
        "seed": run.seed, "perturbation": cell.perturbation, "param": cell.param,
        "param_value": float(cell.param_value), "repeat": m.repeat, "metric": m.metric,
        "value": float(m.value), "n": m.n, "settings": cell.fingerprint,
    } for m in measurements]


def _refuse_conflicts(run_dir: Path, cells: list[Cell], done: dict) -> None:
    conflicts = [c for c in cells if c.key in done and done[c.key] != {c.fingerprint}]
    if not conflicts:
        return
    record = read_attack_record(run_dir)
    first = conflicts[0]
    parts = (settings_difference(settings_of(record, sorted(done[c.key])[0]), c.settings)
             for c in conflicts)
    why = ", ".join(dict.fromkeys(p for text in parts for p in text.split(", ")))
    more = f" and {len(conflicts) - 1} more cell(s)" if len(conflicts) > 1 else ""
    raise RbgError(f"{run_dir}: {first.label}{more} already computed with other settings "
                   f"({why}); rerun with --overwrite to recompute them")


def attack_run(
    run_dir: Path,
    names: list[str] | str,
    cfg: AttackConfig,
    *,
    device: torch.device,
    overwrite: bool = False,
    splits: TestSplits | None = None,
    on_event: Callable[[CellEvent], None] | None = None,
) -> RunReport:
    """Measure every cell of the suite not yet in the run's results (all of them under
    ``overwrite``); returns what was done.

    Raises:
        RbgError: the run cannot be loaded, its files are unreadable, or a cell was computed
            with other settings and ``overwrite`` is off (nothing is computed then).
    """
    splits = splits or TestSplits()
    run = load_run(run_dir, device)
    if isinstance(names, str):  # a suite spec: ``all`` resolves per dataset family
        names = suite_names(names, dataset_family(run.info))
    suite = build_suite(names, cfg.settings, dataset_family(run.info))
    families = {family.name: family for family in suite}
    cells = plan_cells(suite, cfg.test_images)
    results_path = Path(run_dir) / RESULTS
    report = RunReport(Path(run_dir), run.name, planned=cells)
    with run_lock(run_dir):
        clean_stale_temp_files(Path(run_dir))  # left by a writer that was killed
        table = read_results(results_path)  # validates before any work
        table, damage = repair(table, recorded_rows(read_attack_record(run_dir)))
        if damage:  # a results file cut short or edited: its damaged cells are recomputed
            write_results(results_path, table)
            report.warnings.append(f"{results_path}: " + "; ".join(damage))
        done = cell_fingerprints(table)
    if not overwrite:
        _refuse_conflicts(Path(run_dir), cells, done)
    data, test_indices = splits.get_indexed(run.train_config.dataset,
                                            run.train_config.split_seed, cfg.test_images)
    if (data.info.num_classes, data.info.input_shape) != (run.info.num_classes,
                                                          run.info.input_shape):
        raise RbgError(f"{run_dir}: the test data found ({data.info.num_classes} classes of "
                       f"{'x'.join(map(str, data.info.input_shape))} images) is not the "
                       f"dataset the run was made for ({run.info.num_classes} classes of "
                       f"{'x'.join(map(str, run.info.input_shape))}); check --data-dir")
    batch_size = cfg.batch_size or eval_batch_size(device)
    tc = run.train_config
    ctx = EvalContext(run.model, data.to(device), device, run.name, batch_size,
                      test_indices=test_indices, work_dir=Path(run_dir),
                      train_data=lambda: splits.train(tc.dataset, tc.split_seed))
    provenance = {"rbg": __version__, "device": str(device), "batch_size": batch_size,
                  "images": len(data)}
    for i, cell in enumerate(cells):
        if not overwrite and done.get(cell.key) == {cell.fingerprint}:
            report.skipped.append(cell)
            if on_event:
                on_event(CellEvent(run.name, cell, i, len(cells), "skipped"))
            continue
        if on_event:
            on_event(CellEvent(run.name, cell, i, len(cells), "start"))
        if on_event:
            ctx.progress = (lambda done, units, i=i, cell=cell: on_event(
                CellEvent(run.name, cell, i, len(cells), "progress", done=done, units=units)))
        t0 = time.perf_counter()
        measurements = families[cell.perturbation].measure(cell, ctx)
        seconds = time.perf_counter() - t0
        rows = _rows(run, cell, measurements)
        with run_lock(run_dir):
            current = read_results(results_path)
            kept = ctx.kept.pop(cell.key, None)
            if overwrite or cell.key not in cell_fingerprints(current):
                # (else another process wrote the cell meanwhile)
                if kept is not None:  # before the rows: a result never lacks its side file
                    write_per_image(per_image_path(run_dir, *cell.key, cell.fingerprint), kept)
                note_cell(Path(run_dir), cell, {**provenance, "rows": len(rows),
                                                "seconds": round(seconds, 3)})
                replace_cell(results_path, cell.key, rows, current)
        report.computed.append(cell)
        report.seconds[cell.perturbation] = report.seconds.get(cell.perturbation, 0.0) + seconds
        if on_event:
            metric = families[cell.perturbation].headline
            values = [m.value for m in measurements if m.metric == metric]
            on_event(CellEvent(run.name, cell, i, len(cells), "done", seconds,
                               headline=sum(values) / len(values) if values else None))
    report.table = read_results(results_path)
    return report


__all__ = ["CellEvent", "RunReport", "TestSplits", "attack_run", "plan_cells", "resolve_runs"]
