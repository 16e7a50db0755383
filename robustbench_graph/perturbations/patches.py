"""Random square zero patches at fresh positions per image and draw (the noise paper, Nguyen
et al., arXiv 2405.18499 v3, its code's ``perturbation_input_tensor.py``;
docs/perturbations.md#patches). No patches is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RbgError
from ..lazy import inference_mode, torch
from ..settings import setting
from .checks import require, require_draws
from .context import Draw
from .family import Perturbation, register_perturbation
from .metrics import Strength


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


def fitted_patch_size(size: int, shape: torch.Size) -> int:
    """The patch side for images of ``shape`` (:func:`patch_size`), refused where it does not
    fit (:func:`check_patch_fits`): a family's ``begin``, before any batch."""
    side = patch_size(size, shape)
    check_patch_fits(side, shape)
    return side


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
        require_draws(self.draws)


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
        draw.state["size"] = fitted_patch_size(self.settings.size, draw.ctx.images.shape)

    @inference_mode
    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: object
                ) -> torch.Tensor:
        return zero_patches(u, int(draw.cell.param_value), draw.state["size"], draw.generator)
