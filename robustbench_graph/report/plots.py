"""Box plots in the style of Lassance et al. (Figs. 4–6).

One figure per (dataset, model, perturbation family), one panel per setting of that family
(e.g. one per SNR), one horizontal box per method with the same method order (baseline on
top) and colours in every panel and figure. Accuracies are drawn in percent, DeepFool in L2.
Each figure is written as PNG and SVG under ``plots/``. matplotlib is imported lazily and
only its Agg canvas is used (no pyplot, no global backend change).
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
from .aggregate import perturbation_rank, value_key
from .tables import PERCENT_METRICS, headline_metric, setting_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PANEL_COLUMNS = 4
# Colour-blind-safe palette (Okabe–Ito), cycled when there are more methods.
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9",
                            "#D55E00", "#F0E442", "#000000")


@dataclass(frozen=True)
class PlotFile:
    """One written figure: its subject, file paths and PNG bytes (for embedding)."""

    dataset: str
    model: str
    perturbation: str
    png: Path
    svg: Path
    png_bytes: bytes


def method_colors(methods: list[str]) -> dict[str, str]:
    """A fixed colour per method, by its position in the report's method order."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}


def axis_label(metric: str) -> str:
    if metric in PERCENT_METRICS:
        return f"{metric} (%)"
    if metric == "mean_l2":
        return "DeepFool L2 (mean over images)"
    return metric


def box_figure(data: pd.DataFrame, title: str, methods: list[str],
               colors: dict[str, str]) -> Figure:
    """Draw one figure from the rows of one family's headline metric.

    Args:
        data: results rows (one dataset, model and perturbation; one metric).
        title: the figure title.
        methods: every method of the report, in display order (top to bottom).
        colors: the colour of each method.

    Returns:
        The Figure; each panel holds one box (a patch) per method that has values there.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric = str(data["metric"].iloc[0])
    scale = 100.0 if metric in PERCENT_METRICS else 1.0
    settings = sorted({(str(p), value_key(v)) for p, v in zip(data["param"], data["param_value"],
                                                                strict=True)},
                      key=lambda s: (s[0], -math.inf if s[1] is None else s[1]))
    ncols = min(PANEL_COLUMNS, len(settings))
    nrows = math.ceil(len(settings) / ncols)
    fig = Figure(figsize=(3.6 * ncols, (0.42 * len(methods) + 1.3) * nrows + 0.4),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    positions = {m: len(methods) - i for i, m in enumerate(methods)}
    keys = [value_key(v) for v in data["param_value"]]
    for i, (ax, (param, value)) in enumerate(zip(axes.flat, settings, strict=False)):
        mask = (data["param"].astype(str) == param).to_numpy() & np.array(
            [k == value for k in keys], dtype=bool)
        panel = data[mask]
        shown = []
        for m in methods:
            v = panel.loc[panel["method"] == m, "value"].to_numpy(dtype="float64")
            v = v[~np.isnan(v)] * scale
            if v.size:
                shown.append((m, v))
        if shown:
            parts = ax.boxplot([v for _, v in shown], positions=[positions[m] for m, _ in shown],
                               orientation="horizontal", patch_artist=True, widths=0.6,
                               flierprops={"markersize": 3, "alpha": 0.6})
            for box, (m, _) in zip(parts["boxes"], shown, strict=True):
                box.set_facecolor(colors[m])
                box.set_alpha(0.75)
            for median in parts["medians"]:
                median.set_color("black")
        ax.set_yticks([positions[m] for m in methods], methods)
        ax.tick_params(axis="y", labelleft=i % ncols == 0)
        ax.set_ylim(0.4, len(methods) + 0.6)
        perturbation = str(data["perturbation"].iloc[0])
        ax.set_title(setting_label(perturbation, param, math.nan if value is None else value),
                     fontsize=9)
        ax.set_xlabel(axis_label(metric), fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(settings):]:
        fig.delaxes(ax)
    fig.suptitle(title, fontsize=11)
    return fig


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "x"


def write_plots(results: pd.DataFrame, methods: list[str], out_dir: Path) -> list[PlotFile]:
    """Draw and write every (dataset, model, perturbation) figure under ``out_dir/plots``.

    ``methods`` is the report's method order; a figure shows the methods of its
    dataset/model in that order, each in the same colour everywhere.

    Files are named ``{dataset}-{model}-{perturbation}.png`` / ``.svg``; families without
    their headline metric (:func:`.tables.headline_metric`) are not drawn.
    """
    plot_dir = Path(out_dir) / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    colors = method_colors(methods)
    written: list[PlotFile] = []
    groups = results.groupby(["dataset", "model", "perturbation", "variant"], sort=False)
    for dataset, model, perturbation, variant in sorted(
            groups.groups, key=lambda k: (str(k[0]), str(k[1]), perturbation_rank(str(k[2])),
                                          str(k[3]))):
        group = groups.get_group((dataset, model, perturbation, variant))
        data = group[group["metric"] == headline_metric(str(perturbation))]
        if data.empty:
            continue
        here = set(results.loc[(results["dataset"] == dataset) & (results["model"] == model),
                               "method"])
        name = f"{perturbation} [{variant}]" if variant else str(perturbation)
        fig = box_figure(data, f"{dataset} / {model}: {name}",
                         [m for m in methods if m in here], colors)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        png_bytes = buffer.getvalue()
        stem = _slug(f"{dataset}-{model}-{perturbation}"
                     + (f"-{data['settings'].iloc[0]}" if variant else ""))
        png, svg = plot_dir / f"{stem}.png", plot_dir / f"{stem}.svg"
        atomic_write(png, lambda p, b=png_bytes: p.write_bytes(b))
        atomic_write(svg, lambda p, f=fig: f.savefig(p, format="svg"))
        written.append(PlotFile(str(dataset), str(model), name, png, svg,
                                png_bytes))
    return written
