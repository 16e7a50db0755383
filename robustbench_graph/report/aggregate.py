"""Descriptive statistics per network, and the order of methods and settings.

The network is the unit (docs/statistics.md): the repeats (noise draws) of one run are
averaged first (:func:`.stats.per_run`), and a method's summary describes its runs' values:
``n`` is the number of networks. The pooled values (every draw of every network, as in the
papers' box plots of 10 networks x 40 draws) are described too, in the ``draws_*`` columns,
for the boxes only: they are never used by a test.

Curves: for each swept setting with two or more strengths, :func:`curve_areas` adds a
per-run ``<metric>_auc`` row, the area under the run's metric-over-strength curve divided by
the strength range (the curve's mean height, in the metric's unit).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..config import BASELINE_METHOD
from ..perturbations import suite_order
from .declared import main_metric
from .stats import per_run

GROUP: tuple[str, ...] = ("dataset", "model", "method", "perturbation", "param",
                          "param_value", "variant", "metric")
STATS: tuple[str, ...] = ("n", "mean", "std", "median", "q25", "q75", "min", "max")
POOLED: tuple[str, ...] = ("draws", "draws_median", "draws_q25", "draws_q75")
SUMMARY_COLUMNS: tuple[str, ...] = (*GROUP, *STATS, *POOLED)
AUC_SUFFIX = "_auc"


def base_metric(metric: str) -> str:
    """The metric a curve area is of (``accuracy_auc`` -> ``accuracy``)."""
    return metric[:-len(AUC_SUFFIX)] if metric.endswith(AUC_SUFFIX) else metric


def networks(results: pd.DataFrame) -> pd.DataFrame:
    """Per-run values (repeats averaged) of every group, plus the curve areas."""
    runs = per_run(results, GROUP)
    return pd.concat([runs, curve_areas(runs)], ignore_index=True)


def curve_areas(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run, the normalised area under each curve (settings swept over 2+ strengths).

    Vectorised over runs (a study of hundreds of runs has thousands of curves): the rows of
    each curve are made contiguous and sorted by strength, then summed with ``bincount``."""
    keys = ["dataset", "model", "method", "perturbation", "param", "variant", "metric",
            "run_path"]
    main = {p: main_metric(str(p)) for p in runs["perturbation"].unique()}
    sel = runs[(runs["metric"] == runs["perturbation"].map(main))
               & (runs["param"].astype(str) != "none") & runs["param_value"].notna()]
    if sel.empty:
        return pd.DataFrame(columns=list(runs.columns))
    sel = sel.assign(_pos=np.arange(len(sel))).sort_values([*keys, "param_value"],
                                                           kind="stable")
    gid = sel.groupby(keys, dropna=False, sort=False).ngroup().to_numpy()
    x = sel["param_value"].to_numpy(dtype="float64")
    y = sel["value"].to_numpy(dtype="float64")
    same = gid[1:] == gid[:-1]
    groups = int(gid.max()) + 1
    trapezoids = np.where(same, (y[1:] + y[:-1]) * np.diff(x) / 2.0, 0.0)
    area = np.bincount(gid[1:], weights=trapezoids, minlength=groups)
    first = np.r_[0, np.flatnonzero(~same) + 1]
    last = np.r_[first[1:] - 1, len(gid) - 1]
    span = x[last] - x[first]
    count = np.bincount(gid, minlength=groups)
    draws = np.bincount(gid, weights=sel["draws"].to_numpy(dtype="float64"), minlength=groups)
    ok = (count >= 2) & (span != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = area / span
    out = sel.iloc[first[ok]][[*keys, "_pos"]].copy()
    out["metric"] = out["metric"].astype(str) + AUC_SUFFIX
    out["param_value"] = math.nan
    out["value"] = value[ok]
    out["draws"] = draws[ok].astype("int64")
    out = out.sort_values("_pos", kind="stable")  # the curves in the runs' order
    return out.reindex(columns=list(runs.columns)).reset_index(drop=True)


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


def select_rows(df: pd.DataFrame, selector: dict) -> pd.DataFrame:
    """The rows whose columns hold the ``selector``'s values (compared as text;
    ``param_value`` by value, NaN matching NaN)."""
    mask = np.ones(len(df), dtype=bool)
    for key, want in selector.items():
        if key == "param_value":
            values = pd.to_numeric(df[key], errors="coerce").to_numpy(dtype="float64")
            target = value_key(want)
            mask &= np.isnan(values) if target is None else values == target
        elif pd.api.types.is_string_dtype(df[key]) and isinstance(want, str) and want:
            mask &= (df[key] == want).to_numpy(dtype=bool, na_value=False)  # no copy as text
        else:
            mask &= (df[key].astype(str) == str(want)).to_numpy()
    return df[mask]


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


def summarize(results: pd.DataFrame, baseline: str = BASELINE_METHOD,
              runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (dataset, model, method, perturbation, param, param_value, variant, metric).

    :data:`STATS` describe the per-network values (``runs``, from :func:`networks` unless
    given; ``n`` networks); :data:`POOLED` describe every draw of every network together
    (descriptive only, NaN for curve areas).
    """
    runs = networks(results) if runs is None else runs
    pooled = {_hashable(key): describe(g["value"]) for key, g in
              results.groupby(list(GROUP), dropna=False, sort=False)}
    rows = []
    for key, group in runs.groupby(list(GROUP), dropna=False, sort=False):
        draws = pooled.get(_hashable(key))  # None for a curve's area (no draws of its own)
        rows.append({**dict(zip(GROUP, key, strict=True)), **describe(group["value"]),
                     "draws": int(draws["n"]) if draws else int(group["draws"].sum()),
                     "draws_median": draws["median"] if draws else math.nan,
                     "draws_q25": draws["q25"] if draws else math.nan,
                     "draws_q75": draws["q75"] if draws else math.nan})
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    summary["n"] = summary["n"].astype("int64")
    summary["draws"] = summary["draws"].astype("int64")
    return sort_rows(summary, baseline)


def _hashable(key: tuple) -> tuple:
    """A group key whose NaN entries compare equal (NaN becomes None)."""
    return tuple(None if isinstance(x, float) and math.isnan(x) else x for x in key)
