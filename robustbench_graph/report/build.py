"""``build_report``: read the runs, compute, draw and write every report file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from .. import __version__
from ..io import atomic_write, write_text_atomic
from .aggregate import method_order, networks, summarize
from .collect import RunInfo, collect
from .compare import ALPHA, compare
from .corruption_table import corruption_tables
from .export import write_exports
from .headline import Headline, build_headlines
from .html import render_html
from .methods import MethodConfig
from .plots import PlotFile, write_plots
from .tables import Table, build_tables

SUMMARY = "summary.csv"
COMPARISONS = "comparisons.csv"
INDEX = "index.html"
NETWORKS = "networks.csv"


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
    headlines: list[Headline]
    runs: list[RunInfo]
    methods: list[str]
    settings: dict = field(default_factory=dict)  # fingerprint: the attack settings it names
    method_configs: dict[str, MethodConfig] = field(default_factory=dict)
    networks: pd.DataFrame | None = None  # per-run values: the unit of every test
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
    atomic_write(path, lambda p: df.to_csv(p, index=False, float_format="%.10g",
                                           errors="backslashreplace"))  # odd run paths
    return path


def build_report(runs_root: Path, out_dir: Path, baseline: str = "ce",
                 plots: bool = True, columns: list[str] | None = None,
                 on_step: Callable[[str], None] | None = None) -> Report:
    """Build the report of every run under ``runs_root`` and write it under ``out_dir``.

    Writes ``summary.csv``, ``comparisons.csv``, ``networks.csv`` (per-run values),
    ``tables.md``, ``tables.tex``, ``plots/*.png|svg`` (unless ``plots`` is false) and
    ``index.html``, each atomically. ``columns`` selects the headline's columns
    (:mod:`.headline`); ``on_step`` hears each stage's name (for progress).

    Raises:
        RbgError: no run folder under ``runs_root``, or an unknown headline column.
        NoUsableResults: no results could be read (its ``warnings`` say why).
    """
    step = on_step or (lambda _name: None)
    step("reading runs")
    collected = collect(runs_root)
    results = collected.results
    baseline = _baseline_name(baseline, collected)
    methods = method_order(results["method"], baseline)
    step("statistics")
    per_network = networks(results)
    summary = summarize(results, baseline, per_network)
    comparisons, notes = compare(results, baseline, runs=per_network)
    headlines = build_headlines(summary, comparisons, baseline, columns)
    warnings = list(collected.warnings)
    if baseline not in methods:
        warnings.append(f"baseline method {baseline!r} is not among the methods "
                        f"{', '.join(methods)}; choose one with --baseline")
    report = Report(
        runs_root=Path(runs_root), out_dir=Path(out_dir), baseline=baseline, results=results,
        summary=summary, comparisons=comparisons,
        tables=build_tables(summary, comparisons, baseline)
        + corruption_tables(per_network, baseline), headlines=headlines,
        runs=collected.runs, methods=methods, settings=collected.settings,
        method_configs=collected.methods, networks=per_network, warnings=warnings, notes=notes,
        version=__version__,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.files += [_write_csv(out / SUMMARY, summary),
                     _write_csv(out / COMPARISONS, comparisons),
                     _write_csv(out / NETWORKS, per_network)]
    report.files += write_exports(report, out)
    if plots:
        step("plots")
        report.plots = write_plots(report, out)
        report.files += [f for p in report.plots for f in (p.png, p.svg)]
    step("page")
    write_text_atomic(out / INDEX, render_html(report))
    report.files.append(out / INDEX)
    return report


def _baseline_name(baseline: str, collected) -> str:  # noqa: ANN001
    """``baseline`` as a method name; a run's recorded method id (``laplacian_gamma0.001``)
    is accepted where it names one configuration."""
    names = set(collected.results["method"])
    if baseline in names:
        return baseline
    matches = {r.method for r in collected.runs
               if r.record and r.record.get("method") == baseline and r.method in names}
    return matches.pop() if len(matches) == 1 else baseline
