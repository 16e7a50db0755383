"""Additive Gaussian noise at a target SNR (LapNet Fig. 4; METHODS.md sections 1.1-1.2).

SNR_dB(x, n) = 20 log10(||x||_2 / ||n||_2) on the un-normalised [0, 1] image and the noise
before clipping. The per-pixel noise std is calibrated so that the expected mean SNR over the
evaluated test images equals the target:
sigma = 10^((mean_i 20 log10 ||x_i|| - SNR) / 20) / sqrt(D).
In the shared mode each drawn pattern is rescaled to the norm sigma sqrt(D), so every draw's
mean SNR is the target exactly (LapNet fixed the scale instead: 14.16 +- 0.10 dB over draws);
in the i.i.d. mode the mean over many images converges to it. The realised mean SNR of each
draw is recorded as metric ``snr_db``. Perturbed images are clipped to [0, 1].

Two modes: ``gaussian`` adds one noise pattern per draw to every test image (the paper's
protocol, 40 draws), ``gaussian-iid`` draws fresh noise per image.
"""

from __future__ import annotations

import math

import torch

from ..config import AttackConfig
from .base import Cell, EvalContext, Measurement, Perturbation, register_perturbation


def snr_db(signal: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Per-image SNR in dB: 20 log10(||x|| / ||n||), norms over all but the first axis."""
    s = signal.flatten(1).norm(dim=1)
    n = noise.flatten(1).norm(dim=1)
    return 20.0 * torch.log10(s / n)


def noise_std_for_snr(images: torch.Tensor, target_db: float) -> float:
    """Per-pixel std whose expected mean SNR over ``images`` is ``target_db``."""
    dim = images[0].numel()
    mean_log_norm = (20.0 * torch.log10(images.flatten(1).double().norm(dim=1))).mean().item()
    return 10.0 ** ((mean_log_norm - target_db) / 20.0) / math.sqrt(dim)


class _Gaussian(Perturbation):
    shared: bool
    setting: str

    def cells(self, cfg: AttackConfig) -> list[Cell]:
        return [Cell(self.name, "snr_db", float(s), {"draws": cfg.gaussian_draws})
                for s in getattr(cfg, self.setting) or ()]

    @torch.inference_mode()
    def measure(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        images = ctx.images
        sigma = noise_std_for_snr(images, cell.param_value)
        shape = (1, *images.shape[1:])
        n_img = len(ctx.data)
        rows = []
        for r in range(int(cell.options["draws"])):
            gen = ctx.generator(cell, r)
            pattern = torch.randn(shape, generator=gen, device=ctx.device)
            pattern *= sigma * math.sqrt(pattern.numel()) / pattern.norm()
            correct, snr_sum = 0, 0.0
            for x, y in ctx.batches():
                noise = pattern if self.shared else sigma * torch.randn(
                    x.shape, generator=gen, device=ctx.device)
                noisy = (x + noise).clamp_(0.0, 1.0)
                correct += int((ctx.model(noisy).argmax(1) == y).sum())
                snr_sum += float(snr_db(x, noise.expand_as(x)).sum())
            rows += [Measurement(r, "accuracy", correct / n_img, n_img),
                     Measurement(r, "snr_db", snr_sum / n_img, n_img)]
        rows.append(Measurement(0, "noise_std", sigma, n_img))
        return rows


@register_perturbation("gaussian", "Gaussian noise at a target SNR, one pattern per draw for "
                       "the whole test set (LapNet protocol), 40 draws")
class SharedGaussian(_Gaussian):
    shared = True
    setting = "gaussian_snr"


@register_perturbation("gaussian-iid", "Gaussian noise at a target SNR, fresh noise per image")
class IidGaussian(_Gaussian):
    shared = False
    setting = "gaussian_iid_snr"
