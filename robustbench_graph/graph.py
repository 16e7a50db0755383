"""Similarity graphs, Laplacians and label-signal smoothness (shared by losses and diagnostics).

For a batch of b representations r_i (flattened), LapNet (Lassance et al., arXiv 1805.10133,
METHODS.md section 3.1) builds the cosine graph ``M_ij = <r_i/|r_i|, r_j/|r_j|>``, sparsifies
it by symmetric k-NN (eq. 1), takes ``L = D - A`` and measures the smoothness of the one-hot
label signals ``S`` (b x C) as ``sigma = tr(S^T L^m S)`` (eq. 4 in trace form).

Costs follow METHODS.md section 9.6: the cosine graph is one Gram matrix of the raw features
normalised on the b x b matrix, and ``L^m`` is never formed: ``L X = d * X - A X`` is applied
``floor(m/2)`` times to S (b x C), so ``tr(S^T L^m S)`` is ``|L^h S|_F^2`` (m = 2h) or
``<L^h S, L^(h+1) S>`` (m = 2h + 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import RbgError

SIMILARITIES = ("cosine", "cosine_clamped", "rbf_normalized")
_EPS = 1e-12  # as F.normalize


class _Gram(torch.autograd.Function):
    """``G = R R^T`` with the backward ``dR = (dG + dG^T) R``: one b x b x F product instead of
    the two that autograd takes for a generic matrix product (the regulariser's hot path)."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(flat)
        gram = flat @ flat.T
        return (gram + gram.T) / 2  # exactly symmetric (BLAS may round halves differently)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        (flat,) = ctx.saved_tensors
        return (grad + grad.T) @ flat


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``R R^T`` of the flattened rows (b x b), differentiable, exactly symmetric."""
    return _Gram.apply(features.reshape(features.shape[0], -1))


def cosine_similarity(features: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of the flattened rows of ``features`` (b x ...) -> b x b.

    Computed as ``G / (n n^T)`` with ``G = R R^T`` and ``n = max(sqrt(diag G), 1e-12)``, the
    fast form of METHODS.md section 9.6; an all-zero row has similarity 0 to everything.
    """
    gram = gram_matrix(features)
    norms = gram.diagonal().clamp_min(_EPS * _EPS).sqrt()
    return gram / (norms[:, None] * norms[None, :])


def similarity(features: torch.Tensor, kind: str = "cosine", alpha: float = 1.0) -> torch.Tensor:
    """Similarity matrix of the flattened rows of ``features``.

    Args:
        features: b x ... representations.
        kind: ``cosine`` (signed), ``cosine_clamped`` (negatives set to 0, GSL default of
            METHODS.md section 2.2) or ``rbf_normalized``: ``exp(-alpha |u_i - u_j|^2)`` on the
            L2-normalised rows, i.e. ``exp(-2 alpha (1 - cos))``.
        alpha: RBF bandwidth, used by ``rbf_normalized`` only.
    """
    cos = cosine_similarity(features)
    if kind == "cosine":
        return cos
    if kind == "cosine_clamped":
        return cos.clamp_min(0.0)
    if kind == "rbf_normalized":
        return torch.exp(-2.0 * alpha * (1.0 - cos).clamp_min(0.0))
    raise RbgError(f"unknown similarity {kind!r}; valid: {', '.join(SIMILARITIES)}")


def knn_sparsify(sim: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """Symmetric k-NN graph (LapNet eq. 1): keep ``A_ij = sim_ij`` when j is among the k most
    similar nodes of i, or i among those of j (self excluded); ``k=None`` or ``k >= b - 1``
    keeps the full graph (the paper's ``k = b``)."""
    b = sim.shape[0]
    if k is None or k >= b - 1:
        return sim
    if k <= 0:
        raise RbgError(f"k-NN graph needs k >= 1, got {k}")
    with torch.no_grad():
        scores = sim.detach().clone()
        scores.fill_diagonal_(float("-inf"))
        top = scores.topk(k, dim=1).indices
        mask = torch.zeros_like(sim, dtype=torch.bool)
        mask.scatter_(1, top, True)
        mask = mask | mask.T
    return sim * mask


def laplacian(adj: torch.Tensor) -> torch.Tensor:
    """Combinatorial Laplacian ``L = D - A`` with ``D = diag(A 1)``; self-loops cancel."""
    return torch.diag(adj.sum(1)) - adj


def label_signals(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot label signals ``S`` (b x C): ``S[i, c] = 1`` iff ``labels[i] == c``."""
    return F.one_hot(labels.long(), num_classes).to(dtype)


def _apply_laplacian(adj: torch.Tensor, degree: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return degree[:, None] * x - adj @ x


def signal_smoothness(adj: torch.Tensor, signals: torch.Tensor, m: int = 1) -> torch.Tensor:
    """``tr(X^T L^m X)`` for the Laplacian of ``adj``, without forming L or L^m.

    Args:
        adj: b x b symmetric adjacency (self-loops allowed, they cancel).
        signals: b x C signals X (one-hot labels for LapNet's sigma).
        m: Laplacian power, >= 1.
    """
    if m < 1:
        raise RbgError(f"Laplacian power m must be >= 1, got {m}")
    degree = adj.sum(1)
    x = signals
    for _ in range(m // 2):
        x = _apply_laplacian(adj, degree, x)
    if m % 2 == 0:
        return (x * x).sum()
    return (x * _apply_laplacian(adj, degree, x)).sum()


def label_smoothness(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    m: int = 1,
    k: int | None = None,
) -> torch.Tensor:
    """Smoothness ``sigma = tr(S^T L^m S)`` of the label signals on the cosine k-NN graph of
    ``features`` (LapNet eq. 4, trace form; METHODS.md section 3.1). Differentiable scalar.

    For m = 1 it is the sum of the edge weights between differently-labelled nodes (ordered
    pairs); for m = 2 it is ``|L S|_F^2``.

    Args:
        features: b x ... representations (flattened internally).
        labels: b integer labels in ``[0, num_classes)``.
        num_classes: C, the number of label signals.
        m: Laplacian power.
        k: neighbours of the symmetric k-NN graph; ``None`` for the full graph.
    """
    adj = knn_sparsify(cosine_similarity(features), k)
    return signal_smoothness(adj, label_signals(labels, num_classes, adj.dtype), m)
