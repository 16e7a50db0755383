"""Weight quantisation with a per-layer power-of-two scale (LapNet Fig. 6; METHODS.md 1.7).

For every Conv2d and Linear weight: M = max|w|, n = min{n >= 0 : M 2^n >= 1},
v = 2^(bits - 2 + n), w_q = trunc(w v) / v with the integers clamped to
[-(2^(bits-1) - 1), 2^(bits-1) - 1] (5 bits: [-15, 15]). Biases and batch-norm stay in float.
The evaluated model is a copy; the source model is never modified.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..config import AttackConfig
from .base import (
    Cell,
    EvalContext,
    Measurement,
    Perturbation,
    accuracy_under,
    register_perturbation,
)


def power_of_two_scale(weight: torch.Tensor, bits: int) -> float:
    """The scale v of a weight tensor (METHODS.md 1.7)."""
    peak = float(weight.detach().abs().max())
    n = 0
    if 0 < peak < 1:
        n = max(0, math.ceil(-math.log2(peak)))
        while peak * 2.0**n < 1:  # guard against rounding in log2
            n += 1
        while n > 0 and peak * 2.0 ** (n - 1) >= 1:
            n -= 1
    return 2.0 ** (bits - 2 + n)


def quantize_tensor(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, float, int]:
    """Return (quantised weight, scale v, number of clamped entries)."""
    scale = power_of_two_scale(weight, bits)
    limit = 2 ** (bits - 1) - 1
    levels = torch.trunc(weight.detach().double() * scale)
    clamped = int((levels.abs() > limit).sum())
    levels = levels.clamp(-limit, limit)
    return (levels / scale).to(weight.dtype), scale, clamped


def quantized_copy(model: nn.Module, bits: int) -> tuple[nn.Module, int, int]:
    """A copy of ``model`` with every Conv2d/Linear weight quantised, the number of entries
    clamped to the integer range, and the number of quantised entries."""
    clone = copy.deepcopy(model)
    clamped = total = 0
    with torch.no_grad():
        for module in clone.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                q, _, c = quantize_tensor(module.weight, bits)
                module.weight.copy_(q)
                clamped += c
                total += q.numel()
    return clone, clamped, total


@register_perturbation("quantize", "weights quantised per layer to signed integers with a "
                       "power-of-two scale, 5 bits by default (LapNet Fig. 6 right)")
class Quantize(Perturbation):
    def cells(self, cfg: AttackConfig) -> list[Cell]:
        return [Cell("quantize", "bits", float(b)) for b in cfg.quantize_bits]

    def measure(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        model, clamped, total = quantized_copy(ctx.model, int(cell.param_value))
        sub = copy.copy(ctx)  # shares the converted test images
        sub.model = model
        n = len(ctx.data)
        return [Measurement(0, "accuracy", accuracy_under(sub), n),
                Measurement(0, "clamped_weights", float(clamped), total)]
