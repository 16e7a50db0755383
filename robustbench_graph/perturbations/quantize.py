"""Weight quantisation with a per-layer power-of-two scale (LapNet Fig. 6;
docs/perturbations.md#quantize).

For every Conv2d and Linear weight: M = max|w|, n = min{n >= 0 : M 2^n >= 1},
v = 2^(bits - 2 + n), w_q = trunc(w v) / v with the integers clamped to
[-(2^(bits-1) - 1), 2^(bits-1) - 1] (5 bits: [-15, 15]). Biases and batch-norm stay in float.
The evaluated model is a copy; the source model is never modified.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..lazy import nn, torch
from ..settings import setting
from .checks import require
from .context import Draw
from .family import Perturbation, register_perturbation
from .metrics import ACCURACY, Metric, Strength

if TYPE_CHECKING:
    from ..models import TappedModel


def power_of_two_scale(weight: torch.Tensor, bits: int) -> float:
    """The scale v of a weight tensor (docs/perturbations.md#quantize)."""
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


@dataclass(frozen=True)
class QuantizeSettings:
    bits: tuple[int, ...] = setting((5,), "weight bit widths (LapNet: 5)")

    def validate(self) -> None:
        require(bool(self.bits), "quantize needs at least one bit width")
        for bits in self.bits:
            require(2 <= bits <= 32, f"quantisation bits {bits} out of range 2..32")


@register_perturbation("quantize", "weights quantised per layer to signed integers with a "
                       "power-of-two scale, 5 bits by default (LapNet Fig. 6 right)")
class Quantize(Perturbation):
    Settings = QuantizeSettings
    sweep = "bits"
    order = 40
    title = "Weight quantisation"
    short_title = "quant"
    strengths = {"bits": Strength("", "bits", stronger="lower")}
    # One-channel images: LapNet's 5 bits cost CE nothing on mnist5k; the grid goes on until
    # it breaks (measured, CE, smallcnn, 5 epochs, seeds 0/1: 4 bits 94.9/96.9%, 3 bits
    # 75.4/73.7%, 2 bits 10.1/10.0%; docs/perturbations.md#quantize).
    presets = {"grey": {"bits": (8, 6, 5, 4, 3, 2)}}
    headline_setting = {"grey": 3.0, "colour": 5.0}
    metrics = (ACCURACY, Metric("clamped_weights", "none",
                                "weights clamped to the integer range (a diagnostic)"))

    @contextmanager
    def perturbed_model(self, draw: Draw) -> Iterator[TappedModel]:
        model, clamped, total = quantized_copy(draw.ctx.model, int(draw.cell.param_value))
        draw.put("clamped_weights", float(clamped), total)
        yield model
