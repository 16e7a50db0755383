"""Gather the results of every run folder under a runs root, tolerating bad folders.

A run whose ``config.json`` or ``results.csv`` cannot be read is left out with a warning
naming the file; a run whose status is ``failed`` is listed, not read. Each results row is
joined with its run's config record (by run folder) to get the ``method``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import RbgError
from ..records import COLUMNS, read_results
from ..runs import RESULTS, find_runs, read_config, read_status


class NoUsableResults(RbgError):
    """Nothing is left to report; ``warnings`` says what was left out and why."""

    def __init__(self, message: str, warnings: list[str]) -> None:
        super().__init__(message)
        self.warnings = list(warnings)


@dataclass(frozen=True)
class RunInfo:
    """Provenance of one run folder, as listed in the report."""

    run: str
    path: Path
    status: str
    method: str | None = None
    seed: int | None = None
    record: dict[str, Any] | None = None
    rows: int = 0
    message: str = ""

    @property
    def used(self) -> bool:
        """Whether the report uses rows of this run."""
        return self.rows > 0


@dataclass
class Collected:
    """All usable results (``COLUMNS`` plus ``method``), the runs seen and the warnings."""

    results: pd.DataFrame
    runs: list[RunInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _read_one(run_dir: Path, warnings: list[str]) -> tuple[RunInfo, pd.DataFrame | None]:
    try:
        record = read_config(run_dir)
    except RbgError as err:
        warnings.append(f"{err}; left out of the report")
        return RunInfo(run_dir.name, run_dir, "unreadable", message=str(err)), None
    status = read_status(run_dir)
    state = str(status.get("status", "missing"))
    info = RunInfo(str(record.get("run", run_dir.name)), run_dir, state,
                   method=str(record["method"]), seed=int(record["seed"]), record=record,
                   message=str(status.get("message", "")))
    if state == "failed":
        return info, None
    path = run_dir / RESULTS
    if not path.exists():
        warnings.append(f"{run_dir} has no {RESULTS} (not evaluated yet); left out of the report")
        return info, None
    try:
        df = read_results(path)
    except RbgError as err:
        warnings.append(f"{err}; left out of the report")
        return replace(info, message=str(err)), None
    if state != "complete":
        warnings.append(f"{run_dir} has status {state!r}; its results are reported anyway")
    df = df.copy()
    df["method"] = info.method
    return replace(info, rows=len(df)), df


def collect(runs_root: Path) -> Collected:
    """Read every run folder under ``runs_root``.

    Raises:
        RbgError: ``runs_root`` does not exist or holds no run folder.
        NoUsableResults: no results row could be read (carries the warnings).
    """
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        raise RbgError(f"runs folder {runs_root} does not exist")
    run_dirs = find_runs(runs_root)
    if not run_dirs:
        raise RbgError(f"no run folders (with config.json) under {runs_root}")
    warnings: list[str] = []
    runs: list[RunInfo] = []
    frames: list[pd.DataFrame] = []
    for run_dir in run_dirs:
        info, df = _read_one(run_dir, warnings)
        runs.append(info)
        if df is not None and not df.empty:
            frames.append(df)
    if not frames:
        raise NoUsableResults(f"no usable results under {runs_root}", warnings)
    results = pd.concat(frames, ignore_index=True)[[*COLUMNS, "method"]]
    return Collected(results, runs, warnings)
