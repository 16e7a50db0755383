"""Each method against the baseline method, with the network as the unit (docs/statistics.md).

Comparisons are made per (dataset, model, perturbation, param, param_value, variant, metric)
on per-run values (each run's repeats averaged, :func:`.aggregate.networks`), so ``n`` counts
networks, never draws. For each method: the difference of medians with a cluster-bootstrap
confidence interval (runs resampled), Cliff's delta and the Hodges–Lehmann shift as effect
sizes, and the two-sided Mann–Whitney test (exact for small n). The p-values are
Holm-corrected over *all* comparisons of one report (every row of ``comparisons.csv``).
Diagnostic metrics (declared ``better="none"`` by their family, e.g. the realised SNR) are
not compared, so that they do not weaken the correction. Cells of different settings
(different ``variant``) are never compared with each other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..perturbations import metric_info
from .aggregate import base_metric, method_order, networks, sort_rows
from .stats import bootstrap_ci, cliffs_delta, hodges_lehmann, holm, mann_whitney

KEY: tuple[str, ...] = ("dataset", "model", "perturbation", "param", "param_value", "variant",
                        "metric")
COMPARISON_COLUMNS: tuple[str, ...] = (
    *KEY, "method", "baseline", "n", "n_baseline", "median", "median_baseline",
    "diff_median", "ci_low", "ci_high", "cliffs_delta", "hodges_lehmann", "u_statistic",
    "exact", "p_value", "p_holm", "significant",
)
ALPHA = 0.05


def is_diagnostic(perturbation: str, metric: str) -> bool:
    """Whether the family declares ``metric`` a diagnostic (unknown metrics are compared)."""
    info = metric_info(perturbation, base_metric(metric))
    return info is not None and info.better == "none"


def _values(group: pd.DataFrame, method: str) -> np.ndarray:
    v = group.loc[group["method"] == method, "value"].to_numpy(dtype="float64")
    return v[~np.isnan(v)]


def compare(results: pd.DataFrame, baseline: str, alpha: float = ALPHA,
            runs: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Compare every method with ``baseline``; returns (comparisons, notes).

    ``runs`` are the per-network values (:func:`.aggregate.networks` of ``results`` unless
    given). ``diff_median`` is the median over the method's networks minus the baseline's;
    ``ci_low``/``ci_high`` its 95% cluster-bootstrap interval; ``p_value`` the two-sided
    Mann–Whitney p on per-run values (``exact`` where every split was enumerated);
    ``p_holm`` its Holm-adjusted value and ``significant`` is ``p_holm < alpha``. Where the
    baseline has no results for a dataset/model (or one setting of it) nothing is compared;
    the notes say so.
    """
    runs = networks(results) if runs is None else runs
    diagnostic = np.array([is_diagnostic(p, m) for p, m in
                           zip(runs["perturbation"], runs["metric"], strict=True)], dtype=bool)
    runs = runs[~diagnostic] if len(runs) else runs
    rows: list[dict] = []
    notes: list[str] = []
    for (dataset, model), dm in runs.groupby(["dataset", "model"], sort=True):
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
            for i, method in enumerate(others):
                x = _values(group, method)
                if x.size == 0:
                    continue
                test = mann_whitney(x, base)
                med, med_base = float(np.median(x)), float(np.median(base))
                lo, hi = bootstrap_ci(x, base, seed=len(rows) + i)
                rows.append({
                    **dict(zip(KEY, (dataset, model, *key), strict=True)),
                    "method": method, "baseline": baseline,
                    "n": int(x.size), "n_baseline": int(base.size),
                    "median": med, "median_baseline": med_base, "diff_median": med - med_base,
                    "ci_low": lo, "ci_high": hi, "cliffs_delta": cliffs_delta(x, base),
                    "hodges_lehmann": hodges_lehmann(x, base), "u_statistic": test.u,
                    "exact": test.exact, "p_value": test.p,
                })
        if lacking:
            notes.append(f"{dataset}/{model}: {lacking} setting(s) without baseline results "
                         "were not compared")
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype="float64"))
    table["significant"] = (table["p_holm"] < alpha).astype(bool)
    table["exact"] = table["exact"].astype(bool)
    return sort_rows(table, baseline), notes
