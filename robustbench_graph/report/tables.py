"""Table data for the terminal and the HTML page: the headline metric of each setting.

One :class:`Table` per dataset/model; methods are rows and perturbation settings are
columns. A cell reads ``median [q25–q75]`` (accuracies in percent) and is marked ``*`` when
its Holm-corrected difference from the baseline is significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from ..perturbations import PERTURBATIONS, family_class, metric_info
from .aggregate import base_metric, method_order, perturbation_rank, value_key

# Metrics shown in percent: those the families declare so.
PERCENT_METRICS: frozenset[str] = frozenset(
    m.name for e in PERTURBATIONS for m in e.factory.metrics if m.percent)


SHOWN_SNR_GAP = 0.1  # dB between target and realised SNR from which a label shows both


def headline_metric(perturbation: str) -> str:
    """The metric a family's table column shows (``accuracy`` for unknown families)."""
    return family_class(perturbation).headline if perturbation in PERTURBATIONS else "accuracy"


def lower_is_better(perturbation: str, metric: str) -> bool:
    info = metric_info(perturbation, metric)
    return info is not None and info.better == "lower"


def format_number(x: float) -> str:
    """A short, readable number (``0.1``, ``20``, ``1e-05``)."""
    return f"{x:g}"


def setting_label(perturbation: str, param: str, param_value: float, variant: str = "") -> str:
    """``clean``, ``gaussian snr_db=20``, ``fgsm-after-norm linf_eps=0.1``; a variant (other
    settings of the same setting) in brackets: ``gaussian snr_db=20 [draws=2]``."""
    extra = f" [{variant}]" if variant else ""
    if str(param) in ("none", "", "nan") or value_key(param_value) is None:
        return f"{perturbation}{extra}"
    return f"{perturbation} {param}={format_number(float(param_value))}{extra}"


def format_value(x: float, metric: str) -> str:
    """Percent with one decimal for accuracy-like metrics, three significant digits else
    (trailing zeros kept, e.g. ``2.30``)."""
    if math.isnan(x):
        return "–"
    return f"{100 * x:.1f}" if metric in PERCENT_METRICS else f"{x:#.3g}"


def metric_unit(metric: str) -> str:
    if metric in PERCENT_METRICS:
        return f"{metric} %"
    return "L2" if metric.endswith("_l2") else metric


@dataclass(frozen=True)
class Column:
    """One perturbation setting and the metric shown for it."""

    perturbation: str
    param: str
    param_value: float
    metric: str
    variant: str = ""
    realised_snr: float = math.nan  # the mean realised SNR where the param is a target SNR

    @property
    def label(self) -> str:
        text = setting_label(self.perturbation, self.param, self.param_value, self.variant)
        if (not math.isnan(self.realised_snr)
                and abs(self.realised_snr - self.param_value) >= SHOWN_SNR_GAP):
            text += f" (realised {self.realised_snr:.1f} dB)"
        return text

    @property
    def unit(self) -> str:
        return metric_unit(self.metric)


@dataclass(frozen=True)
class Cell:
    """Statistics of one method in one column, with its comparison to the baseline."""

    median: float
    q25: float
    q75: float
    n: int
    metric: str
    best: bool = False
    significant: bool = False
    p_holm: float = math.nan

    @property
    def text(self) -> str:
        """``median [q25–q75]`` plus ``*`` when significantly different from the baseline."""
        med, lo, hi = (format_value(x, self.metric) for x in (self.median, self.q25, self.q75))
        return f"{med} [{lo}–{hi}]" + ("*" if self.significant else "")


@dataclass
class Table:
    """The headline table of one dataset/model."""

    dataset: str
    model: str
    baseline: str
    methods: list[str]
    columns: list[Column]
    cells: dict[tuple[str, int], Cell] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.dataset} / {self.model}"

    def cell(self, method: str, column: int) -> Cell | None:
        return self.cells.get((method, column))


def _realised_snr(summary: pd.DataFrame) -> dict[tuple, float]:
    """The mean realised SNR over methods of each column whose param is a target SNR."""
    rows = summary[(summary["metric"] == "snr_db") & (summary["param"] == "snr_db")]
    out = {}
    for key, group in rows.groupby(["dataset", "model", "perturbation", "param", "param_value",
                                    "variant"], sort=False, dropna=False):
        d, m, p, q, v, var = key
        out[(d, m, p, q, value_key(v), var)] = float(group["mean"].mean())
    return out


def _significance(comparisons: pd.DataFrame) -> dict[tuple, tuple[bool, float]]:
    out = {}
    for r in comparisons.itertuples(index=False):
        key = (r.dataset, r.model, r.method, r.perturbation, r.param,
               value_key(r.param_value), r.variant, r.metric)
        out[key] = (bool(r.significant), float(r.p_holm))
    return out


def build_tables(summary: pd.DataFrame, comparisons: pd.DataFrame,
                 baseline: str = "ce") -> list[Table]:
    """Headline tables from the summary; best cells and significance marked."""
    signif = _significance(comparisons)
    head = summary[[headline_metric(p) == m
                    for p, m in zip(summary["perturbation"], summary["metric"], strict=True)]]
    realised = _realised_snr(summary)
    tables = []
    for (dataset, model), dm in head.groupby(["dataset", "model"], sort=True):
        settings = dm[["perturbation", "param", "param_value", "variant", "metric"]
                      ].drop_duplicates()
        columns = sorted(
            (Column(str(p), str(q), float(v), str(m), str(var),
                    realised.get((dataset, model, p, q, value_key(v), var), math.nan))
             for p, q, v, var, m in settings.itertuples(index=False)),
            key=lambda c: (perturbation_rank(c.perturbation), c.param,
                           -math.inf if value_key(c.param_value) is None else c.param_value,
                           c.variant))
        table = Table(str(dataset), str(model), baseline,
                      method_order(dm["method"], baseline), columns)
        index = {(r.method, r.perturbation, r.param, value_key(r.param_value), r.variant): r
                 for r in dm.itertuples(index=False)}
        for j, col in enumerate(columns):
            for method in table.methods:
                r = index.get((method, col.perturbation, col.param, value_key(col.param_value),
                               col.variant))
                if r is None or r.n == 0:
                    continue
                sig, p = signif.get((dataset, model, method, col.perturbation, col.param,
                                     value_key(col.param_value), col.variant, col.metric),
                                    (False, math.nan))
                table.cells[(method, j)] = Cell(float(r.median), float(r.q25), float(r.q75),
                                                int(r.n), col.metric, significant=sig, p_holm=p)
            mark_best(table, j)
        tables.append(table)
    return tables


def mark_best(table: Table | Any, j: int) -> None:
    """Mark the best cell(s) of column ``j`` of a table (a :class:`Table` or a headline:
    ``cells`` by (method, column) with ``median``, ``columns`` with perturbation and metric);
    a curve's area is judged by the direction of its metric."""
    cells = {m: c for (m, k), c in table.cells.items() if k == j}
    if not cells:
        return
    col = table.columns[j]
    sign = -1.0 if lower_is_better(col.perturbation, base_metric(col.metric)) else 1.0
    best = max(sign * c.median for c in cells.values())
    for method, c in cells.items():
        if sign * c.median == best:
            table.cells[(method, j)] = replace(c, best=True)
