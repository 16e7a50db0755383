"""Parseval training (Cisse et al. 2017 as adapted by LapNet, arXiv 1805.10133 Appendix A;
docs/losses.md#parseval-training).

Three modifications, applied by :func:`make_parseval` (architecture) and :func:`retract_`
(after every optimiser step):

* **Convexity**: residual sums become ``0.5 * f(x) + 0.5 * shortcut(x)`` in every block a model
  declares in ``residual_blocks`` (PreActResNet18 and ResNet18; none in the small CNN).
* **Convolution renormalisation**: each convolution acts with ``W / sqrt(2 kh kw + 1)`` (sqrt 19
  for 3x3, sqrt 3 for 1x1), implemented as a forward hook on its output so the state_dict keys
  do not change. It is on by default only for models with batch-norm: on the BN-free smallcnn
  it starves the signal (loss stuck at 2.30 for 3 epochs, docs/losses.md#parseval-training).
  ``model.parseval_renorm`` records the choice.
* **Orthogonality retraction**: ``W <- (1 + beta) W - beta W W^T W`` on every parameter with
  ndim > 1 reshaped to [out, -1] (all convolutions incl. 1x1 shortcuts, and Linear weights),
  a gradient step on ``(beta / 2) |W^T W - I|^2``; beta = 0.01 in the paper.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

CONVEX_WEIGHT = 0.5


def _renorm_hook(module: nn.Conv2d, _inp: Any, out: torch.Tensor) -> torch.Tensor:
    scale = module.parseval_scale  # type: ignore[attr-defined]
    if module.bias is None:
        return out / scale
    bias = module.bias.view(1, -1, *([1] * (out.dim() - 2)))
    return (out - bias) / scale + bias


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def make_parseval(model: nn.Module, *, renorm: bool | None = None) -> nn.Module:
    """Make ``model`` a Parseval network in place (convex residual sums, optional conv
    renormalisation); returns it. ``renorm=None`` turns the renormalisation on iff the model
    has batch-norm (PreActResNet18 yes, smallcnn no). Calling it twice changes nothing."""
    if getattr(model, "parseval", False):
        return model
    if renorm is None:
        renorm = has_batchnorm(model)
    for block in getattr(model, "residual_blocks", ()):
        block.residual_weight = CONVEX_WEIGHT
    for module in model.modules():
        if renorm and isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            module.parseval_scale = math.sqrt(2 * kh * kw + 1)  # type: ignore[attr-defined]
            module.register_forward_hook(_renorm_hook)
    model.parseval = True  # type: ignore[attr-defined]
    model.parseval_renorm = renorm  # type: ignore[attr-defined]
    return model


@torch.no_grad()
def retract_matrix_(w: torch.Tensor, beta: float) -> torch.Tensor:
    """One retraction step ``W <- (1 + beta) W - beta W W^T W`` in place on a 2-D view."""
    if w.shape[0] <= w.shape[1]:
        update = (w @ w.T) @ w
    else:  # same product, cheaper association for tall matrices
        update = w @ (w.T @ w)
    w.mul_(1.0 + beta).sub_(beta * update)
    return w


@torch.no_grad()
def retract_(model: nn.Module, beta: float = 0.01) -> None:
    """Apply the Parseval retraction to every parameter with ndim > 1 (LapNet Appendix A)."""
    if beta == 0:
        return
    for param in model.parameters():
        if param.ndim > 1:
            retract_matrix_(param.view(param.shape[0], -1), beta)


def orthogonality_error(weight: torch.Tensor) -> float:
    """``|W W^T - I|_F`` (or ``|W^T W - I|_F`` for tall W) of ``weight`` reshaped to [out, -1]."""
    w = weight.detach().reshape(weight.shape[0], -1)
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    eye = torch.eye(gram.shape[0], dtype=w.dtype, device=w.device)
    return float(torch.linalg.matrix_norm(gram - eye))
