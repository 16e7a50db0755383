"""Each method against the baseline method: difference of medians and Mann-Whitney U tests.

Comparisons are made per (dataset, model, perturbation, param, param_value, metric) on the
pooled values (seeds and repeats together, see :mod:`.aggregate`). The two-sided p-values
are Holm-corrected over *all* comparisons of one report (every row of ``comparisons.csv``).
Diagnostic metrics that describe the perturbation rather than the model's robustness
(declared ``better="none"`` by their family, e.g. the realised SNR) are summarised but not
compared, so that they do not weaken the correction. Cells of different settings (different
``variant``) are never compared with each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from ..perturbations import metric_info
from .aggregate import method_order, sort_rows

KEY: tuple[str, ...] = ("dataset", "model", "perturbation", "param", "param_value", "variant",
                        "metric")
COMPARISON_COLUMNS: tuple[str, ...] = (
    *KEY, "method", "baseline", "n", "n_baseline", "median", "median_baseline",
    "diff_median", "u_statistic", "p_value", "p_holm", "significant",
)
ALPHA = 0.05


def is_diagnostic(perturbation: str, metric: str) -> bool:
    """Whether the family declares ``metric`` a diagnostic (unknown metrics are compared)."""
    info = metric_info(perturbation, metric)
    return info is not None and info.better == "none"


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN entries stay NaN and are not counted).

    The k-th smallest of m p-values becomes ``max_{j<=k} min(1, (m - j + 1) * p_(j))``.
    """
    p = np.asarray(pvalues, dtype="float64")
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _values(group: pd.DataFrame, method: str) -> np.ndarray:
    v = group.loc[group["method"] == method, "value"].to_numpy(dtype="float64")
    return v[~np.isnan(v)]


def compare(results: pd.DataFrame, baseline: str = "ce", alpha: float = ALPHA
            ) -> tuple[pd.DataFrame, list[str]]:
    """Compare every method with ``baseline``; returns (comparisons, notes).

    ``diff_median`` is the method's median minus the baseline's. ``p_value`` is
    ``scipy.stats.mannwhitneyu(method, baseline, alternative="two-sided")``; ``p_holm`` is
    its Holm-adjusted value and ``significant`` is ``p_holm < alpha``. Where the baseline
    has no results for a dataset/model (or one setting of it) nothing is compared; the
    notes say so. Diagnostic metrics are not compared.
    """
    diagnostic = [is_diagnostic(p, m) for p, m in zip(results["perturbation"], results["metric"],
                                                      strict=True)]
    results = results[~pd.Series(diagnostic, index=results.index, dtype=bool)]
    rows: list[dict] = []
    notes: list[str] = []
    for (dataset, model), dm in results.groupby(["dataset", "model"], sort=True):
        present = set(dm["method"])
        if baseline not in present:
            notes.append(f"{dataset}/{model}: baseline method {baseline!r} has no results; "
                         "no comparisons there")
            continue
        others = [m for m in method_order(present, baseline) if m != baseline]
        lacking = 0
        for key, group in dm.groupby(list(KEY[2:]), dropna=False, sort=False):
            base = _values(group, baseline)
            if base.size == 0:
                lacking += 1
                continue
            for method in others:
                x = _values(group, method)
                if x.size == 0:
                    continue
                u, p = mannwhitneyu(x, base, alternative="two-sided")
                med, med_base = float(np.median(x)), float(np.median(base))
                rows.append({
                    **dict(zip(KEY, (dataset, model, *key), strict=True)),
                    "method": method, "baseline": baseline,
                    "n": int(x.size), "n_baseline": int(base.size),
                    "median": med, "median_baseline": med_base, "diff_median": med - med_base,
                    "u_statistic": float(u), "p_value": float(p),
                })
        if lacking:
            notes.append(f"{dataset}/{model}: {lacking} setting(s) without baseline results "
                         "were not compared")
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype="float64"))
    table["significant"] = (table["p_holm"] < alpha).astype(bool)
    return sort_rows(table, baseline), notes
