"""Declared claims on synthetic per-network values where the truth is known
(robustbench_graph.report.hypotheses)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from robustbench_graph.report.hypotheses import (
    CANNOT_BE_SHOWN,
    CONTRADICTED,
    NOT_SHOWN,
    SUPPORTED,
    ClaimInput,
    judge_claims,
    networks_needed,
    one_sided_u_test,
    smallest_one_sided_p,
)


def _networks(centre: float, n: int, seed: int, spread: float = 0.01) -> np.ndarray:
    return centre + np.random.default_rng(seed).normal(0.0, spread, n)


def test_a_true_effect_at_ten_networks_each_is_supported_and_its_mirror_contradicted():
    better, worse = _networks(0.80, 10, 1), _networks(0.70, 10, 2)
    same = _networks(0.70, 10, 3)
    results = judge_claims([
        ClaimInput("true", better, worse, "higher"),
        ClaimInput("mirror", worse, better, "higher"),
        ClaimInput("none", same, worse, "higher"),
    ])
    assert [r.verdict for r in results] == [SUPPORTED, CONTRADICTED, NOT_SHOWN]
    true = results[0]
    assert true.effect == pytest.approx(np.median(better) - np.median(worse))
    assert true.ci_low <= true.effect <= true.ci_high and true.ci_low > 0
    # all ten above all ten: the exact p is 1 / C(20, 10), Holm over 3 claims
    assert true.p == pytest.approx(1 / math.comb(20, 10))
    assert true.p_holm == pytest.approx(3 / math.comb(20, 10))


def test_two_networks_each_cannot_be_shown_and_says_how_many_would_do():
    (result,) = judge_claims([ClaimInput("tiny", [0.9, 0.91], [0.5, 0.51], "higher")])
    assert result.verdict == CANNOT_BE_SHOWN
    assert result.p == pytest.approx(1 / 6)  # the best split of 4 networks into 2 + 2
    assert result.needed == 3  # C(6, 3) = 20: p = 0.05
    (three,) = judge_claims([ClaimInput("three", [0.9, 0.91, 0.92], [0.5, 0.51, 0.52],
                                       "higher")])
    assert three.verdict == SUPPORTED and three.p == pytest.approx(0.05)


def test_networks_needed_grows_with_the_number_of_claims():
    assert networks_needed(1) == 3
    assert networks_needed(10) == 5  # 10 / C(8, 4) = 0.14; 10 / C(10, 5) = 0.04
    assert smallest_one_sided_p(3, 3) == pytest.approx(0.05)


def test_the_one_sided_exact_p_by_hand():
    """x = (3, 5), y = (1, 4): the six splits of (1, 3, 4, 5) into two give U of the first
    group 0, 1, 2, 2, 3, 4 (first group {1,3}, {1,4}, {1,5}, {3,4}, {3,5}, {4,5}); the observed
    U is 3 (3 > 1, 5 > 1, 5 > 4), so P(U >= 3) = 2/6 and P(U <= 3) = 5/6."""
    greater = one_sided_u_test([3, 5], [1, 4], "greater")
    assert greater.exact and greater.u == 3 and greater.p == pytest.approx(2 / 6)
    assert one_sided_u_test([3, 5], [1, 4], "less").p == pytest.approx(5 / 6)
    # the same count from a brute-force enumeration written here
    pooled = [3, 5, 1, 4]
    us = []
    for first in itertools.combinations(range(4), 2):
        a = [pooled[i] for i in first]
        b = [pooled[i] for i in range(4) if i not in first]
        us.append(sum((ai > bj) + 0.5 * (ai == bj) for ai in a for bj in b))
    assert greater.p == pytest.approx(np.mean(np.array(us) >= 3))


def test_ties_count_half_and_the_test_stays_valid():
    result = one_sided_u_test([1, 1, 2], [1, 1, 1], "greater")
    assert result.u == pytest.approx(4.5 + 1.5)  # 2 > each of three; the 1s tie six pairs
    assert 0 < result.p <= 1


def test_lower_is_the_mirror_of_higher():
    a, b = _networks(0.2, 6, 5), _networks(0.4, 6, 6)
    (lower,) = judge_claims([ClaimInput("lower", a, b, "lower")])
    (higher,) = judge_claims([ClaimInput("higher", b, a, "higher")])
    assert lower.verdict == higher.verdict == SUPPORTED
    assert lower.p == pytest.approx(higher.p)


def test_not_worse_tests_against_the_margin():
    """Clean accuracy 0.5 pt below the baseline: not worse by more than 1 pt is supported,
    not worse by more than 0.1 pt is contradicted (it is worse by more)."""
    base = _networks(0.95, 10, 7, spread=0.001)
    method = _networks(0.945, 10, 8, spread=0.001)
    (within, beyond) = judge_claims([
        ClaimInput("1pt", method, base, "not-worse", margin=0.01),
        ClaimInput("0.1pt", method, base, "not-worse", margin=0.001),
    ])
    assert within.verdict == SUPPORTED
    assert beyond.verdict == CONTRADICTED
    # for a lower-is-better measure the margin goes the other way
    (lower_better,) = judge_claims([ClaimInput("dist", base + 0.005, base, "not-worse",
                                              margin=0.01, better="lower")])
    assert lower_better.verdict == SUPPORTED


def test_holm_runs_over_the_declared_claims_only():
    """A claim's correction depends on the number of declared claims, never on exploratory
    comparisons: the same claim alone, then beside one more claim."""
    better, worse = _networks(0.8, 4, 8), _networks(0.7, 4, 9)  # p = 1/70
    (alone,) = judge_claims([ClaimInput("a", better, worse, "higher")])
    pair = judge_claims([ClaimInput("a", better, worse, "higher"),
                        ClaimInput("b", worse, worse + 0.0, "higher")])
    assert alone.p_holm == pytest.approx(1 / 70)
    assert pair[0].p_holm == pytest.approx(2 / 70)
    assert alone.verdict == pair[0].verdict == SUPPORTED


def test_an_unknown_direction_is_refused():
    with pytest.raises(ValueError, match="direction"):
        judge_claims([ClaimInput("x", [1.0], [0.0], "sideways")])
