"""Gather the results of every run folder under a runs root, tolerating bad folders.

A run whose ``config.json`` or ``results.csv`` cannot be read is left out with a warning
naming the file; a run whose status is ``failed`` is listed, not read. Each results row is
joined with its run's config record (by run folder) to get the ``method``, and with its
``attack.json`` to get the settings behind its fingerprint.

Cells of one setting (dataset, model, perturbation, param, param_value) computed under
different settings are never pooled: each fingerprint gets a ``variant`` label naming the
settings in which it differs from the others (``draws=2, test_images.samples=50``), and the
report keeps variants apart. Where a setting has one fingerprint the label is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import RbgError
from ..perturbations.report_extras import CellFilter
from ..rundir.attack_record import (
    flatten_settings,
    read_attack_record,
    recorded_rows,
    settings_of,
    show_setting,
)
from ..rundir.folder import (
    RESULTS,
    find_runs,
    is_imported,
    read_config,
    read_run_bytes,
    read_status,
)
from ..rundir.per_image import load_per_image, per_image_path
from ..rundir.results import COLUMNS, UNRECORDED, read_results, repair
from .methods import MethodConfig, imported_method_config, method_config, name_methods


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
    skipped: bool = False  # left out because one of its files is unreadable or malformed

    @property
    def used(self) -> bool:
        """Whether the report uses rows of this run."""
        return self.rows > 0


@dataclass
class Collected:
    """All usable results (``COLUMNS`` plus ``method``, ``run_path``: the run folder, unique
    where run names are not, and ``variant``), the runs seen, their methods and warnings."""

    results: pd.DataFrame
    runs: list[RunInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint: settings
    methods: dict[str, MethodConfig] = field(default_factory=dict)  # name: configuration


def _read_one(run_dir: Path, warnings: list[str], settings: dict[str, dict[str, Any]]
              ) -> tuple[RunInfo, pd.DataFrame | None]:
    try:
        record = read_config(run_dir)
    except RbgError as err:
        warnings.append(f"{err}; left out of the report")
        return RunInfo(run_dir.name, run_dir, "unreadable", message=str(err), skipped=True), None
    status = read_status(run_dir)
    state = str(status.get("status", "missing"))
    info = RunInfo(str(record.get("run", run_dir.name)), run_dir, state,
                   method=str(record["method"]), seed=int(record["seed"]), record=record,
                   message=str(status.get("message", "")))
    if state == "failed":
        return info, None
    if state == "corrupt":
        warnings.append(f"{info.message}; left out of the report")
        return replace(info, skipped=True), None
    path = run_dir / RESULTS
    if not path.exists():
        warnings.append(f"{run_dir} has no {RESULTS} (not evaluated yet); left out of the report")
        return info, None
    try:
        df = read_results(path)
    except RbgError as err:
        warnings.append(f"{err}; left out of the report")
        return replace(info, message=str(err), skipped=True), None
    try:
        attack = read_attack_record(run_dir)
    except RbgError as err:
        warnings.append(f"{err}; the settings of its results are unknown")
        attack = {"settings": {}, "cells": {}}
    df, damage = repair(df, recorded_rows(attack))
    if damage:
        warnings.append(f"{path}: " + "; ".join(damage) + " (rbg attack recomputes them)")
    for fp in set(df["settings"]) - {UNRECORDED}:
        known = settings_of(attack, fp)
        if known is not None:
            settings.setdefault(fp, known)
    if state != "complete":
        warnings.append(f"{run_dir} has status {state!r}; its results are reported anyway")
    df = df.copy()
    df["method"] = info.method
    df["run_path"] = str(run_dir)
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
    settings: dict[str, dict[str, Any]] = {}
    runs: list[RunInfo] = []
    frames: list[pd.DataFrame] = []
    for run_dir in run_dirs:
        info, df = _read_one(run_dir, warnings, settings)
        runs.append(info)
        if df is not None and not df.empty:
            frames.append(df)
    runs, methods = _name_methods(runs, warnings)
    if not frames:
        raise NoUsableResults(f"no usable results under {runs_root}", warnings)
    results = pd.concat(frames, ignore_index=True)[[*COLUMNS, "method", "run_path"]]
    by_run = {str(r.path): r.method for r in runs}
    results["method"] = [by_run.get(p, m) for p, m in
                         zip(results["run_path"], results["method"], strict=True)]
    results["variant"] = variant_labels(results, settings)
    mixed = results.loc[results["variant"] != "", ["perturbation", "param", "param_value"]]
    if not mixed.empty:
        warnings.append(f"{len(mixed.drop_duplicates())} setting(s) hold results computed "
                        "under different settings; they are shown apart (see 'Settings')")
    return Collected(results, runs, warnings, settings, methods)


def _name_methods(runs: list[RunInfo], warnings: list[str]
                  ) -> tuple[list[RunInfo], dict[str, MethodConfig]]:
    """Each run's method: the name of its whole training configuration (:mod:`.methods`)."""
    configs: dict[str, MethodConfig] = {}
    for info in runs:
        if info.record is None:
            continue
        try:
            configs[str(info.path)] = (imported_method_config(info.record)
                                       if is_imported(info.record)
                                       else method_config(dict(info.record["train"])))
        except (RbgError, KeyError, TypeError, ValueError) as err:
            warnings.append(f"{info.path}: its training configuration cannot be read ({err}); "
                            "it is reported under its recorded method name")
    names = name_methods(configs.values())
    named = [replace(info, method=names[configs[str(info.path)].key])
             if str(info.path) in configs else info for info in runs]
    return named, {names[c.key]: c for c in configs.values()}


SETTING_KEYS = ("dataset", "model", "perturbation", "param", "param_value")


def variant_labels(results: pd.DataFrame, settings: dict[str, dict[str, Any]]) -> pd.Series:
    """Per row: empty where its setting has one fingerprint, else what distinguishes its
    fingerprint's settings from the others' (``settings unrecorded`` for old results)."""
    labels = pd.Series("", index=results.index, dtype="object")
    for _, group in results.groupby(list(SETTING_KEYS), dropna=False, sort=False):
        fps = sorted(set(group["settings"]))
        if len(fps) < 2:
            continue
        flat = {fp: flatten_settings(settings[fp]) for fp in fps if fp in settings}
        keys = sorted({k for f in flat.values() for k in f})
        differing = [k for k in keys if len({f.get(k) for f in flat.values()}) > 1]
        for fp in fps:
            if fp not in flat:
                text = "settings unrecorded" if fp == UNRECORDED else f"settings {fp}"
            else:
                text = ", ".join(f"{k}={show_setting(k, flat[fp].get(k))}" for k in differing) or fp
            labels[group.index[group["settings"] == fp]] = text
    return labels


@dataclass(frozen=True)
class PerImageTable:
    """The per-image values one network kept for one cell (:mod:`..rundir.per_image`)."""

    dataset: str
    model: str
    method: str
    run_path: str
    table: pd.DataFrame


def per_image_tables(results: pd.DataFrame, perturbation: str, cells: CellFilter,
                     columns: tuple[str, ...], warnings: list[str] | None = None
                     ) -> list[PerImageTable]:
    """The per-image tables (with ``columns``) of the ``perturbation``'s cells that ``cells``
    selects, one per network and cell, in the order of ``results``; a missing file is left
    out, and so is an unreadable or malformed one (a FIFO, a distance ``abc``), with a line
    in ``warnings`` naming it."""
    rows = results[results["perturbation"] == perturbation]
    if cells.param is not None:
        rows = rows[rows["param"].astype(str) == cells.param]
    if cells.param_value is not None:
        rows = rows[rows["param_value"] == cells.param_value]
    if cells.metric is not None:
        rows = rows[rows["metric"] == cells.metric]
    rows = rows[["dataset", "model", "method", "run_path", "param", "param_value", "settings"]
                ].drop_duplicates()
    out = []
    for r in rows.itertuples(index=False):
        path = per_image_path(Path(r.run_path), perturbation, str(r.param),
                              float(r.param_value), str(r.settings))
        try:
            table = load_per_image(path, columns)
        except FileNotFoundError:
            continue
        except RbgError as err:
            if warnings is not None and f"{err}; left out" not in warnings:
                warnings.append(f"{err}; left out")
            continue
        out.append(PerImageTable(str(r.dataset), str(r.model), str(r.method),
                                 str(r.run_path), table))
    return out


SMOOTHNESS = "smoothness.png"
MAX_PICTURE_BYTES = 2**26  # a smoothness figure beyond this is not rbg's


def find_smoothness(runs_root: Path, out_dir: Path) -> tuple[Path, bytes] | None:
    """The ``rbg smoothness`` figure beside the runs or the report, with its bytes."""
    for folder in (runs_root, runs_root / "smoothness", out_dir, out_dir / "smoothness"):
        path = Path(folder) / SMOOTHNESS
        if path.is_file():
            try:
                return path, read_run_bytes(path, MAX_PICTURE_BYTES)
            except (FileNotFoundError, RbgError):
                continue
    return None
