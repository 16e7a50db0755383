"""The summary tables families declare (:class:`ErrorSummary`): per method, the mean error of
each of the family's params over its values (from ``from_value`` on: the common corruptions'
severities 1-5, severity 0 being the clean images), the mean over the params and, where the
report has its baseline, the relative error (the mCE; docs/perturbations.md#corruptions).

Per network: ``E_c = mean over values of (1 - metric)``, ``mean = mean over c of E_c``,
``mCE = sum_c E_c / sum_c E_c(baseline)``, the baseline's ``E_c`` being its median over its
networks (so the baseline's own mCE is about 1). Not normalised by AlexNet's errors, as
ImageNet-C's mCE is (Hendrycks & Dietterich, ICLR 2019): it is relative to the report's
baseline method. A cell holds the median [q25-q75] over networks; bold (``best``): the lowest.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from ..perturbations.report_extras import ErrorSummary
from .aggregate import method_order
from .declared import declaring
from .formatting import family_title
from .model import Table, TableCell, TableColumn

RELATIVE = "relative"  # the metric name of the relative-error column (a ratio)


def _span(levels: list[int]) -> str:
    """``1-5`` for consecutive values, else ``1, 3``."""
    if levels and levels == list(range(levels[0], levels[-1] + 1)) and len(levels) > 1:
        return f"{levels[0]}-{levels[-1]}"
    return ", ".join(map(str, levels))


def _stats(values: np.ndarray, metric: str) -> TableCell | None:
    values = values[~np.isnan(values)]
    if not values.size:
        return None
    q25, med, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    return TableCell(float(med), float(q25), float(q75), int(values.size), metric)


def summary_tables(runs: pd.DataFrame | None, baseline: str) -> list[Table]:
    """One table per (dataset, model, declaring family, variant), from the per-network values
    (``networks.csv``)."""
    if runs is None or runs.empty:
        return []
    declared = dict(declaring(ErrorSummary))
    tables: list[Table] = []
    for family, decl in sorted(declared.items()):
        rows = runs[(runs["perturbation"] == family) & (runs["metric"] == decl.metric)
                    & (runs["param_value"] >= decl.from_value)]
        tables += [_table(key, group, decl, baseline)
                   for key, group in rows.groupby(["dataset", "model", "perturbation",
                                                   "variant"], sort=True, dropna=False)]
    return sorted(tables, key=lambda t: (t.dataset, t.model, t.columns[0].perturbation,
                                         t.columns[0].variant))


def _table(key: tuple, group: pd.DataFrame, decl: ErrorSummary, baseline: str) -> Table:
    dataset, model, family, variant = key
    group = group.assign(error=1.0 - group["value"].astype("float64"))
    # Per network and param: the mean error over the values.
    per = group.pivot_table(index=["method", "run_path"], columns="param", values="error",
                            aggfunc="mean")
    order = list(dict.fromkeys(group["param"]))  # the family's order of params
    per = per[[c for c in order if c in per.columns]]
    methods = method_order(group["method"], baseline)
    var = "" if variant is None or (isinstance(variant, float) and math.isnan(variant)) \
        else str(variant)

    def column(param: str, metric: str, label: str) -> TableColumn:
        unit = "error %" if metric == decl.metric else "ratio"
        return TableColumn(str(family), param, math.nan, metric, var, label, unit)
    columns = [column(c, decl.metric, c.replace("_", " ")) for c in per.columns]
    columns.append(column("mean", decl.metric, f"mean over {decl.params}"))
    mean = per.mean(axis=1, skipna=False)
    base = per.xs(baseline, level="method") if baseline in methods else None
    reference = base.median(axis=0) if base is not None else None
    if reference is not None and reference.notna().all() and reference.sum() > 0:
        columns.append(column(decl.relative, RELATIVE,
                              f"{decl.relative} (relative to {baseline})"))
        # Over the same params as the baseline's: a network missing one has none.
        relative = per.sum(axis=1, skipna=False) / float(reference.sum())
    else:
        relative = None
    levels = sorted({int(v) for v in group["param_value"]})
    shown = f" [{var}]" if var else ""
    table = Table(str(dataset), str(model), baseline, methods, columns,
                  name=f"{family_title(str(family))}{shown}, mean error over {decl.values} "
                       f"{_span(levels)}")
    for method in methods:
        if method not in per.index.get_level_values("method"):
            continue
        values = [per.xs(method, level="method")[c].to_numpy(dtype="float64")
                  for c in per.columns]
        values.append(mean.xs(method, level="method").to_numpy(dtype="float64"))
        if relative is not None:
            values.append(relative.xs(method, level="method").to_numpy(dtype="float64"))
        for j, (col, v) in enumerate(zip(columns, values, strict=True)):
            cell = _stats(v, col.metric)
            if cell is not None:
                table.cells[(method, j)] = cell
    for j in range(len(columns)):
        cells = {m: c for (m, k), c in table.cells.items() if k == j}
        if cells:
            low = min(c.median for c in cells.values())
            for m, c in cells.items():
                if c.median == low:
                    table.cells[(m, j)] = replace(c, best=True)
    return table
