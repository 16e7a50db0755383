"""Figures fit for a paper: curves over strength, box plots of the headline settings.

* **Curves** (:func:`curve_figure`): one figure per (dataset, model, perturbation) with a
  strength axis; x = the strength (the stronger perturbation to the right), y = the
  family's headline metric; one line per method (median over networks) with its
  interquartile band over networks, every network as a dot, the baseline drawn black and
  dashed. DeepFool's per-image distances give a robust-accuracy-vs-ε curve the same way.
* **Boxes** (:func:`box_figure`, in the style of Lassance et al., Figs. 4–6): one figure per
  dataset/model, one panel per headline setting; a box describes the pooled draws of a
  method (every noise draw of every network; descriptive only) and each dot is one network.

Methods keep one colour everywhere; axes are shared across methods within a panel; ``n``
(networks) is in each legend; labels are human (``Gaussian noise, SNR -5 dB``). Each figure
is written as PNG (150 dpi) and SVG under ``plots/``. matplotlib is imported lazily and only
its Agg canvas is used (no pyplot, no global backend change).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..io import atomic_write
from ..perturbations import PERTURBATIONS, family_class, family_title
from .aggregate import perturbation_rank, select_rows
from .tables import PERCENT_METRICS, headline_metric

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .build import Report
    from .headline import Headline

DPI = 150
# Colour-blind-safe palette (Okabe–Ito) without black (the baseline's), cycled.
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9",
                            "#D55E00", "#F0E442")
BASELINE_COLOUR = "#000000"
PANEL_COLUMNS = 4


@dataclass(frozen=True)
class PlotFile:
    """One written figure: its subject, kind (curve | box), file paths and PNG bytes."""

    dataset: str
    model: str
    perturbation: str
    png: Path
    svg: Path
    png_bytes: bytes
    kind: str = "curve"
    caption: str = ""


def method_colors(methods: list[str], baseline: str | None = None) -> dict[str, str]:
    """A fixed colour per method, by its position in the report's method order; the
    baseline is black."""
    others = [m for m in methods if m != baseline]
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(others)}
    if baseline in methods:
        colours[baseline] = BASELINE_COLOUR
    return colours


def metric_axis(metric: str) -> str:
    if metric in PERCENT_METRICS:
        return f"{metric.replace('_', ' ')} (%)"
    if metric == "mean_l2":
        return "DeepFool L2 distance (mean over images)"
    return metric.replace("_", " ")


def _scale(metric: str) -> float:
    return 100.0 if metric in PERCENT_METRICS else 1.0


def _strength(perturbation: str, param: str):  # noqa: ANN202
    from ..perturbations.base import Strength

    if perturbation in PERTURBATIONS:
        s = family_class(perturbation).strengths.get(param)
        if s is not None:
            return s
    return Strength(param)


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _draw_curves(ax: Axes, x_of: dict[str, np.ndarray], y_of: dict[str, np.ndarray],
                 methods: list[str], colors: dict[str, str], baseline: str) -> None:
    """``y_of[method]``: (networks, strengths) values at ``x_of[method]``."""
    for m in methods:
        if m not in y_of:
            continue
        x, y = x_of[m], y_of[m]
        med = np.nanmedian(y, axis=0)
        lo, hi = np.nanquantile(y, 0.25, axis=0), np.nanquantile(y, 0.75, axis=0)
        is_base = m == baseline
        label = f"{m} (n={y.shape[0]})" + (" — baseline" if is_base else "")
        ax.plot(x, med, color=colors[m], lw=2.2 if is_base else 1.6,
                ls="--" if is_base else "-", marker="o", ms=3.5, label=label,
                zorder=4 if is_base else 3)
        ax.fill_between(x, lo, hi, color=colors[m], alpha=0.15, lw=0)
        for row in y:
            ax.scatter(x, row, s=9, color=colors[m], alpha=0.55, lw=0, zorder=2)


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


def box_figure(results: pd.DataFrame, runs: pd.DataFrame, panels: list[tuple[str, dict]],
               title: str, methods: list[str], colors: dict[str, str]) -> Figure:
    """One panel per ``(label, selector)``: horizontal boxes of the pooled draws of each
    method that has values there, one dot per network. ``selector`` maps columns of
    ``results``/``runs`` to the values a panel takes (``param_value`` compared by value).

    Returns the Figure; each panel holds one box (a patch) per method with values.
    """
    ncols = min(PANEL_COLUMNS, max(1, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    fig = _new_figure(3.7 * ncols, (0.45 * len(methods) + 1.5) * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (label, selector) in zip(axes.flat, panels, strict=False):
        draws, nets = select_rows(results, selector), select_rows(runs, selector)
        metric = str(selector["metric"])
        scale = _scale(metric)
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
                ax.scatter(v, np.full(v.size, positions[m]), s=16, color=colors[m],
                           edgecolor="black", lw=0.4, zorder=3)
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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "x"


def _save(fig: Figure, plot_dir: Path, stem: str) -> tuple[Path, Path, bytes]:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    png_bytes = buffer.getvalue()
    png, svg = plot_dir / f"{stem}.png", plot_dir / f"{stem}.svg"
    atomic_write(png, lambda p, b=png_bytes: p.write_bytes(b))
    atomic_write(svg, lambda p, f=fig: f.savefig(p, format="svg"))
    return png, svg, png_bytes


def write_plots(report: Report, out_dir: Path) -> list[PlotFile]:
    """Draw and write every curve and box figure of ``report`` under ``out_dir/plots``.

    Files: ``{dataset}-{model}-{perturbation}[-{param}].png|svg`` (curves),
    ``{dataset}-{model}-deepfool-robust-accuracy``, ``{dataset}-{model}-curvature-survival``
    and ``{dataset}-{model}-headline-boxes``.
    """
    plot_dir = Path(out_dir) / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    colors = method_colors(report.methods, report.baseline)
    runs = report.networks
    results = report.results
    written: list[PlotFile] = []
    for (dataset, model), dm in runs.groupby(["dataset", "model"], sort=True):
        here = [m for m in report.methods if m in set(dm["method"])]
        for (p, param, variant), group in sorted(
                dm.groupby(["perturbation", "param", "variant"], sort=False),
                key=lambda kv: (perturbation_rank(str(kv[0][0])), str(kv[0][1]),
                                str(kv[0][2]))):
            metric = headline_metric(str(p))
            data = group[(group["metric"] == metric) & group["param_value"].notna()]
            if str(param) == "none" or data["param_value"].nunique() < 2:
                continue
            strength = _strength(str(p), str(param))
            name = family_title(str(p)) + (f" [{variant}]" if variant else "")
            fig = curve_figure(data, f"{dataset} / {model}: {name}",
                               strength.axis_label,
                               metric_axis(metric), strength.stronger, here, colors,
                               report.baseline, _scale(metric))
            stem = _slug(f"{dataset}-{model}-{p}-{param}"
                         + (f"-{data['settings'].iloc[0]}" if variant and "settings" in data
                            else (f"-{_slug(str(variant))}" if variant else "")))
            png, svg, png_bytes = _save(fig, plot_dir, stem)
            written.append(PlotFile(str(dataset), str(model), name, png, svg, png_bytes,
                                    "curve", f"{dataset} / {model}: {name}, "
                                    f"{metric_axis(metric)} over {strength.axis_label}"))
        here_results = results[(results["dataset"] == dataset) & (results["model"] == model)]
        for draw, suffix, name, caption in PER_IMAGE_FIGURES:
            fig = draw(here_results, here, colors, report.baseline, f"{dataset} / {model}")
            if fig is not None:
                png, svg, png_bytes = _save(fig, plot_dir, _slug(f"{dataset}-{model}-{suffix}"))
                written.append(PlotFile(str(dataset), str(model), name, png, svg, png_bytes,
                                        "curve", f"{dataset} / {model}: {caption}"))
        head = next((h for h in report.headlines
                     if (h.dataset, h.model) == (str(dataset), str(model))), None)
        if head is not None:
            fig = _headline_boxes(results, dm, head, here, colors)
            if fig is not None:
                png, svg, png_bytes = _save(fig, plot_dir,
                                            _slug(f"{dataset}-{model}-headline-boxes"))
                written.append(PlotFile(str(dataset), str(model), "headline settings", png,
                                        svg, png_bytes, "box",
                                        f"{dataset} / {model}: the headline settings"))
    return written


def _headline_boxes(results: pd.DataFrame, runs: pd.DataFrame, head: Headline,
                    methods: list[str], colors: dict[str, str]) -> Figure | None:
    panels = []
    for col in head.columns:
        if col.is_area:
            continue
        panels.append((col.label, {"dataset": head.dataset, "model": head.model,
                                   "perturbation": col.perturbation, "param": col.param,
                                   "param_value": col.param_value, "variant": col.variant,
                                   "metric": col.metric}))
    if not panels:
        return None
    return box_figure(results, runs, panels, f"{head.dataset} / {head.model}", methods,
                      colors)


def _deepfool_curve(results: pd.DataFrame, methods: list[str], colors: dict[str, str],
                    baseline: str, title: str) -> Figure | None:
    """Robust accuracy at each L2 distance ε from DeepFool's per-image distances (an image
    counts as robust at ε while its minimal adversarial distance exceeds ε)."""
    try:
        from ..per_image import read_per_image
    except ImportError:  # pragma: no cover - older layout
        return None
    cells = results[(results["perturbation"] == "deepfool") & (results["param_value"] == 2.0)]
    cells = cells[["method", "run_path", "param", "param_value", "settings"]].drop_duplicates()
    distances: dict[str, list[np.ndarray]] = {}
    for r in cells.itertuples(index=False):
        table = read_per_image(Path(r.run_path), "deepfool", str(r.param), float(r.param_value),
                               str(r.settings))
        if table is not None and len(table):
            distances.setdefault(r.method, []).append(
                table["distance"].to_numpy(dtype="float64"))
    if not distances:
        return None
    finite = np.concatenate([d[np.isfinite(d)] for ds in distances.values() for d in ds])
    top = float(np.quantile(finite, 0.99)) if finite.size else 1.0
    grid = np.linspace(0.0, max(top, 1e-6) * 1.05, 60)
    y_of = {m: np.array([[100.0 * float(np.mean(d > e)) for e in grid] for d in ds])
            for m, ds in distances.items()}
    fig = _new_figure(6.4, 4.2)
    ax = fig.subplots()
    for m in methods:  # lines only (60 points per network would crowd dots)
        if m in y_of:
            y = y_of[m]
            ax.plot(grid, np.median(y, axis=0), color=colors[m], lw=2.2 if m == baseline
                    else 1.6, ls="--" if m == baseline else "-",
                    label=f"{m} (n={y.shape[0]})" + (" — baseline" if m == baseline else ""))
            ax.fill_between(grid, y.min(axis=0), y.max(axis=0), color=colors[m], alpha=0.15,
                            lw=0)
    _finish_curve(fig, ax, f"{title}: DeepFool (L2), band: range over networks",
                  "L2 distance ε (stronger →)", "robust accuracy (%)")
    return fig


def _curvature_survival(results: pd.DataFrame, methods: list[str], colors: dict[str, str],
                        baseline: str, title: str) -> Figure | None:
    """The noise paper's figure: per network, the mean κ of the images grouped by how many
    noisy copies they survived, against that count (one line per network; the legend gives
    the median Pearson r of each method's networks)."""
    from ..per_image import read_per_image
    from ..perturbations.curvature import group_correlation

    cells = results[(results["perturbation"] == "curvature")
                    & (results["metric"] == "kappa_median")]
    cells = cells[["method", "run_path", "param", "param_value", "settings"]].drop_duplicates()
    lines: dict[str, list[tuple[pd.DataFrame, float]]] = {}
    for r in cells.itertuples(index=False):
        table = read_per_image(Path(r.run_path), "curvature", str(r.param),
                               float(r.param_value), str(r.settings), ("kappa", "survived"))
        if table is not None and table["survived"].nunique() > 1:  # (noise_draws=0: none)
            # r as results.csv has it (the same function, on the same per-image values)
            pearson, groups = group_correlation(table["survived"].to_numpy(),
                                                table["kappa"].to_numpy(dtype="float64"))
            lines.setdefault(r.method, []).append((groups, pearson))
    if not lines:
        return None
    fig = _new_figure(6.4, 4.2)
    ax = fig.subplots()
    for m in methods:
        for i, (groups, _r) in enumerate(lines.get(m, [])):
            rs = [r for _g, r in lines[m] if not math.isnan(r)]
            label = None
            if i == 0:
                median = f"{float(np.median(rs)):+.2f}" if rs else "n/a"
                label = (f"{m} (n={len(lines[m])}, median r {median})"
                         + (" — baseline" if m == baseline else ""))
            ax.plot(groups["survived"], groups["kappa"], marker="o", ms=3, color=colors[m],
                    lw=1.6 if m == baseline else 1.1, ls="--" if m == baseline else "-",
                    alpha=0.8, label=label)
    if all(float(g["kappa"].min()) > 0 for ls in lines.values() for g, _r in ls):
        ax.set_yscale("log")
    _finish_curve(fig, ax, f"{title}: input curvature against noise survival",
                  "noisy copies classified correctly", "mean κ of the group")
    return fig


# The figures drawn from per-image side files: (drawing, file suffix, name, caption).
PER_IMAGE_FIGURES = (
    (_deepfool_curve, "deepfool-robust-accuracy", "DeepFool",
     "robust accuracy against the DeepFool L2 distance (from its per-image distances)"),
    (_curvature_survival, "curvature-survival", "Input curvature",
     "mean input curvature of the images grouped by the noisy copies they survive, and the "
     "Pearson r per network"),
)
