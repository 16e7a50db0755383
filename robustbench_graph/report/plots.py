"""Draws the report's figure specs (:mod:`.figures`) fit for a paper and writes them.

* **Curves** (:func:`curve_figure`): x = the strength (the stronger perturbation to the
  right), y = the family's main metric; one line per method (median over networks) with its
  interquartile band over networks, every network as a dot (past :data:`DOTS_MAX` networks
  a 10-90% band instead), the baseline drawn black and dashed.
* **Per-image figures** a family declares: :func:`threshold_figure` (DeepFool's robust
  accuracy against ε) and :func:`grouped_figure` (curvature against noise survival).
* **Boxes** (:func:`box_figure`, in the style of Lassance et al., Figs. 4–6): one figure per
  dataset/model, one panel per headline setting; a box describes the pooled draws of a
  method (every noise draw of every network; descriptive only) and each dot is one network
  (jittered past :data:`DOTS_MAX`); the panels fill a grid without an almost empty row.

Methods keep one colour everywhere; axes are shared across methods within a panel; ``n``
(networks) is in each legend. Each figure is written as PNG (150 dpi) and SVG under
``plots/``. matplotlib is imported lazily and only its Agg canvas is used (no pyplot, no
global backend change).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..rundir.atomic import atomic_write
from .aggregate import select_rows
from .formatting import metric_axis, percent_scale
from .model import (
    BoxFigure,
    CurveFigure,
    FigureSpec,
    GroupedFigure,
    PlotFile,
    Report,
    ThresholdFigure,
)

if TYPE_CHECKING:  # annotations only (matplotlib is imported where a figure is drawn)
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 150
# Colour-blind-safe palette (Okabe–Ito) without black (the baseline's), cycled.
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9",
                            "#D55E00", "#F0E442")
BASELINE_COLOUR = "#000000"
PANEL_COLUMNS = 4
# Past this many networks a method's curve shows a 10-90% band instead of one dot each.
DOTS_MAX = 30


def method_colors(methods: list[str], baseline: str | None = None) -> dict[str, str]:
    """A fixed colour per method, by its position in the report's method order; the
    baseline is black."""
    others = [m for m in methods if m != baseline]
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(others)}
    if baseline in methods:
        colours[baseline] = BASELINE_COLOUR
    return colours


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _draw_curves(ax: Axes, x_of: dict[str, np.ndarray], y_of: dict[str, np.ndarray],
                 methods: list[str], colors: dict[str, str], baseline: str) -> None:
    """``y_of[method]``: (networks, strengths) values at ``x_of[method]``. Up to
    :data:`DOTS_MAX` networks a method shows each as a dot; past it, a lighter band of the
    10th-90th percentiles over networks replaces the dots (hundreds of dots per strength
    would cover the other methods)."""
    for m in methods:
        if m not in y_of:
            continue
        x, y = x_of[m], y_of[m]
        med = np.nanmedian(y, axis=0)
        lo, hi = np.nanquantile(y, 0.25, axis=0), np.nanquantile(y, 0.75, axis=0)
        is_base = m == baseline
        band = "; light band: 10–90%" if y.shape[0] > DOTS_MAX else ""
        label = f"{m} (n={y.shape[0]}{band})" + (" — baseline" if is_base else "")
        ax.plot(x, med, color=colors[m], lw=2.2 if is_base else 1.6,
                ls="--" if is_base else "-", marker="o", ms=3.5, label=label,
                zorder=4 if is_base else 3)
        ax.fill_between(x, lo, hi, color=colors[m], alpha=0.15, lw=0)
        if y.shape[0] > DOTS_MAX:
            p10, p90 = np.nanquantile(y, 0.1, axis=0), np.nanquantile(y, 0.9, axis=0)
            ax.fill_between(x, p10, p90, color=colors[m], alpha=0.07, lw=0.6,
                            edgecolor=colors[m], ls=":")
        else:  # one collection for every network of the method
            ax.scatter(np.tile(x, y.shape[0]), y.ravel(), s=9, color=colors[m], alpha=0.55,
                       lw=0, zorder=2)


def curve_figure(runs: pd.DataFrame, title: str, xlabel: str, ylabel: str, stronger: str,
                 methods: list[str], colors: dict[str, str], baseline: str,
                 scale: float = 1.0) -> Figure:
    """One curve figure from per-run values (columns ``method``, ``run_path``,
    ``param_value``, ``value``): the medians, interquartile bands and every network."""
    fig = _new_figure(6.4, 4.2)
    ax = fig.subplots()
    x_of, y_of = {}, {}
    for m in methods:
        g = runs[runs["method"] == m]
        if g.empty:
            continue
        wide = g.pivot_table(index="run_path", columns="param_value", values="value",
                             aggfunc="mean").sort_index(axis=1)
        x_of[m] = wide.columns.to_numpy(dtype="float64")
        y_of[m] = wide.to_numpy(dtype="float64") * scale
    _draw_curves(ax, x_of, y_of, methods, colors, baseline)
    if stronger == "lower":
        ax.invert_xaxis()
    _finish_curve(fig, ax, title, xlabel + (" (stronger →)" if stronger else ""), ylabel)
    return fig


def _finish_curve(fig: Figure, ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)


def panel_grid(panels: int) -> tuple[int, int]:
    """(columns, rows) for ``panels`` panels: at most :data:`PANEL_COLUMNS` a row, the rows
    as even as can be and no empty row (5 panels: 3 + 2, not 4 + 1)."""
    rows = max(1, math.ceil(panels / PANEL_COLUMNS))
    return max(1, math.ceil(panels / rows)), rows


def box_figure(results: pd.DataFrame, runs: pd.DataFrame, panels: list[tuple[str, dict]],
               title: str, methods: list[str], colors: dict[str, str]) -> Figure:
    """One panel per ``(label, selector)``: horizontal boxes of the pooled draws of each
    method that has values there, one dot per network. ``selector`` maps columns of
    ``results``/``runs`` to the values a panel takes (``param_value`` compared by value).

    Returns the Figure; each panel holds one box (a patch) per method with values.
    """
    ncols, nrows = panel_grid(len(panels))
    fig = _new_figure(3.7 * ncols, (0.45 * len(methods) + 1.5) * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (label, selector) in zip(axes.flat, panels, strict=False):
        draws, nets = select_rows(results, selector), select_rows(runs, selector)
        metric = str(selector["metric"])
        scale = percent_scale(metric)
        shown = [m for m in methods if (draws["method"] == m).any()]
        positions = {m: len(shown) - k for k, m in enumerate(shown)}
        if shown:
            values = [draws.loc[draws["method"] == m, "value"].dropna().to_numpy() * scale
                      for m in shown]
            parts = ax.boxplot(values, positions=[positions[m] for m in shown],
                               orientation="horizontal", patch_artist=True, widths=0.6,
                               showfliers=False)
            for box, m in zip(parts["boxes"], shown, strict=True):
                box.set_facecolor(colors[m])
                box.set_alpha(0.35)
            for median in parts["medians"]:
                median.set_color("black")
            for m in shown:
                v = nets.loc[nets["method"] == m, "value"].dropna().to_numpy() * scale
                many = v.size > DOTS_MAX  # small, jittered dots (a fixed jitter: reproducible)
                jitter = (np.random.default_rng(0).uniform(-0.2, 0.2, v.size) if many
                          else np.zeros(v.size))
                ax.scatter(v, positions[m] + jitter, s=5 if many else 16, color=colors[m],
                           edgecolor="black", lw=0.2 if many else 0.4,
                           alpha=0.5 if many else 1.0, zorder=3)
        ax.set_yticks([positions[m] for m in shown],
                      [f"{m} (n={int((nets['method'] == m).sum())})" for m in shown])
        ax.set_ylim(0.4, max(1, len(shown)) + 0.6)
        missing = [m for m in methods if m not in shown]
        if missing:
            ax.text(0.0, -0.28, "not measured: " + ", ".join(missing), transform=ax.transAxes,
                    fontsize=7, color="#555")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(metric_axis(metric), fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        fig.delaxes(ax)
    fig.suptitle(title + "\nboxes: every draw of every network pooled; dots: one network each",
                 fontsize=10)
    return fig


def _save(fig: Figure, plot_dir: Path, stem: str) -> tuple[Path, Path, bytes]:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    png_bytes = buffer.getvalue()
    png, svg = plot_dir / f"{stem}.png", plot_dir / f"{stem}.svg"
    atomic_write(png, lambda p, b=png_bytes: p.write_bytes(b))
    atomic_write(svg, lambda p, f=fig: f.savefig(p, format="svg"))
    return png, svg, png_bytes


def threshold_figure(spec: ThresholdFigure, colors: dict[str, str], baseline: str) -> Figure:
    """Lines: the median over networks at each x; bands: the range over networks (60
    points per network would crowd dots)."""
    fig = _new_figure(6.4, 4.2)
    ax = fig.subplots()
    for m in spec.methods:
        if m in spec.values:
            y = spec.values[m]
            ax.plot(spec.grid, np.median(y, axis=0), color=colors[m],
                    lw=2.2 if m == baseline else 1.6, ls="--" if m == baseline else "-",
                    label=f"{m} (n={y.shape[0]})" + (" — baseline" if m == baseline else ""))
            ax.fill_between(spec.grid, y.min(axis=0), y.max(axis=0), color=colors[m],
                            alpha=0.15, lw=0)
    _finish_curve(fig, ax, spec.title, spec.xlabel, spec.ylabel)
    return fig


def grouped_figure(spec: GroupedFigure, colors: dict[str, str], baseline: str) -> Figure:
    """One line per network through its groups; the legend gives each method's networks and
    the median of their statistic."""
    fig = _new_figure(6.4, 4.2)
    ax = fig.subplots()
    for m in spec.methods:
        for i, (groups, _stat) in enumerate(spec.lines.get(m, [])):
            stats = [s for _g, s in spec.lines[m] if not math.isnan(s)]
            label = None
            if i == 0:
                median = f"{float(np.median(stats)):+.2f}" if stats else "n/a"
                label = (f"{m} (n={len(spec.lines[m])}, median {spec.statistic} {median})"
                         + (" — baseline" if m == baseline else ""))
            ax.plot(groups[spec.x], groups[spec.y], marker="o", ms=3, color=colors[m],
                    lw=1.6 if m == baseline else 1.1, ls="--" if m == baseline else "-",
                    alpha=0.8, label=label)
    if spec.log_y and all(float(g[spec.y].min()) > 0 for ls in spec.lines.values()
                          for g, _s in ls):
        ax.set_yscale("log")
    _finish_curve(fig, ax, spec.title, spec.xlabel, spec.ylabel)
    return fig


def draw(spec: FigureSpec, report: Report, colors: dict[str, str]) -> Figure:
    """The matplotlib Figure of one spec."""
    if isinstance(spec, CurveFigure):
        return curve_figure(spec.data, spec.title, spec.xlabel, spec.ylabel, spec.stronger,
                            spec.methods, colors, report.baseline, spec.scale)
    if isinstance(spec, BoxFigure):
        return box_figure(report.results, report.networks, spec.panels, spec.title,
                          spec.methods, colors)
    if isinstance(spec, ThresholdFigure):
        return threshold_figure(spec, colors, report.baseline)
    if isinstance(spec, GroupedFigure):
        return grouped_figure(spec, colors, report.baseline)
    raise TypeError(f"no drawing for {type(spec).__name__}")


def write_plots(report: Report, out_dir: Path) -> list[PlotFile]:
    """Draw and write every figure of ``report`` (``report.figures``) under
    ``out_dir/plots`` as ``{stem}.png|svg``."""
    plot_dir = Path(out_dir) / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    colors = method_colors(report.methods, report.baseline)
    written = []
    for spec in report.figures:
        png, svg, png_bytes = _save(draw(spec, report, colors), plot_dir, spec.stem)
        written.append(PlotFile(spec.dataset, spec.model, spec.name, png, svg, png_bytes,
                                spec.kind, spec.caption))
    return written
