"""Stationary Point (SP) losses: Gao et al., arXiv 2302.09575 — a RECONSTRUCTION.

The paper's formula could not be retrieved (docs/losses.md#sp). This reconstruction
has the stated property, a stationary point on the correct side (p* > 1/2), with
``p = softmax(z)_y``::

    L(p) = l(p) + lam * l(1 - p)

for a decreasing base loss ``l``. ``L'(p*) = 0`` gives ``lam = l'(p*) / l'(1 - p*)``, so each
loss is parameterised by its stationary point ``p_star``; for cross-entropy
``lam = (1 - p*) / p*``. Since ``L`` depends on ``z`` only through ``p``, ``dL/dz = 0`` at
``p*`` too, and beyond ``p*`` the loss grows: sharpening a classified sample does not pay.
A base loss is a function of ``(log p, log(1 - p))``; ``l(1 - p)`` swaps the arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from ..errors import RbgError
from ..lazy import torch
from ..settings import setting
from .base import GREY_SWEEP, LossOutput, LossPreset, TrainingLoss, register_loss

if TYPE_CHECKING:
    from ..models import TappedModel

BaseLoss = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def log_probs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p, log(1 - p))`` of the true class, stably:
    ``log(1 - p) = logsumexp(z_{-y}) - logsumexp(z)``."""
    lse = torch.logsumexp(logits, dim=1)
    own = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return own - lse, torch.logsumexp(others, dim=1) - lse


def ce_base(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``l(p) = -log p``."""
    return -log_p


def focal_base(log_p: torch.Tensor, log_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """Focal loss ``l(p) = -(1 - p)^gamma log p``."""
    return -torch.exp(gamma * log_q) * log_p


def sp_loss(base: BaseLoss, log_p: torch.Tensor, log_q: torch.Tensor,
            lam: float) -> torch.Tensor:
    """``l(p) + lam * l(1 - p)``, per sample."""
    return base(log_p, log_q) + lam * base(log_q, log_p)


def base_derivative(base: BaseLoss, p: float) -> float:
    """``l'(p)`` by autograd in float64."""
    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(base(torch.log(pt), torch.log1p(-pt)), pt)
    return float(grad)


def lam_for(base: BaseLoss, p_star: float) -> float:
    """The weight that puts the stationary point at ``p_star``: ``l'(p*) / l'(1 - p*)``."""
    return base_derivative(base, p_star) / base_derivative(base, 1.0 - p_star)


def stationary_point(base: BaseLoss, lam: float, tol: float = 1e-12) -> float:
    """The root of ``L'(p) = l'(p) - lam * l'(1 - p)`` in (1/2, 1), by bisection.

    Raises ``RbgError`` when ``L'`` does not go from negative at 1/2 to positive near 1.
    """

    def slope(p: float) -> float:
        return base_derivative(base, p) - lam * base_derivative(base, 1.0 - p)

    lo, hi = 0.5, 1.0 - 1e-9
    if not (slope(lo) < 0 < slope(hi)):
        raise RbgError(f"no stationary point on the correct side (p > 1/2) for lam={lam}")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if slope(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class SPOptions:
    p_star: float = setting(0.9, "the stationary point: target confidence in (0.5, 1)")

    def validate(self) -> None:
        if not 0.5 < self.p_star < 1:
            raise RbgError(f"loss option p_star must be in (0.5, 1), got {self.p_star}")


@dataclass(frozen=True)
class SPFocalOptions(SPOptions):
    gamma: float = setting(2.0, "focal exponent g of the base loss -(1-p)^g log p")

    def validate(self) -> None:
        super().validate()
        if self.gamma < 0:
            raise RbgError(f"loss option gamma must be >= 0, got {self.gamma}")


class StationaryPointLoss(TrainingLoss):
    """``mean_i l(p_i) + lam * l(1 - p_i)``; subclasses give ``base``. On construction the
    stationary point is found numerically and checked to be ``p_star`` (> 1/2)."""

    Options = SPOptions

    def __init__(self, options: SPOptions, num_classes: int) -> None:
        super().__init__(options, num_classes)
        self.lam = lam_for(self.base, options.p_star)
        self.stationary_point = stationary_point(self.base, self.lam)
        if not math.isclose(self.stationary_point, options.p_star, abs_tol=1e-6):
            raise RbgError(f"stationary point {self.stationary_point:.6f} != p_star "
                           f"{options.p_star}")

    @property
    def base(self) -> BaseLoss:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(
        self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:
        logits = model(images)
        log_p, log_q = log_probs(logits, labels)
        loss = sp_loss(self.base, log_p, log_q, self.lam).mean()
        return LossOutput(loss, logits, {"mean_p": float(log_p.detach().exp().mean())})


@register_loss("sp", "stationary-point loss -log p - lam*log(1-p), stationary at p = p_star "
               "(RECONSTRUCTION of Gao et al., arXiv 2302.09575)")
class StationaryPointCE(StationaryPointLoss):
    """SP-CE (reconstruction of arXiv 2302.09575, docs/losses.md#sp)::

        L = -log p - lam * log(1 - p),   lam = (1 - p*) / p*

    Stationary at ``p = p_star`` (default 0.9) and increasing beyond it.
    """

    presets = {"grey": LossPreset({"p_star": 0.8}, GREY_SWEEP)}

    @property
    def base(self) -> BaseLoss:
        return ce_base


@register_loss("sp-focal", "stationary-point focal loss -(1-p)^g log p - lam*p^g log(1-p), "
               "stationary at p = p_star (RECONSTRUCTION of Gao et al., arXiv 2302.09575)")
class StationaryPointFocal(StationaryPointLoss):
    """SP-focal (reconstruction of arXiv 2302.09575 and its ICLR'23 precursor;
    docs/losses.md#sp-focal)::

        L = -(1 - p)^g log p - lam * p^g log(1 - p),   g = gamma (default 2)

    ``lam = l'(p*) / l'(1 - p*)`` (0.0026 for p* = 0.9, g = 2; SP-CE's 1/9 would put the
    stationary point at 0.694), so the stationary point is ``p_star`` as for ``sp``; it is
    found numerically and asserted > 1/2 on construction.
    """

    Options = SPFocalOptions

    @property
    def base(self) -> BaseLoss:
        return partial(focal_base, gamma=self.options.gamma)
