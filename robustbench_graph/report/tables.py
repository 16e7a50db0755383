"""The every-setting tables: one :class:`.model.Table` per dataset/model, methods as rows and
perturbation settings as columns, each family shown by its main metric. A cell reads
``median [q25–q75]`` over networks (accuracies in percent) and is marked ``*`` when its
Holm-corrected difference from the baseline is significant.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from .aggregate import base_metric, method_order, perturbation_rank, value_key
from .declared import lower_is_better, main_metric, realised
from .formatting import column_label, metric_unit
from .model import Headline, Table, TableCell, TableColumn


def _realised_values(summary: pd.DataFrame) -> dict[tuple, float]:
    """The mean realised value over methods of each column whose param is a target the
    family declares realised by a metric (:class:`RealisedValue`)."""
    out = {}
    for key, group in summary.groupby(["dataset", "model", "perturbation", "param",
                                       "param_value", "variant", "metric"],
                                      sort=False, dropna=False):
        d, m, p, q, v, var, metric = key
        link = realised(str(p), str(q))
        if link is not None and link.metric == metric:
            out[(d, m, p, q, value_key(v), var)] = float(group["mean"].mean())
    return out


def _significance(comparisons: pd.DataFrame) -> dict[tuple, tuple[bool, float]]:
    out = {}
    for r in comparisons.itertuples(index=False):
        key = (r.dataset, r.model, r.method, r.perturbation, r.param,
               value_key(r.param_value), r.variant, r.metric)
        out[key] = (bool(r.significant), float(r.p_holm))
    return out


def _column(perturbation: str, param: str, value: float, metric: str, variant: str,
            realised_value: float) -> TableColumn:
    return TableColumn(perturbation, param, value, metric, variant,
                       column_label(perturbation, param, value, variant, realised_value),
                       metric_unit(metric))


def build_tables(summary: pd.DataFrame, comparisons: pd.DataFrame, baseline: str
                 ) -> list[Table]:
    """Every-setting tables from the summary; best cells and significance marked."""
    signif = _significance(comparisons)
    shown = summary[[main_metric(p) == m
                     for p, m in zip(summary["perturbation"], summary["metric"], strict=True)]]
    realised_values = _realised_values(summary)
    tables = []
    for (dataset, model), dm in shown.groupby(["dataset", "model"], sort=True):
        settings = dm[["perturbation", "param", "param_value", "variant", "metric"]
                      ].drop_duplicates()
        columns = sorted(
            (_column(str(p), str(q), float(v), str(m), str(var),
                     realised_values.get((dataset, model, p, q, value_key(v), var), math.nan))
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
                table.cells[(method, j)] = TableCell(float(r.median), float(r.q25),
                                                     float(r.q75), int(r.n), col.metric,
                                                     significant=sig, p_holm=p)
            mark_best(table, j)
        tables.append(table)
    return tables


def mark_best(table: Table | Headline, j: int) -> None:
    """Mark the best cell(s) of column ``j`` of a table or headline; a curve's area is judged
    by the direction of its metric."""
    cells = {m: c for (m, k), c in table.cells.items() if k == j}
    if not cells:
        return
    col = table.columns[j]
    sign = -1.0 if lower_is_better(col.perturbation, base_metric(col.metric)) else 1.0
    best = max(sign * c.median for c in cells.values())
    for method, c in cells.items():
        if sign * c.median == best:
            table.cells[(method, j)] = replace(c, best=True)  # type: ignore[index]
