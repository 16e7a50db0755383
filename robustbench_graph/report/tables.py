"""Table data for the terminal and the HTML page: the headline metric of each setting.

One :class:`Table` per dataset/model; methods are rows and perturbation settings are
columns. A cell reads ``median [q25–q75]`` (accuracies in percent) and is marked ``*`` when
its Holm-corrected difference from the baseline is significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import pandas as pd

from .aggregate import method_order, perturbation_rank, value_key

# The metric shown for a perturbation family when it has several; otherwise "accuracy".
HEADLINE: dict[str, str] = {"deepfool": "mean_l2"}
PERCENT_METRICS: frozenset[str] = frozenset({"accuracy", "success_rate"})
# Higher is better for accuracy and for DeepFool L2 distances; lower for the success rate.
LOWER_IS_BETTER: frozenset[str] = frozenset({"success_rate"})


def headline_metric(perturbation: str) -> str:
    return HEADLINE.get(perturbation, "accuracy")


def format_number(x: float) -> str:
    """A short, readable number (``0.1``, ``20``, ``1e-05``)."""
    return f"{x:g}"


def setting_label(perturbation: str, param: str, param_value: float) -> str:
    """``clean``, ``gaussian snr_db=20``, ``fgsm-after-norm linf_eps=0.1``."""
    if str(param) in ("none", "", "nan") or value_key(param_value) is None:
        return str(perturbation)
    return f"{perturbation} {param}={format_number(float(param_value))}"


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

    @property
    def label(self) -> str:
        return setting_label(self.perturbation, self.param, self.param_value)

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


def _significance(comparisons: pd.DataFrame) -> dict[tuple, tuple[bool, float]]:
    out = {}
    for r in comparisons.itertuples(index=False):
        key = (r.dataset, r.model, r.method, r.perturbation, r.param,
               value_key(r.param_value), r.metric)
        out[key] = (bool(r.significant), float(r.p_holm))
    return out


def build_tables(summary: pd.DataFrame, comparisons: pd.DataFrame,
                 baseline: str = "ce") -> list[Table]:
    """Headline tables from the summary; best cells and significance marked."""
    signif = _significance(comparisons)
    head = summary[[headline_metric(p) == m
                    for p, m in zip(summary["perturbation"], summary["metric"], strict=True)]]
    tables = []
    for (dataset, model), dm in head.groupby(["dataset", "model"], sort=True):
        settings = dm[["perturbation", "param", "param_value", "metric"]].drop_duplicates()
        columns = sorted(
            (Column(str(p), str(q), float(v), str(m))
             for p, q, v, m in settings.itertuples(index=False)),
            key=lambda c: (perturbation_rank(c.perturbation), c.param,
                           -math.inf if value_key(c.param_value) is None else c.param_value))
        table = Table(str(dataset), str(model), baseline,
                      method_order(dm["method"], baseline), columns)
        index = {(r.method, r.perturbation, r.param, value_key(r.param_value)): r
                 for r in dm.itertuples(index=False)}
        for j, col in enumerate(columns):
            for method in table.methods:
                r = index.get((method, col.perturbation, col.param, value_key(col.param_value)))
                if r is None or r.n == 0:
                    continue
                sig, p = signif.get((dataset, model, method, col.perturbation, col.param,
                                     value_key(col.param_value), col.metric), (False, math.nan))
                table.cells[(method, j)] = Cell(float(r.median), float(r.q25), float(r.q75),
                                                int(r.n), col.metric, significant=sig, p_holm=p)
            _mark_best(table, j)
        tables.append(table)
    return tables


def _mark_best(table: Table, j: int) -> None:
    cells = {m: c for (m, k), c in table.cells.items() if k == j}
    if not cells:
        return
    sign = -1.0 if table.columns[j].metric in LOWER_IS_BETTER else 1.0
    best = max(sign * c.median for c in cells.values())
    for method, c in cells.items():
        if sign * c.median == best:
            table.cells[(method, j)] = replace(c, best=True)
