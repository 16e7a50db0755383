"""Declared claims tested on per-network values: one-sided exact tests, Holm over the claims
only, a verdict and the power to reach it (docs/statistics.md#claims).

A claim says that a method beats a baseline on one measure: ``higher``, ``lower``, or
``not-worse`` by more than a ``margin`` (a non-inferiority claim, in the measure's unit, for a
measure where ``better`` says which way is good). The network is the unit: each group holds one
value per trained network.

* :func:`one_sided_u_test`: the exact permutation test of Mann–Whitney's U in the claimed
  direction (every split of the pooled networks enumerated, mid-ranks for ties) while the
  number of splits is at most :data:`.stats.EXACT_LIMIT`, else scipy's asymptotic test;
* :func:`smallest_one_sided_p` and :func:`networks_needed`: what the design can show at all;
* :func:`judge_claims`: every claim's effect (difference of medians with its cluster-bootstrap
  interval), p, Holm-adjusted p over the declared claims and :data:`VERDICTS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .stats import bootstrap_ci, exact_u, holm

ALPHA = 0.05
DIRECTIONS = ("higher", "lower", "not-worse")
SUPPORTED, CONTRADICTED, NOT_SHOWN, CANNOT_BE_SHOWN = (
    "supported", "contradicted", "not shown", "cannot be shown")
VERDICTS = (SUPPORTED, CONTRADICTED, NOT_SHOWN, CANNOT_BE_SHOWN)
MAX_NETWORKS = 1000  # networks_needed gives up beyond this many per method


@dataclass(frozen=True)
class OneSided:
    u: float
    p: float
    exact: bool


def one_sided_u_test(x: Sequence[float], y: Sequence[float], alternative: str) -> OneSided:
    """p of U (pairs with x > y, ties 1/2) under "x and y are exchangeable", one-sided:
    ``alternative="greater"`` (x tends to be larger) or ``"less"``.

    Exact while C(n + m, n) <= EXACT_LIMIT: the fraction of all splits of the pooled values
    whose U is at least as extreme in the claimed direction as the observed one. Beyond, scipy's
    asymptotic test with tie and continuity correction."""
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    n, m = x.size, y.size
    if n == 0 or m == 0:
        return OneSided(math.nan, math.nan, False)
    u_obs, u_all = exact_u(x, y)
    if u_all is not None:
        if alternative == "greater":
            extreme = u_all >= u_obs - 1e-9
        else:
            extreme = u_all <= u_obs + 1e-9
        return OneSided(u_obs, float(extreme.mean()), True)
    from scipy.stats import mannwhitneyu

    res = mannwhitneyu(x, y, alternative=alternative, method="asymptotic")
    return OneSided(float(res.statistic), float(res.pvalue), False)


def smallest_one_sided_p(n: int, m: int) -> float:
    """The smallest one-sided p the exact test can give with n and m networks: every value of
    one group beyond every value of the other, 1 / C(n + m, n)."""
    if n < 1 or m < 1:
        return 1.0
    return 1.0 / math.comb(n + m, n)


def reachable(n: int, m: int, claims: int, alpha: float = ALPHA) -> bool:
    """Whether a claim tested with n and m networks can be significant after Holm over
    ``claims`` claims: the smallest adjusted p is ``claims`` times the smallest p (all claims
    at their best, Holm's first step multiplies by their count)."""
    return claims * smallest_one_sided_p(n, m) <= alpha


def networks_needed(claims: int, alpha: float = ALPHA) -> int:
    """The fewest networks per method (the same count for method and baseline) with which a
    claim can reach ``alpha`` after Holm over ``claims`` claims."""
    for n in range(1, MAX_NETWORKS + 1):
        if reachable(n, n, claims, alpha):
            return n
    return MAX_NETWORKS + 1


@dataclass(frozen=True)
class ClaimInput:
    """One claim's per-network values and what it claims."""

    id: str
    method: Sequence[float]
    baseline: Sequence[float]
    direction: str  # higher | lower | not-worse
    margin: float = 0.0  # not-worse: how much worse the method may be, in the measure's unit
    better: str = "higher"  # not-worse: which way is good for this measure


@dataclass(frozen=True)
class ClaimResult:
    id: str
    n_method: int
    n_baseline: int
    effect: float  # median(method) - median(baseline), in the measure's unit
    ci_low: float
    ci_high: float
    p: float  # one-sided, in the claimed direction (shifted by the margin for not-worse)
    p_holm: float
    p_other: float  # one-sided, the other way (for contradicted)
    p_other_holm: float
    verdict: str
    needed: int  # networks per method at which the claim could be shown (0: reachable now)


def _alternatives(claim: ClaimInput) -> tuple[np.ndarray, str]:
    """The method's values as tested (shifted by the margin for not-worse) and the claimed
    alternative."""
    values = np.asarray(claim.method, dtype="float64")
    if claim.direction == "higher":
        return values, "greater"
    if claim.direction == "lower":
        return values, "less"
    if claim.direction == "not-worse":
        if claim.better == "higher":  # not worse: method > baseline - margin
            return values + claim.margin, "greater"
        return values - claim.margin, "less"
    raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {claim.direction!r}")


def judge_claims(claims: Sequence[ClaimInput], alpha: float = ALPHA, seed: int = 0
                ) -> list[ClaimResult]:
    """Each claim tested one-sided, Holm over the declared claims only (both directions
    corrected over the same family), and its verdict."""
    k = len(claims)
    tested = []
    for claim in claims:
        values, alternative = _alternatives(claim)
        other = "less" if alternative == "greater" else "greater"
        base = np.asarray(claim.baseline, dtype="float64")
        tested.append((one_sided_u_test(values, base, alternative).p,
                       one_sided_u_test(values, base, other).p))
    p_holm = holm([t[0] for t in tested])
    p_other_holm = holm([t[1] for t in tested])
    out = []
    for i, claim in enumerate(claims):
        n, m = len(claim.method), len(claim.baseline)
        method = np.asarray(claim.method, dtype="float64")
        base = np.asarray(claim.baseline, dtype="float64")
        effect = (float(np.median(method) - np.median(base)) if n and m else math.nan)
        low, high = bootstrap_ci(method, base, seed=seed) if n and m else (math.nan, math.nan)
        if p_holm[i] <= alpha:  # Holm's later steps can reach what its first cannot
            verdict, needed = SUPPORTED, 0
        elif p_other_holm[i] <= alpha:
            verdict, needed = CONTRADICTED, 0
        elif not reachable(n, m, k, alpha):
            verdict, needed = CANNOT_BE_SHOWN, networks_needed(k, alpha)
        else:
            verdict, needed = NOT_SHOWN, 0
        out.append(ClaimResult(claim.id, n, m, effect, low, high, tested[i][0],
                               float(p_holm[i]), tested[i][1], float(p_other_holm[i]),
                               verdict, needed))
    return out
