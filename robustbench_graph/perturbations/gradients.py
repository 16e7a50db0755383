"""Fast input gradients of eval-mode models, shared by the gradient attacks (DeepFool, PGD).

Two exact shortcuts, each measured on CPU (``bench/RESULTS.md``): an eval-mode batch norm
backpropagates by one per-channel multiply instead of ``native_batch_norm_backward``; and a
one-channel first convolution (MNIST-like inputs) takes PyTorch's own kernel for its input
gradient instead of oneDNN's, by stopping the backward at the layer's output
(``split_layer``) and finishing it with oneDNN off. Results agree to float rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..lazy import nn, torch


@contextmanager
def without_onednn() -> Iterator[None]:
    """oneDNN convolutions off for the block (only that flag, unlike ``mkldnn.flags``)."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


@functools.cache
def _affine_grad() -> Any:
    """The autograd function of :func:`_affine_batchnorm`, defined on first use (so that
    importing this module does not import torch)."""

    class AffineGrad(torch.autograd.Function):
        """``forward(x)`` (the module's own forward, so the output is bit-identical), not
        recorded, with the input gradient ``grad * scale``: the exact backward of an affine
        per-channel map, without the module's own backward. Its output is the forward's own
        fresh tensor: no copy (a forward hook had to return a copy of the module's output,
        since an input returned as-is is a view that in-place ReLUs may not modify)."""

        @staticmethod
        def forward(ctx, x: torch.Tensor, forward: Any,  # noqa: ANN001
                    scale: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(scale)
            return forward(x)

        @staticmethod
        def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
            (scale,) = ctx.saved_tensors
            return grad * scale, None, None

    return AffineGrad


def _affine_batchnorm(module: nn.Module, forward: Any, x: torch.Tensor) -> torch.Tensor:
    """An eval-mode batch norm's forward: same output, input gradient by one multiply
    (``weight / sqrt(running_var + eps)`` per channel) instead of ``native_batch_norm_backward``,
    which measured 3.3x slower than a multiply on CPU (PreActResNet-18 DeepFool step
    1286 -> 1093 ms; gradients equal within 5e-7 relative)."""
    scale = torch.rsqrt(module.running_var + module.eps)
    if module.weight is not None:
        scale = scale * module.weight
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return _affine_grad().apply(x, forward, scale.detach().view(shape).to(x.dtype))


@contextmanager
def fast_batchnorm_backward(model: nn.Module) -> Iterator[None]:
    """``_affine_batchnorm`` as the forward of every eval-mode batch norm with running
    statistics, for the block (an instance attribute over the class's ``forward``: hooks on
    the module still run; the previous ``forward`` is put back on exit)."""
    patched = [m for m in model.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.training
               and m.running_var is not None]
    saved = [m.__dict__.get("forward") for m in patched]
    for m in patched:
        m.forward = functools.partial(_affine_batchnorm, m, m.forward)
    try:
        yield
    finally:
        for m, old in zip(patched, saved, strict=True):
            if old is None:
                m.__dict__.pop("forward", None)
            else:
                m.forward = old


def split_layer(input_layer: nn.Module | None, x: torch.Tensor) -> nn.Module | None:
    """The input layer to stop the backward passes at, where that is measured to pay: a
    one-channel convolution on CPU (oneDNN's input gradient: 8.8 ms against PyTorch's 2.4 ms
    for 100 mnist images, ``bench/RESULTS.md``)."""
    if (isinstance(input_layer, nn.Conv2d) and input_layer.in_channels == 1
            and x.device.type == "cpu" and torch.backends.mkldnn.is_available()):
        return input_layer
    return None


def forward_with_split(model: nn.Module, x: torch.Tensor, split: nn.Module | None
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits, and the split layer's output when it ran exactly once."""
    if split is None:
        return model(x), None
    outputs: list[torch.Tensor] = []
    handle = split.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return logits, outputs[0] if len(outputs) == 1 else None


def input_gradient(model: Any, x: torch.Tensor, loss_of_logits: Any,
                   split: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, d loss / d x)`` for ``loss_of_logits(model(x))`` (a scalar), computing the
    input gradient alone (never the parameters'), with the shortcuts above. Call inside
    :func:`fast_batchnorm_backward` for the batch-norm one."""
    xa = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits, hidden = forward_with_split(model, xa, split)
        loss = loss_of_logits(logits)
        if hidden is None:
            (grad,) = torch.autograd.grad(loss, xa)
        else:
            (at_hidden,) = torch.autograd.grad(loss, hidden)
            with without_onednn():
                (grad,) = torch.autograd.grad(hidden, xa, at_hidden)
    return logits.detach(), grad
