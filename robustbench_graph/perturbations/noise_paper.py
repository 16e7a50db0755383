"""The noise-injection paper's test perturbations (Nguyen et al., arXiv 2405.18499 v3, its
code's ``perturbation_input_tensor.py``; docs/perturbations.md#uniform-noise): uniform noise,
bilinear down-then-up sampling, random zero patches and Gaussian noise followed by patches
(the paper's "combined" perturbation), in [0, 1] pixel space, then clipped
(by the base class). Random ones take ``draws`` draws per cell (the paper: K = 10), each from
the cell's seeded generator; strength 0 (eps 0, factor 1, no patches) is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import RbgError
from ..settings import setting
from .base import Draw, Perturbation, Strength, register_perturbation, require


def uniform_noise(u: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """``u + U(-eps, eps)`` per pixel (not clipped)."""
    noise = torch.rand(u.shape, generator=gen, device=u.device) * 2 - 1
    return u + eps * noise


def down_up(u: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear down-sampling by ``factor`` (in (0, 1]), then back up to the original size
    (``align_corners=False``, as the paper's code); factor 1 is the identity."""
    if factor >= 1.0:
        return u
    h, w = u.shape[-2:]
    small = (max(1, round(h * factor)), max(1, round(w * factor)))
    down = F.interpolate(u, size=small, mode="bilinear", align_corners=False)
    return F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False)


def patch_size(size: int, shape: torch.Size) -> int:
    """The patch side: ``size``, or for 0 a quarter of the images' shorter side (8 px on
    32 px images, 7 on 28 px, 2 on 8 px)."""
    return size if size else max(1, min(shape[-2:]) // 4)


def check_patch_fits(size: int, shape: torch.Size) -> None:
    """Refuse a patch as large as the images or larger (the paper's code then silently does
    nothing; one as large blanks the image)."""
    h, w = shape[-2:]
    if size >= min(h, w):
        raise RbgError(f"patches of {size} px do not fit {h}x{w} images (the paper's code "
                       f"then does nothing); choose a patch size < {min(h, w)}, or 0 for a "
                       "quarter of the image")


def zero_patches(u: torch.Tensor, count: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` square zero patches of ``size`` pixels per image at uniform positions."""
    check_patch_fits(size, u.shape)
    h, w = u.shape[-2:]
    out = u.clone()
    if count == 0:
        return out
    n = len(u)
    top = torch.randint(0, h - size + 1, (n, count), generator=gen, device=u.device)
    left = torch.randint(0, w - size + 1, (n, count), generator=gen, device=u.device)
    rows = torch.arange(h, device=u.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=u.device).view(1, 1, 1, w)
    y0, x0 = top.view(n, count, 1, 1), left.view(n, count, 1, 1)
    inside = ((rows >= y0) & (rows < y0 + size) & (cols >= x0) & (cols < x0 + size)).any(1)
    return out.masked_fill(inside.unsqueeze(1), 0.0)


def _check_draws(draws: int) -> None:
    require(0 < draws <= 100_000, f"draws must be in 1..100000, got {draws}")


@dataclass(frozen=True)
class UniformSettings:
    eps: tuple[float, ...] = setting((0.03, 0.06, 0.1), "noise amplitudes in [0, 1] pixel "
                                                        "units (the paper: 0.06)")
    draws: int = setting(10, "noise draws per amplitude (the paper: 10)")

    def validate(self) -> None:
        require(bool(self.eps), "uniform-noise needs at least one eps")
        for eps in self.eps:
            require(0 <= eps <= 1, f"uniform noise eps {eps:g} is out of range [0, 1]")
        _check_draws(self.draws)


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

    @torch.inference_mode()
    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: object
                ) -> torch.Tensor:
        return uniform_noise(u, draw.cell.param_value, draw.generator)


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

    @torch.inference_mode()
    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: object
                ) -> torch.Tensor:
        return down_up(u, draw.cell.param_value)


@dataclass(frozen=True)
class PatchSettings:
    count: tuple[int, ...] = setting((1, 2, 4), "zero patches per image, one cell each (the "
                                                "paper's example: 20 of 70 px on large images)")
    size: int = setting(0, "patch side in pixels; 0: a quarter of the image's shorter side "
                           "(8 px on 32 px images); refused when not smaller than the image")
    draws: int = setting(10, "draws of patch positions per count (the paper: 10)")

    def validate(self) -> None:
        require(bool(self.count), "patches needs at least one count")
        for c in self.count:
            require(0 <= c <= 10_000, f"patch count {c} is out of range 0..10000")
        require(0 <= self.size <= 4096, f"patch size must be in 0..4096, got {self.size}")
        _check_draws(self.draws)


@register_perturbation("patches", "random square zero patches (the noise paper's patch mask), "
                       "fresh positions per image and draw")
class Patches(Perturbation):
    Settings = PatchSettings
    sweep = "count"
    repeats_setting = "draws"
    order = 14
    title = "Zero patches"
    short_title = "patches"
    strengths = {"count": Strength("patches")}
    headline_setting = {"grey": 2.0, "colour": 2.0}

    def begin(self, draw: Draw) -> None:
        shape = draw.ctx.images.shape
        draw.state["size"] = patch_size(self.settings.size, shape)
        check_patch_fits(draw.state["size"], shape)  # before any batch

    @torch.inference_mode()
    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: object
                ) -> torch.Tensor:
        return zero_patches(u, int(draw.cell.param_value), draw.state["size"], draw.generator)


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
        _check_draws(self.draws)


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
        shape = draw.ctx.images.shape
        draw.state["size"] = patch_size(self.settings.size, shape)
        check_patch_fits(draw.state["size"], shape)

    @torch.inference_mode()
    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: object
                ) -> torch.Tensor:
        return gaussian_then_patches(u, draw.cell.param_value, self.settings.count,
                                     draw.state["size"], draw.generator)
