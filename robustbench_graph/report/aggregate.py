"""Descriptive statistics of the pooled results, and the order of methods and settings.

Repeats (noise draws) and seeds (networks) of one method are pooled, as in the papers
(10 networks x 40 draws): every value of a (dataset, model, method, perturbation, param,
param_value, metric) group counts as one observation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..perturbations import suite_order

GROUP: tuple[str, ...] = ("dataset", "model", "method", "perturbation", "param",
                          "param_value", "variant", "metric")
STATS: tuple[str, ...] = ("n", "mean", "std", "median", "q25", "q75", "min", "max")
SUMMARY_COLUMNS: tuple[str, ...] = (*GROUP, "runs", *STATS)



def describe(values: Iterable[float]) -> dict[str, float]:
    """Statistics of one group; NaN values are dropped first.

    ``std`` is the sample standard deviation (ddof=1, NaN for n=1); the quartiles use
    linear interpolation between order statistics (numpy's default ``quantile`` method).
    """
    v = np.asarray(list(values), dtype="float64")
    v = v[~np.isnan(v)]
    n = int(v.size)
    if n == 0:
        return {"n": 0, **{k: math.nan for k in STATS[1:]}}
    q25, median, q75 = np.quantile(v, [0.25, 0.5, 0.75])
    return {
        "n": n,
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if n > 1 else math.nan,
        "median": float(median),
        "q25": float(q25),
        "q75": float(q75),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def value_key(param_value: float) -> float | None:
    """A dict-safe form of a ``param_value`` (NaN becomes ``None``)."""
    value = float(param_value)
    return None if math.isnan(value) else value


def method_order(methods: Iterable[str], baseline: str) -> list[str]:
    """The baseline first (if present), then the other methods sorted by name."""
    unique = sorted(set(methods))
    return ([baseline] if baseline in unique else []) + [m for m in unique if m != baseline]


def perturbation_rank(perturbation: str) -> tuple[int, str]:
    """The suite order of the registered families; unknown ones follow, sorted."""
    order = suite_order()
    if perturbation in order:
        return order.index(perturbation), ""
    return len(order), perturbation


def sort_rows(df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Sort a table by dataset, model, method order, perturbation order, param and value."""
    if df.empty:
        return df.reset_index(drop=True)
    keys = pd.DataFrame({
        "dataset": df["dataset"].astype(str),
        "model": df["model"].astype(str),
        "p_rank": [perturbation_rank(p)[0] for p in df["perturbation"]],
        "perturbation": df["perturbation"].astype(str),
        "param": df["param"].astype(str),
        "param_value": df["param_value"].astype("float64"),
    }, index=df.index)
    if "method" in df.columns:
        rank = {m: i for i, m in enumerate(method_order(df["method"], baseline))}
        keys["m_rank"] = df["method"].map(rank)
    by = ["dataset", "model", "p_rank", "perturbation", "param", "param_value"]
    if "variant" in df.columns:
        keys["variant"] = df["variant"].astype(str)
        by.append("variant")
    if "m_rank" in keys.columns:
        by.insert(2, "m_rank")
    if "metric" in df.columns:
        keys["metric"] = df["metric"].astype(str)
        by.append("metric")
    order = keys.sort_values(by, kind="stable", na_position="first").index
    return df.loc[order].reset_index(drop=True)


def summarize(results: pd.DataFrame, baseline: str = "ce") -> pd.DataFrame:
    """One row per (dataset, model, method, perturbation, param, param_value, metric).

    Columns: the group keys, ``runs`` (distinct runs pooled) and :data:`STATS`.
    """
    rows = []
    for key, group in results.groupby(list(GROUP), dropna=False, sort=False):
        rows.append({**dict(zip(GROUP, key, strict=True)), "runs": group["run"].nunique(),
                     **describe(group["value"])})
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    summary["n"] = summary["n"].astype("int64")
    summary["runs"] = summary["runs"].astype("int64")
    return sort_rows(summary, baseline)
