"""Similarity graphs, Laplacians and label-signal smoothness (shared by losses and diagnostics).

For a batch of b representations r_i (flattened), LapNet (Lassance et al., arXiv 1805.10133;
docs/losses.md#label-smoothness) builds the cosine graph ``M_ij = <r_i/|r_i|, r_j/|r_j|>``,
sparsifies it by symmetric k-NN (eq. 1), takes ``L = D - A`` and measures the smoothness of the
one-hot label signals ``S`` (b x C) as ``sigma = tr(S^T L^m S)`` (eq. 4 in trace form).

The fastest form measured is used: the cosine graph is one Gram matrix of the raw features
normalised on the b x b matrix, and ``L^m`` is never formed: ``L X = d * X - A X`` is applied
``floor(m/2)`` times to S (b x C), so ``tr(S^T L^m S)`` is ``|L^h S|_F^2`` (m = 2h) or
``<L^h S, L^(h+1) S>`` (m = 2h + 1).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import RbgError
from ..lazy import F, LazyFunction, torch

SIMILARITIES = ("cosine", "cosine_clamped", "rbf_normalized")
_EPS = 1e-12  # as F.normalize


def feature_rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` as b x F rows, a view whenever ``t`` is dense in its own layout: channels-last
    features (the ResNets) are flattened in NHWC order. Every use here depends on the rows
    only through inner products, which do not depend on the order of the features."""
    if is_channels_last(t):
        t = t.permute(0, 2, 3, 1)
    return t.reshape(t.shape[0], -1)


def is_channels_last(t: torch.Tensor) -> bool:
    """A 4-D tensor stored channels-last (and not also contiguous, as 1x1 maps are)."""
    return (t.ndim == 4 and not t.is_contiguous()
            and t.is_contiguous(memory_format=torch.channels_last))


def fresh_gradient(shape: torch.Size, dtype: torch.dtype, device: torch.device,
                   channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A new tensor in a feature's shape, dtype and layout, and its ``feature_rows`` view.
    Returned from a backward, a fresh tensor (not a view of a temporary) lets autograd add the
    rest of the network's gradient into it in place."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(shape, dtype=dtype, device=device, memory_format=layout)
    return out, feature_rows(out)


class _Gram:  # a torch.autograd.Function once applied (lazy.LazyFunction)
    """``G = R R^T`` of the flattened rows with the backward ``dR = (dG + dG^T) R``: one
    b x b x F product instead of the two that autograd takes for a generic matrix product.

    ``gram_dtype`` / ``grad_dtype`` (None: float32, or R's dtype if wider) are the precisions
    of the forward and backward products; G itself is returned in float32 or wider, with
    autocast off.
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor, gram_dtype: torch.dtype | None,  # noqa: ANN001
                grad_dtype: torch.dtype | None) -> torch.Tensor:
        exact = torch.promote_types(features.dtype, torch.float32)
        flat = feature_rows(features)
        low = flat.to(gram_dtype or exact)
        with torch.autocast(flat.device.type, enabled=False):
            gram = (low @ low.T).to(exact)
        # The backward's operand, cast now while R is in cache (a bfloat16 copy costs half
        # of R's memory; a float32 R is saved by reference).
        backward_dtype = grad_dtype or exact
        ctx.save_for_backward(low if low.dtype == backward_dtype else flat.to(backward_dtype))
        ctx.input_dtype = features.dtype
        ctx.channels_last = is_channels_last(features)
        ctx.input_shape = features.shape
        return (gram + gram.T) / 2  # exactly symmetric (BLAS may round halves differently)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        (operand,) = ctx.saved_tensors
        out, flat_out = fresh_gradient(ctx.input_shape, ctx.input_dtype, operand.device,
                                       ctx.channels_last)
        with torch.autocast(operand.device.type, enabled=False):
            sym = (grad + grad.T).to(operand.dtype)
            if operand.dtype == out.dtype:
                torch.mm(sym, operand, out=flat_out)
            else:
                flat_out.copy_(sym @ operand)
        return out, None, None


_GRAM = LazyFunction(_Gram)


def gram_matrix(features: torch.Tensor, gram_dtype: torch.dtype | None = None,
                grad_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``R R^T`` of the flattened rows (b x b), differentiable, exactly symmetric, float32.

    ``gram_dtype`` and ``grad_dtype`` set the precision of the forward and of the backward
    product (None: float32). ``torch.bfloat16`` is native on GPUs of compute capability >= 8
    and on CPUs with AVX512-BF16/AMX (about 3x faster than float32 on this project's
    AVX512-BF16 CPU, ``bench/RESULTS.md``), at a relative error of about 4e-3 on each entry of
    G (forward) or of the gradient (backward).
    """
    return _GRAM.apply(features, gram_dtype, grad_dtype)


def normalize_gram(gram: torch.Tensor) -> torch.Tensor:
    """Cosine similarities ``G / (n n^T)`` from Gram matrices (... x b x b), with
    ``n = max(sqrt(diag G), 1e-12)``: an all-zero row has similarity 0 to everything."""
    norms = gram.diagonal(dim1=-2, dim2=-1).clamp_min(_EPS * _EPS).sqrt()
    return gram / (norms[..., :, None] * norms[..., None, :])


def cosine_similarity(features: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of the flattened rows of ``features`` (b x ...) -> b x b.

    Computed as ``G / (n n^T)`` with ``G = R R^T`` (the fastest form measured):
    one Gram matrix of the raw features, normalised on the b x b matrix.
    """
    return normalize_gram(gram_matrix(features))


def cosine_graphs(representations: Sequence[torch.Tensor],
                  gram_dtype: torch.dtype | None = None,
                  grad_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The cosine graphs of several representations of one batch, stacked: T x b x b.

    One Gram matrix per representation, then every b x b operation batched over the T
    graphs (the regulariser taps up to 17 layers; per-layer small operations added up).
    Precisions as ``gram_matrix``.
    """
    return normalize_gram(torch.stack([gram_matrix(r, gram_dtype, grad_dtype)
                                       for r in representations]))


def similarity(features: torch.Tensor, kind: str = "cosine", alpha: float = 1.0) -> torch.Tensor:
    """Similarity matrix of the flattened rows of ``features``.

    Args:
        features: b x ... representations.
        kind: ``cosine`` (signed), ``cosine_clamped`` (negatives set to 0, GSL default,
            docs/losses.md#gsl) or ``rbf_normalized``: ``exp(-alpha |u_i - u_j|^2)`` on the
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


def is_dense_graph(k: int | None, batch_size: int) -> bool:
    """Whether the k-NN graph of ``batch_size`` nodes keeps every edge (``k`` None or
    ``>= b - 1``: the paper's ``k = b``)."""
    return k is None or k >= batch_size - 1


def knn_sparsify(sim: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """Symmetric k-NN graph (LapNet eq. 1): keep ``A_ij = sim_ij`` when j is among the k most
    similar nodes of i, or i among those of j (self excluded); ``k=None`` or ``k >= b - 1``
    keeps the full graph (the paper's ``k = b``). ``sim`` is b x b or a stack ... x b x b."""
    if is_dense_graph(k, sim.shape[-1]):
        return sim
    if k <= 0:
        raise RbgError(f"k-NN graph needs k >= 1, got {k}")
    with torch.no_grad():
        scores = sim.detach().clone()
        scores.diagonal(dim1=-2, dim2=-1).fill_(float("-inf"))
        top = scores.topk(k, dim=-1).indices
        mask = torch.zeros_like(sim, dtype=torch.bool)
        mask.scatter_(-1, top, True)
        mask = mask | mask.transpose(-2, -1)
    return sim * mask


def laplacian(adj: torch.Tensor) -> torch.Tensor:
    """Combinatorial Laplacian ``L = D - A`` with ``D = diag(A 1)``; self-loops cancel."""
    return torch.diag(adj.sum(1)) - adj


def label_signals(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot label signals ``S`` (b x C): ``S[i, c] = 1`` iff ``labels[i] == c``."""
    return F.one_hot(labels.long(), num_classes).to(dtype)


def _apply_laplacian(adj: torch.Tensor, degree: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return degree[..., :, None] * x - adj @ x


def signal_smoothness(adj: torch.Tensor, signals: torch.Tensor, m: int = 1) -> torch.Tensor:
    """``tr(X^T L^m X)`` for the Laplacian of ``adj``, without forming L or L^m.

    Args:
        adj: b x b symmetric adjacency (self-loops allowed, they cancel), or a stack
            ... x b x b of them (then one value per graph).
        signals: b x C signals X (one-hot labels for LapNet's sigma).
        m: Laplacian power, >= 1.
    """
    if m < 1:
        raise RbgError(f"Laplacian power m must be >= 1, got {m}")
    degree = adj.sum(-1)
    x = signals
    for _ in range(m // 2):
        x = _apply_laplacian(adj, degree, x)
    if m % 2 == 0:
        return (x * x).sum((-2, -1))
    return (x * _apply_laplacian(adj, degree, x)).sum((-2, -1))


def label_smoothness(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    m: int = 1,
    k: int | None = None,
) -> torch.Tensor:
    """Smoothness ``sigma = tr(S^T L^m S)`` of the label signals on the cosine k-NN graph of
    ``features`` (LapNet eq. 4, trace form; docs/losses.md#label-smoothness). Differentiable scalar.

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


def label_smoothness_per_layer(
    representations: Sequence[torch.Tensor],
    labels: torch.Tensor,
    num_classes: int,
    *,
    m: int = 1,
    k: int | None = None,
    gram_dtype: torch.dtype | None = None,
    grad_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``label_smoothness`` of each representation of one batch, as one tensor of T values.

    The same quantity, computed with the b x b work batched over the T graphs (see
    ``cosine_graphs``); ``gram_dtype`` / ``grad_dtype``: precisions as ``gram_matrix``.
    """
    adj = knn_sparsify(cosine_graphs(representations, gram_dtype, grad_dtype), k)
    return signal_smoothness(adj, label_signals(labels, num_classes, adj.dtype), m)
