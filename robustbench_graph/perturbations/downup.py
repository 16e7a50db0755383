"""Bilinear down-sampling by a factor, then back up to the original size (the noise paper,
Nguyen et al., arXiv 2405.18499 v3, its code's ``perturbation_input_tensor.py``;
docs/perturbations.md#downup). Factor 1 is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lazy import F, inference_mode, torch
from ..settings import setting
from .checks import require
from .context import Draw
from .family import Perturbation, register_perturbation
from .metrics import Strength


def down_up(u: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear down-sampling by ``factor`` (in (0, 1]), then back up to the original size
    (``align_corners=False``, as the paper's code); factor 1 is the identity."""
    if factor >= 1.0:
        return u
    h, w = u.shape[-2:]
    small = (max(1, round(h * factor)), max(1, round(w * factor)))
    down = F.interpolate(u, size=small, mode="bilinear", align_corners=False)
    return F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False)



@dataclass(frozen=True)
class DownUpSettings:
    factor: tuple[float, ...] = setting((0.75, 0.5, 1 / 3), "down-sampling factors in (0, 1] "
                                                            "(the paper's example: 1/3)")

    def validate(self) -> None:
        require(bool(self.factor), "downup needs at least one factor")
        for f in self.factor:
            require(0 < f <= 1, f"down-sampling factor {f:g} is out of range (0, 1]")


@register_perturbation("downup", "bilinear down-sampling by a factor, then back up (the "
                       "noise paper's example: 1/3)")
class DownUp(Perturbation):
    Settings = DownUpSettings
    sweep = "factor"
    order = 13
    title = "Down-up sampling"
    short_title = "down up"
    strengths = {"factor": Strength("factor", stronger="lower")}
    headline_setting = {"grey": 1 / 3, "colour": 1 / 3}

    @inference_mode
    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: object
                ) -> torch.Tensor:
        return down_up(u, draw.cell.param_value)
