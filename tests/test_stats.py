"""The report's statistics against hand-computed values and synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from robustbench_graph.report.stats import (
    bootstrap_ci,
    cliffs_delta,
    hodges_lehmann,
    mann_whitney,
    per_run,
    smallest_exact_p,
)


def test_per_run_averages_repeats_first() -> None:
    df = pd.DataFrame({"run_path": ["a", "a", "a", "b", "b"], "metric": ["accuracy"] * 5,
                       "value": [0.7, 0.2, math.nan, 1.0, 0.4]})
    out = per_run(df, ["metric"]).set_index("run_path")
    assert out.loc["a", "value"] == pytest.approx(0.45) and out.loc["a", "draws"] == 2
    assert out.loc["b", "value"] == pytest.approx(0.7) and out.loc["b", "draws"] == 2


def test_exact_mann_whitney_hand_values() -> None:
    # Separated groups of 3: U = 0; of the C(6, 3) = 20 splits, U = 0 and U = 9 are as extreme.
    res = mann_whitney([1, 2, 3], [4, 5, 6])
    assert (res.u, res.p, res.exact) == (0.0, pytest.approx(0.1), True)
    # Ties: pooled 1 2 2 2 3 4, mid-ranks 1 3 3 3 5 6; x = {1, 2, 2} has R = 7, U = 1.
    # |U - 4.5| >= 3.5 needs R <= 7 (1 with two of the three 2s: 3 splits) or R >= 14
    # (4, 3 and a 2: 3 splits): p = 6 / 20 (scipy's exact test ignores ties: 0.2).
    res = mann_whitney([1, 2, 2], [2, 3, 4])
    assert res.u == 1.0 and res.p == pytest.approx(0.3)
    # 5 networks against 5: the smallest p is 2 / 252 (why stars need enough seeds).
    res = mann_whitney([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])
    assert res.p == pytest.approx(smallest_exact_p(5, 5)) == pytest.approx(2 / 252)
    same = mann_whitney([0.5, 0.5], [0.5, 0.5])
    assert same.p == pytest.approx(1.0)


def test_large_samples_use_scipys_asymptotic_test() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.3, 1, 30), rng.normal(0, 1, 30)
    res = mann_whitney(x, y)
    ref = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    assert not res.exact and res.p == pytest.approx(ref.pvalue) and res.u == ref.statistic


def test_effect_sizes_hand_values() -> None:
    x, y = [3.0, 5.0], [1.0, 3.0, 4.0]
    # pairs x > y: (3,1) (5,1) (5,3) (5,4) = 4; x < y: (3,4) = 1; tie (3,3): delta = 3/6
    assert cliffs_delta(x, y) == pytest.approx(0.5)
    # differences 2 0 -1 4 2 1 -> sorted -1 0 1 2 2 4: median 1.5
    assert hodges_lehmann(x, y) == pytest.approx(1.5)


def test_bootstrap_ci_covers_the_true_difference_about_95_percent() -> None:
    """Synthetic per-run values with a known difference of medians (1.0): the interval
    covers it in about 95% of 200 trials (binomial sd 1.5 points)."""
    rng = np.random.default_rng(2026)
    covered = 0
    for trial in range(200):
        x = rng.normal(1.0, 1.0, 15)
        y = rng.normal(0.0, 1.0, 15)
        lo, hi = bootstrap_ci(x, y, seed=trial)
        covered += lo <= 1.0 <= hi
    assert 0.91 <= covered / 200 <= 0.99


def test_bootstrap_ci_is_reproducible_and_needs_two_runs() -> None:
    x, y = [0.8, 0.9, 0.85], [0.7, 0.75, 0.72]
    assert bootstrap_ci(x, y, seed=3) == bootstrap_ci(x, y, seed=3)
    lo, hi = bootstrap_ci(x, y)
    assert lo <= np.median(x) - np.median(y) <= hi
    assert all(math.isnan(v) for v in bootstrap_ci([0.8, 0.9], y))  # two networks: none
