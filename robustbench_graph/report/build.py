"""``build_report``: read the runs, compute, draw and write every report file.

The stages, each a layer that reads only those before it: :mod:`.collect` (the only module
that reads a run folder) → the numbers (:mod:`.aggregate`, :mod:`.compare`, :mod:`.tables`,
:mod:`.summary_tables`, :mod:`.headline`, :mod:`.figures`) → the :class:`.model.Report` →
the renderers (:mod:`.export`, :mod:`.plots`, :mod:`.html`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from .. import __version__
from ..config import ReportConfig
from ..errors import RbgError
from ..perturbations.report_extras import PerImageFigure
from ..rundir.atomic import atomic_write, write_text_atomic
from .aggregate import method_order, networks, perturbation_rank, summarize
from .claims import CLAIMS_CSV, claims_frame, judge, power_sentence, unknown_methods
from .collect import Collected, collect, find_smoothness, per_image_tables
from .compare import ALPHA, compare
from .declared import declaring
from .export import write_exports
from .figures import box_figure_of, curve_figures, per_image_figure
from .headline import build_headlines
from .html import render_html
from .model import FigureSpec, Picture, Report
from .plots import write_plots
from .summary_tables import summary_tables
from .tables import build_tables

SUMMARY = "summary.csv"
COMPARISONS = "comparisons.csv"
INDEX = "index.html"
NETWORKS = "networks.csv"


def _write_csv(path: Path, df: pd.DataFrame) -> Path:
    atomic_write(path, lambda p: df.to_csv(p, index=False, float_format="%.10g",
                                           errors="backslashreplace"))  # odd run paths
    return path


def build_report(runs_root: Path, out_dir: Path, config: ReportConfig | None = None,
                 on_step: Callable[[str], None] | None = None) -> Report:
    """Build the report of every run under ``runs_root`` and write it under ``out_dir``.

    Writes ``summary.csv``, ``comparisons.csv``, ``networks.csv`` (per-run values),
    ``claims.csv`` (where ``config.claims`` declares claims: :mod:`.claims`), ``tables.md``,
    ``tables.tex``, ``plots/*.png|svg`` (unless ``config.plots`` is false) and
    ``index.html``, each atomically. ``config.columns`` selects the headline's columns
    (:mod:`.headline`); ``on_step`` hears each stage's name (for progress).

    Raises:
        RbgError: no run folder under ``runs_root``, an unknown headline column, or a claim
            that could mean several datasets/models.
        NoUsableResults: no results could be read (its ``warnings`` say why).
    """
    config = config or ReportConfig()
    step = on_step or (lambda _name: None)
    step("reading runs")
    collected = collect(runs_root)
    results = collected.results
    baseline = _method_name(config.baseline, collected)
    methods = method_order(results["method"], baseline)
    _check_baseline(baseline, methods, collected, Path(runs_root))
    step("statistics")
    per_network = networks(results)
    summary = summarize(results, baseline, per_network)
    comparisons, notes = compare(results, baseline, runs=per_network)
    columns = list(config.columns) if config.columns else None
    headlines = build_headlines(summary, comparisons, baseline, columns)
    declared = [replace(c, method=_method_name(c.method, collected),
                        baseline=_method_name(c.baseline, collected)) for c in config.claims]
    claims = judge(declared, per_network, summary, ALPHA)
    warnings = list(collected.warnings)
    if baseline not in methods:
        warnings.append(f"baseline method {baseline!r} is not among the methods "
                        f"{', '.join(methods)}; choose one with --baseline")
    warnings += unknown_methods(declared, methods)
    smoothness = find_smoothness(Path(runs_root), Path(out_dir))
    report = Report(
        runs_root=Path(runs_root), out_dir=Path(out_dir), baseline=baseline, results=results,
        summary=summary, comparisons=comparisons,
        tables=build_tables(summary, comparisons, baseline)
        + summary_tables(per_network, baseline), headlines=headlines,
        runs=collected.runs, methods=methods, settings=collected.settings,
        method_configs=collected.methods, networks=per_network, warnings=warnings, notes=notes,
        smoothness=Picture(*smoothness) if smoothness else None, claims=claims,
        power=power_sentence(comparisons, ALPHA), version=__version__,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.files += [_write_csv(out / SUMMARY, summary),
                     _write_csv(out / COMPARISONS, comparisons),
                     _write_csv(out / NETWORKS, per_network)]
    if claims:
        report.files.append(_write_csv(out / CLAIMS_CSV, claims_frame(claims)))
    report.files += write_exports(report, out)
    if config.plots:
        step("plots")
        report.figures = figure_specs(report)
        report.plots = write_plots(report, out)
        report.files += [f for p in report.plots for f in (p.png, p.svg)]
    step("page")
    write_text_atomic(out / INDEX, render_html(report))
    report.files.append(out / INDEX)
    return report


def figure_specs(report: Report) -> list[FigureSpec]:
    """Per dataset/model: its curves, the families' per-image figures, its boxes."""
    declared = sorted(declaring(PerImageFigure), key=lambda d: perturbation_rank(d[0]))
    loaded = [(fig, per_image_tables(report.results, family, fig.cells, fig.columns,
                                     report.warnings))
              for family, fig in declared]
    specs: list[FigureSpec] = []
    for (dataset, model), dm in report.networks.groupby(["dataset", "model"], sort=True):
        d, m = str(dataset), str(model)
        here = [x for x in report.methods if x in set(dm["method"])]
        specs += curve_figures(dm, d, m, here)
        for fig, tables in loaded:
            spec = per_image_figure(fig, [t for t in tables if (t.dataset, t.model) == (d, m)],
                                    d, m, here)
            if spec is not None:
                specs.append(spec)
        head = next((h for h in report.headlines if (h.dataset, h.model) == (d, m)), None)
        boxes = box_figure_of(head, here) if head is not None else None
        if boxes is not None:
            specs.append(boxes)
    return specs


def _check_baseline(baseline: str, methods: list[str], collected: Collected, root: Path
                    ) -> None:
    """A baseline that no run folder names (a typo: ``CE``) is an error listing the methods;
    one whose runs have no results yet stays a warning (a study still under way), and so
    does the default ``ce`` where no run trained it (a folder of imported networks)."""
    if baseline in methods or baseline in {r.method for r in collected.runs}:
        return
    if baseline == ReportConfig.baseline:
        return
    near = [m for m in methods if m.lower() == baseline.lower()]
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise RbgError(f"unknown baseline method {baseline!r}{hint}; the methods under "
                   f"{root}: {', '.join(methods)}")


def _method_name(method: str, collected: Collected) -> str:
    """``method`` (the baseline, a claim's method) as the report names it; a run's recorded
    method id (``laplacian_gamma0.001``, ``noisy_sigma0.3``) is accepted where it names one
    configuration."""
    names = set(collected.results["method"])
    if method in names:
        return method
    matches = {r.method for r in collected.runs
               if r.record and r.record.get("method") == method and r.method in names}
    return matches.pop() if len(matches) == 1 else method
