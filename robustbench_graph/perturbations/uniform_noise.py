"""Uniform noise U(-eps, eps) per pixel, fresh per image and draw (the noise paper, Nguyen et
al., arXiv 2405.18499 v3, its code's ``perturbation_input_tensor.py``;
docs/perturbations.md#uniform-noise). Strength 0 is the identity; the base class clips.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lazy import inference_mode, torch
from ..settings import setting
from .checks import require, require_draws
from .context import Draw
from .family import Perturbation, register_perturbation
from .metrics import Strength


def uniform_noise(u: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """``u + U(-eps, eps)`` per pixel (not clipped)."""
    noise = torch.rand(u.shape, generator=gen, device=u.device) * 2 - 1
    return u + eps * noise



@dataclass(frozen=True)
class UniformSettings:
    eps: tuple[float, ...] = setting((0.03, 0.06, 0.1), "noise amplitudes in [0, 1] pixel "
                                                        "units (the paper: 0.06)")
    draws: int = setting(10, "noise draws per amplitude (the paper: 10)")

    def validate(self) -> None:
        require(bool(self.eps), "uniform-noise needs at least one eps")
        for eps in self.eps:
            require(0 <= eps <= 1, f"uniform noise eps {eps:g} is out of range [0, 1]")
        require_draws(self.draws)


@register_perturbation("uniform-noise", "uniform noise U(-eps, eps) per pixel, fresh per "
                       "image (the noise paper: eps 0.06, 10 draws)")
class UniformNoise(Perturbation):
    Settings = UniformSettings
    sweep = "eps"
    repeats_setting = "draws"
    order = 12
    title = "Uniform noise"
    short_title = "uniform"
    strengths = {"eps": Strength("ε")}
    # [R] one-channel images: not measured yet; the grid reaches the MNIST L-inf budget.
    presets = {"grey": {"eps": (0.1, 0.2, 0.3, 0.5)}}
    headline_setting = {"grey": 0.3, "colour": 0.06}

    @inference_mode
    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: object
                ) -> torch.Tensor:
        return uniform_noise(u, draw.cell.param_value, draw.generator)
