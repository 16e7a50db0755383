"""``build_report``: read the runs, compute, draw and write every report file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .. import __version__
from ..io import atomic_write, write_text_atomic
from .aggregate import method_order, summarize
from .collect import RunInfo, collect
from .compare import ALPHA, compare
from .html import render_html
from .plots import PlotFile, write_plots
from .tables import Table, build_tables

SUMMARY = "summary.csv"
COMPARISONS = "comparisons.csv"
INDEX = "index.html"


@dataclass
class Report:
    """Everything a report shows, as plain data; the CLI and the HTML page only render it."""

    runs_root: Path
    out_dir: Path
    baseline: str
    results: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    tables: list[Table]
    runs: list[RunInfo]
    methods: list[str]
    settings: dict = field(default_factory=dict)  # fingerprint: the attack settings it names
    alpha: float = ALPHA
    plots: list[PlotFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    version: str = ""
    created: str = ""

    @property
    def failed_runs(self) -> list[RunInfo]:
        return [r for r in self.runs if r.status == "failed"]


def _write_csv(path: Path, df: pd.DataFrame) -> Path:
    atomic_write(path, lambda p: df.to_csv(p, index=False, float_format="%.10g"))
    return path


def build_report(runs_root: Path, out_dir: Path, baseline: str = "ce",
                 plots: bool = True) -> Report:
    """Build the report of every run under ``runs_root`` and write it under ``out_dir``.

    Writes ``summary.csv``, ``comparisons.csv``, ``plots/*.png|svg`` (unless ``plots`` is
    false) and ``index.html``, each atomically.

    Raises:
        RbgError: no run folder under ``runs_root``.
        NoUsableResults: no results could be read (its ``warnings`` say why).
    """
    collected = collect(runs_root)
    results = collected.results
    methods = method_order(results["method"], baseline)
    summary = summarize(results, baseline)
    comparisons, notes = compare(results, baseline)
    warnings = list(collected.warnings)
    if baseline not in methods:
        warnings.append(f"baseline method {baseline!r} is not among the methods "
                        f"{', '.join(methods)}; choose one with --baseline")
    report = Report(
        runs_root=Path(runs_root), out_dir=Path(out_dir), baseline=baseline, results=results,
        summary=summary, comparisons=comparisons,
        tables=build_tables(summary, comparisons, baseline), runs=collected.runs,
        methods=methods, settings=collected.settings, warnings=warnings, notes=notes,
        version=__version__,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.files += [_write_csv(out / SUMMARY, summary),
                     _write_csv(out / COMPARISONS, comparisons)]
    if plots:
        report.plots = write_plots(results, methods, out)
        report.files += [f for p in report.plots for f in (p.png, p.svg)]
    write_text_atomic(out / INDEX, render_html(report))
    report.files.append(out / INDEX)
    return report
