"""Gaussian noise injection: LMD-Noise and its baselines (Nguyen et al., arXiv 2405.18499 v3).

All four losses see a noisy view ``clip(x + sigma * eps, 0, 1)`` of the batch, with
``eps ~ N(0, I)`` fresh per sample per step from torch's global RNG (seeded by ``rbg train``)
and ``sigma`` in [0, 1] pixel units (docs/losses.md#lmd-noise). Unlike the paper, where the
clean and noisy views are augmented independently, here both views share the augmentation the
training loop applied: the noise is the only difference between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RbgError
from ..lazy import F, torch
from ..settings import setting
from .base import GREY_SWEEP, LossOutput, LossPreset, TrainingLoss, register_loss
from .lmd import LargeMarginDiscriminative, LMDOptions

if TYPE_CHECKING:
    from ..models import TappedModel

PAPER = "arXiv 2405.18499 v3"


def noisy_view(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """``clip(x + sigma * N(0, I), 0, 1)``, noise from torch's global RNG."""
    return (images + sigma * torch.randn_like(images)).clamp(0.0, 1.0)


def clean_and_noisy(
    model: TappedModel, images: torch.Tensor, labels: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two forward passes (separate batch statistics, as the paper's code): clean features, noisy
    features, clean logits and the cross-entropy on the clean images."""
    feats = model.features(images)
    noisy = model.features(noisy_view(images, sigma))
    logits = model.head(feats)
    return feats, noisy, logits, F.cross_entropy(logits, labels)


def _check_sigma(sigma: float) -> None:
    if sigma <= 0:
        raise RbgError(f"loss option sigma must be positive, got {sigma}")


@dataclass(frozen=True)
class NoiseOptions:
    sigma: float = setting(0.06, "std of the input noise, in [0, 1] pixel units")

    def validate(self) -> None:
        _check_sigma(self.sigma)


@dataclass(frozen=True)
class LMDNoiseOptions(LMDOptions):
    """LMD's options with LMD-Noise's defaults: ``delta_dist`` 5, ``sigma`` 0.06
    (docs/losses.md#lmd-noise)."""

    delta_dist: float = setting(5.0, "margin: wanted distance of class means to the "
                                     "boundaries (noise paper's code: 5)")
    sigma: float = setting(0.06, "std of the input noise, in [0, 1] pixel units")

    def validate(self) -> None:
        super().validate()
        _check_sigma(self.sigma)


@register_loss("lmd-noise", "LMD with Gaussian noise injection: CE on clean images, noisy "
               f"features pulled into the clean class-centre balls (Nguyen et al., {PAPER})")
class LMDNoise(LargeMarginDiscriminative):
    """LMD-Noise (arXiv 2405.18499 v3, docs/losses.md#lmd-noise)::

        L = CE(clean) + lam * (alpha * L_align+compact + beta * L_margin + gamma_reg * L_reg)

    Two forward passes (clean, noisy). The centres, margin and ``L_reg`` come from the clean
    features only; ``L_align+compact`` applies LMD's compactness hinge to the clean and the
    noisy features of each class alike (the ``1 / (2 n_k)`` average), pulling the noisy ones
    into the radius-``delta_var`` ball of the clean centre.
    """

    # The sweep tried sigma at lam 0.1 (at lam 1 the features collapse in epoch 1 on mnist5k,
    # docs/fidelity.md); sigma 0.3 is the strongest within the budget.
    presets = {"grey": LossPreset({"lam": 0.1, "sigma": 0.3}, GREY_SWEEP)}

    Options = LMDNoiseOptions

    def forward(
        self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:
        feats, noisy, logits, ce = clean_and_noisy(model, images, labels, self.options.sigma)
        extra, parts = self.discriminative(model, feats, labels, extra=noisy)
        return LossOutput(ce + extra, logits, {"ce": float(ce.detach()), **parts})


@register_loss("noisy", f"cross-entropy on Gaussian-noised images only; LMD-Noise baseline "
               f"(Nguyen et al., {PAPER})")
class NoisyCE(TrainingLoss):
    """Baseline "Noisy" of arXiv 2405.18499 v3 (docs/losses.md#noisy): CE on the noisy view only.
    The returned logits (and so the logged training accuracy) are the noisy ones."""

    presets = {"grey": LossPreset({"sigma": 0.3}, GREY_SWEEP)}

    Options = NoiseOptions

    def forward(
        self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:
        logits = model(noisy_view(images, self.options.sigma))
        return LossOutput(F.cross_entropy(logits, labels), logits)


@register_loss("both", f"cross-entropy on clean and Gaussian-noised images in one pass; "
               f"LMD-Noise baseline (Nguyen et al., {PAPER})")
class BothCE(TrainingLoss):
    """Baseline "Both" of arXiv 2405.18499 v3 (docs/losses.md#both): CE over the concatenation
    ``[clean; noisy]`` in one forward pass of 2B images. Returns the clean logits."""

    presets = {"grey": LossPreset({"sigma": 0.3}, GREY_SWEEP)}

    Options = NoiseOptions

    def forward(
        self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:
        logits = model(torch.cat([images, noisy_view(images, self.options.sigma)]))
        loss = F.cross_entropy(logits, torch.cat([labels, labels]))
        return LossOutput(loss, logits[: len(labels)])


@dataclass(frozen=True)
class StabilityOptions(NoiseOptions):
    weight: float = setting(1.0, "weight of the clean-noisy feature distance (paper's code: 1)")

    def validate(self) -> None:
        super().validate()
        if self.weight < 0:
            raise RbgError(f"loss option weight must be >= 0, got {self.weight}")


@register_loss("stability", f"CE + L2 distance of clean and Gaussian-noised penultimate "
               f"features; LMD-Noise baseline (Nguyen et al., {PAPER})")
class StabilityTraining(TrainingLoss):
    """Baseline "Stability" of arXiv 2405.18499 v3 (docs/losses.md#stability)::

        L = CE(clean) + weight * (1/B) sum_i ||f_i - f~_i||_2

    on penultimate features, with the plain (not squared) L2 norm; not the KL-on-logits form
    of Zheng et al. Two forward passes.
    """

    # sigma 0.3 collapsed every seed of the sweep to chance (10%).
    presets = {"grey": LossPreset({"sigma": 0.15}, GREY_SWEEP)}

    Options = StabilityOptions

    def forward(
        self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:
        feats, noisy, logits, ce = clean_and_noisy(model, images, labels, self.options.sigma)
        gap = torch.linalg.vector_norm(feats - noisy, dim=1).mean()
        loss = ce + self.options.weight * gap
        parts = {"ce": float(ce.detach()), "stability": float(gap.detach())}
        return LossOutput(loss, logits, parts)
