"""The statistics of randomized smoothing (Cohen, Rosenfeld, Kolter, ICML 2019, arXiv
1902.02918, Section 3.2; docs/perturbations.md#smoothing), on class counts already drawn.

The smoothed classifier is g(x) = argmax_c P(f(x + eps) = c), eps ~ N(0, sigma^2 I). From
counts of f's predictions under noise:

* CERTIFY: the class ``c_A`` chosen on ``n0`` selection draws, its count ``n_A`` among ``n``
  fresh estimation draws, the one-sided Clopper-Pearson lower bound
  ``p_A = Beta.ppf(alpha; n_A, n - n_A + 1)`` at level 1 - alpha (0 where ``n_A = 0``);
  abstain unless ``p_A > 1/2``, else the certified L2 radius ``R = sigma * Phi^-1(p_A)``
  (Theorem 1 with p_B = 1 - p_A).
* PREDICT: the two top counts ``n_A >= n_B`` of ``n`` draws; abstain when the two-sided
  binomial test of ``n_A`` successes in ``n_A + n_B`` trials at 1/2 has p > alpha.

Everything here is vectorised over images (numpy arrays, one row per image); ``ABSTAIN`` (-1)
marks an abstention.
"""

from __future__ import annotations

import math

import numpy as np

from ..lazy import LazyModule

stats = LazyModule("scipy.stats")  # imported on first use: rbg list, status and report need none

ABSTAIN = -1


def clopper_pearson_lower(successes: np.ndarray, trials: int, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower bound of a binomial proportion per entry
    of ``successes`` out of ``trials``: the alpha quantile of Beta(k, n - k + 1), 0 at k = 0."""
    k = np.asarray(successes, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bound = stats.beta.ppf(alpha, k, trials - k + 1)
    return np.where(k > 0, bound, 0.0)


def radius_cap(sigma: float, n: int, alpha: float) -> float:
    """The largest radius ``n`` draws can certify at ``alpha``: every draw agreeing gives
    p_A = alpha^(1/n), so R <= sigma * Phi^-1(alpha^(1/n)); 0 when that bound is <= 1/2."""
    top = alpha ** (1.0 / n)
    return sigma * float(stats.norm.ppf(top)) if top > 0.5 else 0.0


def min_draws(alpha: float) -> int:
    """The fewest estimation draws with which anything can be certified at ``alpha``
    (alpha^(1/n) > 1/2, i.e. n > log2(1/alpha))."""
    return math.floor(math.log2(1.0 / alpha)) + 1


def too_few_draws(n: int, alpha: float) -> str | None:
    """One line saying that ``n`` draws cannot certify anything at ``alpha``, or None."""
    if alpha ** (1.0 / n) > 0.5:
        return None
    return (f"smoothing: n = {n} draws cannot certify any image at alpha = {alpha:g} (the "
            f"lower bound is at most alpha^(1/n) = {alpha ** (1.0 / n):.3g} <= 1/2); every "
            f"image abstains, use n >= {min_draws(alpha)}")


def certify(selection: np.ndarray, estimation: np.ndarray, sigma: float, alpha: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cohen's CERTIFY on counts ``selection`` (images x classes, n0 draws) and
    ``estimation`` (images x classes, n draws).

    Returns:
        ``(prediction, p_lower, radius)`` per image: the class ``c_A`` or ``ABSTAIN``, the
        lower bound of p_A, and the certified radius (0 where abstaining).
    """
    selection, estimation = np.asarray(selection), np.asarray(estimation)
    n = int(estimation[0].sum()) if len(estimation) else 0
    top = selection.argmax(axis=1)
    n_a = estimation[np.arange(len(top)), top]
    p_lower = clopper_pearson_lower(n_a, n, alpha)
    certified = p_lower > 0.5
    radius = np.where(certified, sigma * stats.norm.ppf(np.where(certified, p_lower, 0.75)), 0.0)
    return np.where(certified, top, ABSTAIN), p_lower, radius


def predict(counts: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Cohen's PREDICT on counts (images x classes): ``(prediction, p_value)`` per image, the
    top class or ``ABSTAIN`` where the two-sided binomial test of the two top counts gives
    p > alpha (ties between the top two always abstain: p = 1)."""
    counts = np.asarray(counts)
    order = np.argsort(-counts, axis=1, kind="stable")
    rows = np.arange(len(counts))
    n_a, n_b = counts[rows, order[:, 0]], counts[rows, order[:, 1]]
    p = np.array([stats.binomtest(int(a), int(a + b), 0.5).pvalue
                  for a, b in zip(n_a, n_b, strict=True)], dtype=np.float64)
    return np.where(p <= alpha, order[:, 0], ABSTAIN), p


def certified_accuracy(prediction: np.ndarray, radius: np.ndarray, labels: np.ndarray,
                       r: float) -> float:
    """The share of images whose certified prediction is right with radius >= ``r``."""
    ok = (prediction == labels) & (prediction != ABSTAIN) & (radius >= r)
    return float(ok.mean()) if len(ok) else math.nan
