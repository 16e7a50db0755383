"""Which figures a report draws and the numbers behind them, as :mod:`.model` figure specs
(:mod:`.plots` draws them):

* a curve per (dataset, model, perturbation, param, variant) swept over 2+ strengths: the
  family's main metric over the strength, per network;
* each family's declared per-image figures (:class:`PerImageFigure`), from the per-image
  tables :func:`.collect.per_image_tables` read: a :class:`ThresholdCurve` (the percentage of
  each network's images whose value exceeds x, over a grid of x) or :class:`GroupedLines` (the
  family's grouping function on each network's images);
* a box figure per dataset/model of its headline settings.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..perturbations.report_extras import GroupedLines, PerImageFigure, ThresholdCurve
from .aggregate import perturbation_rank
from .collect import PerImageTable
from .declared import main_metric
from .formatting import axis_label, family_title, metric_axis, percent_scale
from .model import (
    BoxFigure,
    CurveFigure,
    FigureSpec,
    GroupedFigure,
    Headline,
    ThresholdFigure,
)


def slug(text: str) -> str:
    """``text`` as a file name stem."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "x"


def curve_figures(dm: pd.DataFrame, dataset: str, model: str, methods: list[str]
                  ) -> list[CurveFigure]:
    """The curves of one dataset/model from its per-run values ``dm``."""
    out = []
    for (p, param, variant), group in sorted(
            dm.groupby(["perturbation", "param", "variant"], sort=False),
            key=lambda kv: (perturbation_rank(str(kv[0][0])), str(kv[0][1]), str(kv[0][2]))):
        metric = main_metric(str(p))
        data = group[(group["metric"] == metric) & group["param_value"].notna()]
        if str(param) == "none" or data["param_value"].nunique() < 2:
            continue
        xlabel, stronger = axis_label(str(p), str(param))
        name = family_title(str(p)) + (f" [{variant}]" if variant else "")
        stem = slug(f"{dataset}-{model}-{p}-{param}" + (f"-{slug(str(variant))}" if variant
                                                         else ""))
        out.append(CurveFigure(
            dataset, model, stem, name, f"{dataset} / {model}: {name}, {metric_axis(metric)} "
            f"over {xlabel}", "curve", methods, f"{dataset} / {model}: {name}", xlabel,
            metric_axis(metric), stronger, percent_scale(metric), data))
    return out


def box_figure_of(head: Headline, methods: list[str]) -> BoxFigure | None:
    """The boxes of a headline's settings (its curves' areas left out)."""
    panels = [(col.label, {"dataset": head.dataset, "model": head.model,
                           "perturbation": col.perturbation, "param": col.param,
                           "param_value": col.param_value, "variant": col.variant,
                           "metric": col.metric})
              for col in head.columns if not col.is_area]
    if not panels:
        return None
    d, m = head.dataset, head.model
    return BoxFigure(d, m, slug(f"{d}-{m}-headline-boxes"), "headline settings",
                     f"{d} / {m}: the headline settings", "box", methods, f"{d} / {m}", panels)


def per_image_figure(fig: PerImageFigure, tables: list[PerImageTable], dataset: str,
                     model: str, methods: list[str]) -> FigureSpec | None:
    """One declared per-image figure of one dataset/model (None without values)."""
    head = dict(dataset=dataset, model=model, stem=slug(f"{dataset}-{model}-{fig.suffix}"),
                name=fig.name, caption=f"{dataset} / {model}: {fig.caption}", kind="curve",
                methods=methods, title=f"{dataset} / {model}: {fig.title}",
                xlabel=fig.drawing.xlabel, ylabel=fig.drawing.ylabel)
    if isinstance(fig.drawing, ThresholdCurve):
        grid, values = _thresholds(fig.drawing, tables)
        return ThresholdFigure(**head, grid=grid, values=values) if values else None
    lines = _grouped(fig.drawing, tables)
    if not lines:
        return None
    return GroupedFigure(**head, x=fig.drawing.x, y=fig.drawing.y,
                         statistic=fig.drawing.statistic, log_y=fig.drawing.log_y, lines=lines)


def _thresholds(drawing: ThresholdCurve, tables: list[PerImageTable]
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    values: dict[str, list[np.ndarray]] = {}
    for t in tables:
        if len(t.table):
            values.setdefault(t.method, []).append(
                t.table[drawing.value].to_numpy(dtype="float64"))
    if not values:
        return np.zeros(0), {}
    finite = np.concatenate([d[np.isfinite(d)] for ds in values.values() for d in ds])
    top = float(np.quantile(finite, 0.99)) if finite.size else 1.0
    grid = np.linspace(0.0, max(top, 1e-6) * 1.05, drawing.points)
    return grid, {m: np.array([[100.0 * float(np.mean(d > e)) for e in grid] for d in ds])
                  for m, ds in values.items()}


def _grouped(drawing: GroupedLines, tables: list[PerImageTable]
             ) -> dict[str, list[tuple[pd.DataFrame, float]]]:
    lines: dict[str, list[tuple[pd.DataFrame, float]]] = {}
    for t in tables:
        if t.table[drawing.x].nunique() > 1:  # a single value: nothing to draw a line through
            statistic, groups = drawing.groups(t.table[drawing.x].to_numpy(),
                                               t.table[drawing.y].to_numpy(dtype="float64"))
            lines.setdefault(t.method, []).append((groups, statistic))
    return lines
