"""Gaussian noise, clipped to [0, 1], then random zero patches: the combined perturbation of
the noise paper (Nguyen et al., arXiv 2405.18499 v3, its code's
``perturbation_input_tensor.py``; docs/perturbations.md#gaussian-patches). Std 0 with no
patches is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lazy import inference_mode, torch
from ..settings import setting
from .checks import require, require_draws
from .context import Draw
from .family import Perturbation, register_perturbation
from .metrics import Strength
from .patches import fitted_patch_size, zero_patches


@dataclass(frozen=True)
class GaussianPatchSettings:
    std: tuple[float, ...] = setting((20 / 255, 40 / 255, 60 / 255),
                                     "Gaussian noise stds in [0, 1] pixel units, one cell each "
                                     "(the paper: 40/255)")
    count: int = setting(2, "zero patches per image after the noise")
    size: int = setting(0, "patch side in pixels; 0: a quarter of the image's shorter side "
                           "(8 px on 32 px images); refused when not smaller than the image")
    draws: int = setting(10, "draws of noise and patch positions per std (the paper: 10)")

    def validate(self) -> None:
        require(bool(self.std), "gaussian-patches needs at least one std")
        for std in self.std:
            require(0 <= std <= 1, f"noise std {std:g} is out of range [0, 1]")
        require(0 <= self.count <= 10_000, f"patch count {self.count} is out of range 0..10000")
        require(0 <= self.size <= 4096, f"patch size must be in 0..4096, got {self.size}")
        require_draws(self.draws)


def gaussian_then_patches(u: torch.Tensor, std: float, count: int, size: int,
                          gen: torch.Generator) -> torch.Tensor:
    """The paper's combined perturbation: ``u + std N(0, I)``, clipped to [0, 1], then
    ``count`` zero patches (std 0 and no patches is the identity)."""
    noisy = (u + std * torch.randn(u.shape, generator=gen, device=u.device)).clamp(0.0, 1.0)
    return zero_patches(noisy, count, size, gen)


@register_perturbation("gaussian-patches", "the noise paper's combined perturbation: Gaussian "
                       "noise (40/255), then random zero patches")
class GaussianPatches(Perturbation):
    Settings = GaussianPatchSettings
    sweep = "std"
    repeats_setting = "draws"
    order = 15
    title = "Gaussian noise + patches"
    short_title = "gauss+patch"
    strengths = {"std": Strength("σ")}
    # [R] one-channel images: not measured yet; the grid reaches the MNIST training noise.
    presets = {"grey": {"std": (0.1, 0.2, 0.3)}}
    headline_setting = {"grey": 0.2, "colour": 40 / 255}

    def begin(self, draw: Draw) -> None:
        draw.state["size"] = fitted_patch_size(self.settings.size, draw.ctx.images.shape)

    @inference_mode
    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: object
                ) -> torch.Tensor:
        return gaussian_then_patches(u, draw.cell.param_value, self.settings.count,
                                     draw.state["size"], draw.generator)
