"""The common-corruption summary (docs/perturbations.md#corruptions): per method, the mean
error of each corruption over its severities (1-5; severity 0, the clean images, left out),
the mean over corruptions and, where the report has its baseline, the mCE.

Per network: ``E_c = mean over severities of (1 - accuracy)``, ``mean = mean over c of E_c``,
``mCE = sum_c E_c / sum_c E_c(baseline)``, the baseline's ``E_c`` being its median over its
networks (so the baseline's own mCE is about 1). Not normalised by AlexNet's errors, as
ImageNet-C's mCE is: it is relative to the report's baseline method. A cell holds the median
[q25-q75] over networks; bold (``best``): the lowest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..perturbations import family_title
from .aggregate import method_order
from .tables import Cell, Column, Table

FAMILIES = ("mnist-c", "corruptions")
ERROR = "accuracy"  # formatted as a percentage, as accuracies are
MCE = "mce"


@dataclass(frozen=True)
class SummaryColumn(Column):
    """A column of the corruption summary: a corruption's mean error, the mean, or mCE."""

    text: str = ""

    @property
    def label(self) -> str:
        return self.text

    @property
    def unit(self) -> str:
        return "error %" if self.metric == ERROR else "ratio"


@dataclass
class CorruptionTable(Table):
    """The corruption summary of one family on one dataset/model."""

    family: str = ""
    severities: str = "1-5"

    @property
    def title(self) -> str:
        variant = f" [{self.columns[0].variant}]" if self.columns and self.columns[0].variant \
            else ""
        return (f"{self.dataset} / {self.model}: {family_title(self.family)}{variant}, mean "
                f"error over severities {self.severities}")


def _span(levels: list[int]) -> str:
    """``1-5`` for consecutive severities, else ``1, 3``."""
    if levels and levels == list(range(levels[0], levels[-1] + 1)) and len(levels) > 1:
        return f"{levels[0]}-{levels[-1]}"
    return ", ".join(map(str, levels))


def _stats(values: np.ndarray, metric: str) -> Cell | None:
    values = values[~np.isnan(values)]
    if not values.size:
        return None
    q25, med, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    return Cell(float(med), float(q25), float(q75), int(values.size), metric)


def corruption_tables(runs: pd.DataFrame | None, baseline: str) -> list[Table]:
    """One :class:`CorruptionTable` per (dataset, model, family, variant) with corruption
    results, from the per-network values (``networks.csv``)."""
    if runs is None or runs.empty:
        return []
    rows = runs[runs["perturbation"].isin(FAMILIES) & (runs["metric"] == "accuracy")
                & (runs["param_value"] >= 1)]
    tables: list[Table] = []
    for (dataset, model, family, variant), group in rows.groupby(
            ["dataset", "model", "perturbation", "variant"], sort=True, dropna=False):
        group = group.assign(error=1.0 - group["value"].astype("float64"))
        # Per network and corruption: the mean error over severities.
        per = group.pivot_table(index=["method", "run_path"], columns="param", values="error",
                                aggfunc="mean")
        order = list(dict.fromkeys(group["param"]))  # the family's order of corruptions
        per = per[[c for c in order if c in per.columns]]
        methods = method_order(group["method"], baseline)
        var = "" if variant is None or (isinstance(variant, float) and math.isnan(variant)) \
            else str(variant)
        columns: list[Column] = [
            SummaryColumn(str(family), c, math.nan, ERROR, var, text=c.replace("_", " "))
            for c in per.columns]
        columns.append(SummaryColumn(str(family), "mean", math.nan, ERROR, var,
                                     text="mean over corruptions"))
        mean = per.mean(axis=1, skipna=False)
        base = per.xs(baseline, level="method") if baseline in methods else None
        reference = base.median(axis=0) if base is not None else None
        if reference is not None and reference.notna().all() and reference.sum() > 0:
            columns.append(SummaryColumn(str(family), "mCE", math.nan, MCE, var,
                                         text=f"mCE (relative to {baseline})"))
            # Over the same corruptions as the baseline's: a network missing one has none.
            mce = per.sum(axis=1, skipna=False) / float(reference.sum())
        else:
            mce = None
        levels = sorted({int(v) for v in group["param_value"]})
        table = CorruptionTable(str(dataset), str(model), baseline, methods, columns,
                                family=str(family), severities=_span(levels))
        for method in methods:
            if method not in per.index.get_level_values("method"):
                continue
            values = [per.xs(method, level="method")[c].to_numpy(dtype="float64")
                      for c in per.columns]
            values.append(mean.xs(method, level="method").to_numpy(dtype="float64"))
            if mce is not None:
                values.append(mce.xs(method, level="method").to_numpy(dtype="float64"))
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
        tables.append(table)
    return tables
