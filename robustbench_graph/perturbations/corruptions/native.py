"""``mnist-c``: corruptions in the spirit of MNIST-C (Mu & Gilmer, 2019, arXiv 1906.02337),
written in torch (batched, on the device) for images of any size and channel count, e.g.
28x28 grey digits, which the library's corruptions refuse (docs/perturbations.md#mnist-c).

Each corruption has 5 severities (:data:`PARAMS`; 0 is the identity). Sizes in pixels are
those of a 28 px image, scaled with the image's shorter side. Random choices (noise, the
direction of a shift, the sign of a rotation or shear, line positions, the fog field) come
from a generator per image, seeded by (run, corruption, draw, test index), the same at every
severity, so a cell does not depend on the batch size; they are drawn in the same amounts at
every severity, so severity s + 1 moves each image further from
the clean one than severity s. Geometric corruptions resample bilinearly with zeros outside.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...config import stable_seed
from ...lazy import F, inference_mode, torch
from ...settings import setting
from ..context import Draw
from ..family import register_perturbation
from .base import SEVERITIES, CorruptionFamily, check_choice, severity_strengths

REFERENCE = 28  # pixel sizes below are those of a 28 px image
# Severity 1..5 parameter of each corruption (docs/perturbations.md#mnist-c).
PARAMS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.1, 0.2, 0.3, 0.4, 0.5),     # noise std, [0, 1] pixel units
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),  # share of values set to 0 or 1
    "gaussian_blur": (0.5, 0.75, 1.0, 1.25, 1.5),    # kernel std in px
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),         # added to every value
    "contrast": (0.8, 0.65, 0.5, 0.35, 0.2),         # factor of the distance to the mean
    "translate": (2.0, 3.0, 4.0, 5.0, 6.0),          # shift in px, random direction
    "rotate": (10.0, 20.0, 30.0, 40.0, 50.0),        # degrees, random sign
    "shear": (0.1, 0.2, 0.3, 0.4, 0.5),              # horizontal shear factor, random sign
    "scale": (0.9, 0.8, 0.7, 0.6, 0.5),              # zoom-out factor about the centre
    "stripes": (1.0, 2.0, 3.0, 4.0, 5.0),            # white lines of 1 px, random positions
    "fog": (0.15, 0.3, 0.45, 0.6, 0.75),             # amplitude of a smooth random field
}
CORRUPTIONS = tuple(PARAMS)
MAX_LINES = 5


def _rand(shape: tuple[int, ...], gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=like.device, dtype=like.dtype)


def _sign(n: int, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.where(_rand((n,), gen, like) < 0.5, -1.0, 1.0).to(like.dtype)


def _warp(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Resample ``u`` at ``a @ (x, y)`` in pixel-centred coordinates (``a``: (N, 2, 3), the
    translation in pixels); zeros outside."""
    n, _, h, w = u.shape
    # From pixels to affine_grid's normalised coordinates (x over w, y over h).
    to_norm = torch.tensor([[2.0 / w, 0.0], [0.0, 2.0 / h]], device=u.device, dtype=u.dtype)
    from_norm = torch.tensor([[w / 2.0, 0.0], [0.0, h / 2.0]], device=u.device, dtype=u.dtype)
    linear = to_norm @ a[:, :, :2] @ from_norm
    theta = torch.cat([linear, (to_norm @ a[:, :, 2:])], dim=2)
    grid = F.affine_grid(theta, list(u.shape), align_corners=False)
    return F.grid_sample(u, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _affine(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(2, 3, device=like.device, dtype=like.dtype).repeat(n, 1, 1)


def gaussian_noise(u: torch.Tensor, p: float, gen: torch.Generator, px: float) -> torch.Tensor:
    return u + p * torch.randn(u.shape, generator=gen, device=u.device, dtype=u.dtype)


def impulse_noise(u: torch.Tensor, p: float, gen: torch.Generator, px: float) -> torch.Tensor:
    hit, salt = _rand(u.shape, gen, u), _rand(u.shape, gen, u) < 0.5
    return torch.where(hit < p, salt.to(u.dtype), u)


def gaussian_blur(u: torch.Tensor, p: float, gen: torch.Generator, px: float) -> torch.Tensor:
    sigma = p * px
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, device=u.device, dtype=u.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    n, c, h, w = u.shape
    flat = u.reshape(n * c, 1, h, w)
    pad = F.pad(flat, (radius, radius, 0, 0), mode="replicate")
    flat = F.conv2d(pad, k.view(1, 1, 1, -1))
    pad = F.pad(flat, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(pad, k.view(1, 1, -1, 1)).reshape(n, c, h, w)


def brightness(u: torch.Tensor, p: float, gen: torch.Generator, px: float) -> torch.Tensor:
    return u + p


def contrast(u: torch.Tensor, p: float, gen: torch.Generator, px: float) -> torch.Tensor:
    mean = u.mean(dim=(1, 2, 3), keepdim=True)
    return mean + p * (u - mean)


def translate(u: torch.Tensor, p: float, gen: torch.Generator, px: float) -> torch.Tensor:
    angle = _rand((len(u),), gen, u) * (2 * math.pi)
    a = _affine(len(u), u)
    a[:, 0, 2], a[:, 1, 2] = p * px * torch.cos(angle), p * px * torch.sin(angle)
    return _warp(u, a)


def rotate(u: torch.Tensor, p: float, gen: torch.Generator, px: float) -> torch.Tensor:
    t = _sign(len(u), gen, u) * math.radians(p)
    a = _affine(len(u), u)
    a[:, 0, 0], a[:, 0, 1] = torch.cos(t), -torch.sin(t)
    a[:, 1, 0], a[:, 1, 1] = torch.sin(t), torch.cos(t)
    return _warp(u, a)


def shear(u: torch.Tensor, p: float, gen: torch.Generator, px: float) -> torch.Tensor:
    a = _affine(len(u), u)
    a[:, 0, 1] = _sign(len(u), gen, u) * p
    return _warp(u, a)


def scale(u: torch.Tensor, p: float, gen: torch.Generator, px: float) -> torch.Tensor:
    a = _affine(len(u), u) / p
    a[:, :, 2] = 0.0
    return _warp(u, a)


def stripes(u: torch.Tensor, p: float, gen: torch.Generator, px: float) -> torch.Tensor:
    """``p`` white lines per image, each horizontal or vertical at a uniform position."""
    n, _, h, w = u.shape
    vertical = _rand((n, MAX_LINES), gen, u) < 0.5
    where = _rand((n, MAX_LINES), gen, u)
    width = max(1, round(px))
    lines = int(p)
    rows = torch.arange(h, device=u.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=u.device).view(1, 1, 1, w)
    at_col = (where * (w - width + 1)).floor().long().view(n, MAX_LINES, 1, 1)
    at_row = (where * (h - width + 1)).floor().long().view(n, MAX_LINES, 1, 1)
    v = vertical.view(n, MAX_LINES, 1, 1)
    on = torch.where(v, (cols >= at_col) & (cols < at_col + width),
                     (rows >= at_row) & (rows < at_row + width))[:, :lines].any(1)
    return u.masked_fill(on.unsqueeze(1), 1.0)


def fog(u: torch.Tensor, p: float, gen: torch.Generator, px: float) -> torch.Tensor:
    """``u + p * field``: a smooth random field (4x4 and, at half weight, 8x8 uniform values
    upsampled bilinearly), scaled to a maximum of 1 per image, the same in every channel."""
    n, _, h, w = u.shape
    field = sum(weight * F.interpolate(_rand((n, 1, k, k), gen, u), size=(h, w),
                                       mode="bilinear", align_corners=False)
                for k, weight in ((4, 1.0), (8, 0.5)))
    field = field / field.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return u + p * field


FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "gaussian_noise": gaussian_noise, "impulse_noise": impulse_noise,
    "gaussian_blur": gaussian_blur, "brightness": brightness, "contrast": contrast,
    "translate": translate, "rotate": rotate, "shear": shear, "scale": scale,
    "stripes": stripes, "fog": fog,
}


def mnist_c(u: torch.Tensor, name: str, severity: int, gen: torch.Generator) -> torch.Tensor:
    """A batch of [0, 1] images (N, C, H, W) through one corruption at one severity (0: the
    identity), clipped to [0, 1]."""
    if severity == 0:
        return u
    px = min(u.shape[-2:]) / REFERENCE
    return FUNCTIONS[name](u, PARAMS[name][severity - 1], gen, px).clamp(0.0, 1.0)


@dataclass(frozen=True)
class MnistCSettings:
    corruption: tuple[str, ...] = setting(CORRUPTIONS, "corruptions, one curve each (default: "
                                                       "all 11)")
    severity: tuple[int, ...] = setting(SEVERITIES, "severities 1..5, one cell each with "
                                                    "every corruption (0: the clean images)")
    draws: int = setting(1, "draws per cell (fresh random choices per draw)")

    def validate(self) -> None:
        check_choice("mnist-c", self.corruption, self.severity, CORRUPTIONS, self.draws)


@register_perturbation("mnist-c", "11 corruptions x 5 severities in the spirit of MNIST-C "
                       "(noise, blur, brightness, contrast, affine, stripes, fog), native, "
                       "any image size")
class MnistC(CorruptionFamily):
    Settings = MnistCSettings
    order = 15
    title = "MNIST-C corruptions"
    short_title = "mnist-c"
    names = CORRUPTIONS
    strengths = severity_strengths(CORRUPTIONS)
    suite_families = ("grey",)  # --suite all on colour runs measures corruptions instead

    def passes(self, images: int) -> tuple[int, int]:
        """A forward per image, draw and cell, and the corruption made one image at a time:
        counted as a quarter of a forward (measured on mnist5k, batches of 200: 0.19-0.21 ms
        per image on average over the 11, a smallcnn forward 0.77-0.84 ms)."""
        forward, _ = super().passes(images)
        return forward + forward // 4, 0

    @inference_mode
    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: Any
                ) -> torch.Tensor:
        """Each image under its own generator (run, corruption, draw, test index): the values
        do not depend on the batch size or on the other images."""
        severity, seed = self.severity(draw), self.draw_seed(draw)
        if severity == 0:
            return u
        out = []
        for k, i in enumerate(draw.test_indices().tolist()):
            gen = torch.Generator(device=u.device)
            gen.manual_seed(stable_seed(seed, i))
            out.append(mnist_c(u[k:k + 1], draw.cell.param, severity, gen))
        return torch.cat(out)
