"""Statistics with the network as the unit (docs/statistics.md).

The noise draws of one network are not independent samples of its method: they are averaged
within the run first (:func:`per_run`), and methods are compared across their runs (seeds).

* :func:`mann_whitney`: the two-sided Mann–Whitney test on per-run values, exact (every
  split of the pooled runs enumerated, ties handled) while the number of splits is at most
  :data:`EXACT_LIMIT`, else scipy's normal approximation with tie correction;
* :func:`cliffs_delta` (the effect size that goes with U: ``2U / (n m) - 1``) and
  :func:`hodges_lehmann` (the median of all pairwise differences);
* :func:`bootstrap_ci`: a percentile confidence interval of the difference of medians that
  resamples runs, each group on its own (a cluster bootstrap: a run's draws stay together);
* :func:`holm`: the step-down correction over a report's family of comparisons.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

EXACT_LIMIT = 200_000  # splits enumerated by the exact test (C(20, 10) = 184,756)
BOOTSTRAP_RESAMPLES = 2000
MIN_BOOTSTRAP_RUNS = 3  # with 2 networks a group has 3 distinct resampled medians: no interval
CONFIDENCE = 0.95


def per_run(results: pd.DataFrame, keys: Sequence[str], unit: str = "run_path"
            ) -> pd.DataFrame:
    """One row per (``keys``, network): ``value`` is the mean over the run's repeats (NaN
    values dropped; a run whose values are all NaN is left out) and ``draws`` their count.
    ``unit`` names the network column (the run folder: run names may repeat across
    folders)."""
    df = results[~results["value"].isna()]
    out = (df.groupby([*keys, unit], dropna=False, sort=False)["value"]
           .agg(value="mean", draws="count").reset_index())
    out["draws"] = out["draws"].astype("int64")
    return out


def _u_statistics(pooled: np.ndarray, n: int, splits: np.ndarray) -> np.ndarray:
    """U of the first group for each row of ``splits`` (indices of the first group's values
    in ``pooled``), by mid-ranks: U = R1 - n (n + 1) / 2."""
    ranks = pd.Series(pooled).rank(method="average").to_numpy()
    return ranks[splits].sum(axis=1) - n * (n + 1) / 2.0


@dataclass(frozen=True)
class TestResult:
    u: float
    p: float
    exact: bool


def exact_u(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray | None]:
    """U of ``x`` against ``y`` (both non-empty), and U of the first group for every split of
    the pooled values into groups of their sizes: the permutation distribution, or None when
    there are more than :data:`EXACT_LIMIT` splits."""
    n, m = x.size, y.size
    pooled = np.concatenate([x, y])
    u_obs = float(_u_statistics(pooled, n, np.arange(n)[None, :])[0])
    if math.comb(n + m, n) > EXACT_LIMIT:
        return u_obs, None
    splits = np.array(list(itertools.combinations(range(n + m), n)), dtype=np.int64)
    return u_obs, _u_statistics(pooled, n, splits)


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> TestResult:
    """Two-sided Mann–Whitney U of ``x`` against ``y`` (U counts pairs with x > y, ties 1/2).

    Exact while C(n + m, n) <= :data:`EXACT_LIMIT`: p is the fraction of all splits of the
    pooled values into groups of n and m whose U is at least as far from n m / 2 as the
    observed one (a permutation test of U, valid with ties). Beyond, scipy's asymptotic test
    with tie and continuity correction.
    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    n, m = x.size, y.size
    if n == 0 or m == 0:
        return TestResult(math.nan, math.nan, False)
    u_obs, u_all = exact_u(x, y)
    if u_all is not None:
        centre = n * m / 2.0
        extreme = np.abs(u_all - centre) >= abs(u_obs - centre) - 1e-9
        return TestResult(u_obs, float(extreme.mean()), True)
    from scipy.stats import mannwhitneyu

    res = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    return TestResult(float(res.statistic), float(res.pvalue), False)


def cliffs_delta(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) - P(X < Y) over all pairs, in [-1, 1] (0: no tendency)."""
    x = np.asarray(x, dtype="float64")[:, None]
    y = np.asarray(y, dtype="float64")[None, :]
    if x.size == 0 or y.size == 0:
        return math.nan
    return float(np.sign(x - y).mean())


def hodges_lehmann(x: Sequence[float], y: Sequence[float]) -> float:
    """The Hodges–Lehmann shift: the median of all pairwise differences x_i - y_j."""
    x = np.asarray(x, dtype="float64")[:, None]
    y = np.asarray(y, dtype="float64")[None, :]
    if x.size == 0 or y.size == 0:
        return math.nan
    return float(np.median(x - y))


def bootstrap_ci(x: Sequence[float], y: Sequence[float], *,
                 resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile interval of median(x) - median(y), resampling runs within each group.

    ``x`` and ``y`` are per-run values, so resampling them resamples networks with all their
    draws (a cluster bootstrap). The generator is seeded: a report is reproducible. With
    fewer than :data:`MIN_BOOTSTRAP_RUNS` runs in a group there is no interval (NaN, NaN):
    two networks give only three distinct resampled medians, an interval that looks precise
    and is not.
    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    if x.size < MIN_BOOTSTRAP_RUNS or y.size < MIN_BOOTSTRAP_RUNS:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    bx = np.median(x[rng.integers(0, x.size, (resamples, x.size))], axis=1)
    by = np.median(y[rng.integers(0, y.size, (resamples, y.size))], axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(bx - by, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


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


def smallest_exact_p(n: int, m: int) -> float:
    """The smallest two-sided p the exact test can give with n and m runs (2 / C(n+m, n))."""
    return min(1.0, 2.0 / math.comb(n + m, n))
