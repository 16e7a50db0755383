"""Fast input gradients of eval-mode models, shared by the gradient attacks (DeepFool, PGD).

Two exact shortcuts, each measured on CPU (``bench/RESULTS.md``): an eval-mode batch norm
backpropagates by one per-channel multiply instead of ``native_batch_norm_backward``; and a
one-channel first convolution (MNIST-like inputs) takes PyTorch's own kernel for its input
gradient instead of oneDNN's, by stopping the backward at the layer's output
(``split_layer``) and finishing it with oneDNN off. Results agree to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


@contextmanager
def without_onednn() -> Iterator[None]:
    """oneDNN convolutions off for the block (only that flag, unlike ``mkldnn.flags``)."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


class _AffineGrad(torch.autograd.Function):
    """Returns a copy of ``out`` (a module's output, detached) with the input gradient
    ``grad * scale``: the exact backward of an affine per-channel map, without the module's
    own backward."""

    @staticmethod
    def forward(ctx, out: torch.Tensor, x: torch.Tensor,  # noqa: ANN001
                scale: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scale)
        # A copy, not ``out`` itself: an input returned as-is is a view that autograd forbids
        # modifying in place, and in-place ReLUs follow batch norms (torchvision's ResNets).
        return out.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor, None]:  # noqa: ANN001
        (scale,) = ctx.saved_tensors
        return None, grad * scale, None


def _affine_batchnorm_grad(module: nn.Module, inputs: tuple[torch.Tensor, ...],
                           out: torch.Tensor) -> torch.Tensor:
    """Forward hook for an eval-mode batch norm: same output, input gradient by one multiply
    (``weight / sqrt(running_var + eps)`` per channel) instead of ``native_batch_norm_backward``,
    which measured 3.3x slower than a multiply on CPU (PreActResNet-18 DeepFool step
    1286 -> 1093 ms; gradients equal within 5e-7 relative)."""
    scale = torch.rsqrt(module.running_var + module.eps)
    if module.weight is not None:
        scale = scale * module.weight
    shape = (1, -1) + (1,) * (out.ndim - 2)
    return _AffineGrad.apply(out.detach(), inputs[0], scale.detach().view(shape).to(out.dtype))


@contextmanager
def fast_batchnorm_backward(model: nn.Module) -> Iterator[None]:
    """``_affine_batchnorm_grad`` on every eval-mode batch norm with running statistics."""
    handles = [m.register_forward_hook(_affine_batchnorm_grad) for m in model.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.training
               and m.running_var is not None]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


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
