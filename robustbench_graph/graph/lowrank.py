"""Label smoothness on dense cosine graphs without forming the b x b graph (low-rank form).

The full cosine graph of b flattened representations R (b x F) is ``A = N^-1 R R^T N^-1``
with ``N = diag(max(|r_i|, 1e-12))`` (LapNet, arXiv 1805.10133, section 3.1, with ``k = b``;
docs/losses.md#label-smoothness). Smoothness needs A only through products ``A X`` with a few
signals X (b x k, k = C + 1 for ``[S, 1]``: the labels and the degree vector), and

    A X = N^-1 R (R^T (N^-1 X))

costs ``4 b k F`` FLOPs instead of the Gram matrix's ``2 b^2 F``; with the backward's three
more thin products (``_CosineGraphProduct``) about ``12 b k F`` in all against ``4 b^2 F``:
half the Gram form's FLOPs at b = 100 with k padded to 16. It is exact in float32 and its
cost grows like b, not b^2, but the thin products run at about half the Gram product's speed
on a CPU when the features are not in cache. Measured per training step
(``bench/RESULTS.md``), it is at least as fast as the exact Gram form from b = 128 and as the
Gram form with a bfloat16 backward from b = 256; at LapNet's b = 100 the Gram form stays the
default. ``prefer_lowrank`` encodes that rule (``form=auto`` of the ``laplacian`` loss).

It applies to the dense graph only (a k-NN graph needs every entry of A to rank), and it pays
once per application of A: ``ceil(m / 2)`` applications for Laplacian power m.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import RbgError
from ..lazy import F, LazyFunction, torch
from . import feature_rows, fresh_gradient, is_channels_last, is_dense_graph

_EPS = 1e-12  # as F.normalize
_PAD = 16  # thin products with 16 signals run ~2x faster than with 11 (AVX-512 width)


def _padded(signals: int) -> int:
    """``signals`` rounded up to a multiple of ``_PAD``."""
    return -(-signals // _PAD) * _PAD


class _CosineGraphProduct:  # a torch.autograd.Function once applied (lazy.LazyFunction)
    """``Y_t = A_t X_t`` for the dense cosine graphs A_t of T representations (module
    docstring). ``signals``: T x b x k; returns T x b x k in float32 (or wider).

    Forward: ``n = max(|r_i|, eps)``, ``W = X / n``, ``Tt = W^T R`` (k x F), ``U = R Tt^T``,
    ``Y = U / n``. Backward, from ``dY``: ``dU = dY / n``, ``dTt = dU^T R``,
    ``dW = R dTt^T``, ``dX = dW / n``, and ``dR = [dU, W] [Tt; dTt] + (dn / n) R`` with
    ``dn = -(rowsum(dY * Y) + rowsum(dW * W)) / n`` where the norm is not clamped.
    """

    @staticmethod
    def forward(ctx, signals: torch.Tensor, *features: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        exact = torch.promote_types(signals.dtype, torch.float32)
        for f in features:
            exact = torch.promote_types(exact, f.dtype)
        k = signals.shape[-1]
        padded = _padded(k)
        with torch.autocast(signals.device.type, enabled=False):
            rows = [feature_rows(f).to(exact) for f in features]
            raw_norms = torch.stack([torch.linalg.vector_norm(r, dim=1) for r in rows])
            norms = raw_norms.clamp_min(_EPS)
            weighted = F.pad(signals.to(exact), (0, padded - k)) / norms[..., None]
            thin = [w.T @ r for w, r in zip(weighted, rows, strict=True)]
            out = torch.stack([r @ t.T for r, t in zip(rows, thin, strict=True)])
            out = out / norms[..., None]
        ctx.save_for_backward(raw_norms, weighted, out, *rows, *thin)
        ctx.count = len(rows)
        ctx.k = k
        ctx.feature_meta = [(f.shape, f.dtype, f.device, is_channels_last(f)) for f in features]
        return out[..., :k]

    @staticmethod  # made @once_differentiable by LazyFunction
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: ANN001
        raw_norms, weighted, out, *rest = ctx.saved_tensors
        rows, thin = rest[:ctx.count], rest[ctx.count:]
        norms = raw_norms.clamp_min(_EPS)
        padded = weighted.shape[-1]
        with torch.autocast(grad.device.type, enabled=False):
            grad = F.pad(grad.to(out.dtype), (0, padded - ctx.k))
            d_out = grad / norms[..., None]
            d_thin = [g.T @ r for g, r in zip(d_out, rows, strict=True)]
            d_weighted = torch.stack([r @ t.T for r, t in zip(rows, d_thin, strict=True)])
            d_norms = -((grad * out).sum(-1) + (d_weighted * weighted).sum(-1)) / norms
            scale = torch.where(raw_norms > _EPS, d_norms / norms, torch.zeros_like(norms))
            grads: list[torch.Tensor | None] = []
            for i, meta in enumerate(ctx.feature_meta):
                if not ctx.needs_input_grad[1 + i]:
                    grads.append(None)
                    continue
                result, flat = fresh_gradient(*meta)
                left = torch.cat([d_out[i], weighted[i]], 1)
                right = torch.cat([thin[i], d_thin[i]], 0)
                if flat.dtype == rows[i].dtype:
                    torch.mul(rows[i], scale[i, :, None], out=flat)
                    flat.addmm_(left, right)
                else:
                    flat.copy_(torch.addmm(rows[i] * scale[i, :, None], left, right))
                grads.append(result)
        d_signals = None
        if ctx.needs_input_grad[0]:
            d_signals = (d_weighted / norms[..., None])[..., :ctx.k]
        return (d_signals, *grads)


_COSINE_GRAPH_PRODUCT = LazyFunction(_CosineGraphProduct, once_differentiable=True)


def cosine_graph_products(representations: Sequence[torch.Tensor],
                          signals: torch.Tensor) -> torch.Tensor:
    """``A_t X_t`` for the dense cosine graph A_t of each representation (T x b x k), from
    signals X (b x k, shared, or T x b x k), without forming A_t. Differentiable in both."""
    if signals.ndim == 2:
        signals = signals.expand(len(representations), *signals.shape)
    return _COSINE_GRAPH_PRODUCT.apply(signals, *representations)


def prefer_lowrank(batch_size: int, num_classes: int, m: int, k: int | None,
                   gram_backward_bf16: bool = False, device_type: str = "cpu") -> bool:
    """Whether to take the low-rank form, by the step times measured on a 2-core AVX512-BF16
    CPU (``bench/RESULTS.md``, smallcnn and PreActResNet18 w16, b = 64..256): on CPUs, for a
    dense graph (``k`` None or >= b - 1), from b = 128 against an exact float32 Gram (faster
    on smallcnn, a tie on PreActResNet18) and from b = 256 against a Gram with a bfloat16
    backward (as fast, and exact), for C + 1 <= 16 signals and m <= 2. The thresholds grow
    with the padded signal count (b >= 896 for CIFAR-100 against the exact Gram) and with
    the ``ceil(m/2)`` applications of A. Never on other devices: not measured there."""
    if device_type != "cpu":
        return False
    threshold = (256 if gram_backward_bf16 else 128) * _padded(num_classes + 1) // _PAD
    return is_dense_graph(k, batch_size) and batch_size >= threshold * -(-m // 2)


def lowrank_label_smoothness_per_layer(representations: Sequence[torch.Tensor],
                                       labels: torch.Tensor, num_classes: int, *,
                                       m: int = 1) -> torch.Tensor:
    """``tr(S^T L_t^m S)`` on the dense cosine graph of each representation (T values), the
    same quantity as ``graph.label_smoothness_per_layer`` with ``k=None``."""
    if m < 1:
        raise RbgError(f"Laplacian power m must be >= 1, got {m}")
    dtype = torch.promote_types(representations[0].dtype, torch.float32)
    signals = F.one_hot(labels.long(), num_classes).to(dtype)
    with_ones = torch.cat([signals, torch.ones_like(signals[:, :1])], 1)
    first = cosine_graph_products(representations, with_ones)
    degree = first[..., num_classes]
    x = degree[..., None] * signals - first[..., :num_classes]  # L S, T x b x C
    for _ in range(m // 2 - 1):
        x = degree[..., None] * x - cosine_graph_products(representations, x)
    if m % 2 == 0:
        return (x * x).sum((-2, -1))
    if m == 1:
        return (signals * x).sum((-2, -1))
    return (x * (degree[..., None] * x - cosine_graph_products(representations, x))).sum((-2, -1))
