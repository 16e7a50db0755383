"""Test-time inverted dropout after each block (LapNet Fig. 6; docs/perturbations.md#dropout).

Batch-norm stays in eval mode; dropout with rate p (survivors scaled by 1/(1-p)) is applied to
the output of the model's block taps (``model.block_taps``): all of them by default, or those
numbered in ``blocks`` (1-based). On PreActResNet18 the taps are LapNet's 8 residual blocks; on
``smallcnn`` they are its two convolution blocks *and* the 128-unit layer feeding the
classifier, which is harsher than LapNet's placement (measured, CE on mnist5k, seed 0, 5
epochs, 97.2% clean: 92.5% / 85.1% at p = 0.25 / 0.40 with it, 96.2% / 94.8% with
``blocks=1,2``). Each p is evaluated on its own,
unlike the released LapNet script whose counters carried over from p=0.25 into p=0.40. Masks
come from a generator seeded per (run, p, repeat), so repeats differ and are reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RbgError
from ..lazy import torch
from ..settings import setting
from .checks import require
from .context import Draw
from .family import Perturbation, register_perturbation
from .metrics import Strength

if TYPE_CHECKING:
    from ..models import TappedModel


def seeded_dropout(p: float, gen: torch.Generator):  # noqa: ANN201
    """An inverted-dropout function drawing its masks from ``gen``."""
    keep = 1.0 - p

    def apply(t: torch.Tensor) -> torch.Tensor:
        if p == 0.0:
            return t
        mask = torch.empty_like(t).bernoulli_(keep, generator=gen)
        return t * mask.div_(keep)

    return apply


@dataclass(frozen=True)
class DropoutSettings:
    p: tuple[float, ...] = setting((0.25, 0.40), "dropout rates (LapNet: 0.25, 0.40)")
    repeats: int = setting(40, "repeats per rate (LapNet: 40)")
    blocks: tuple[int, ...] = setting((), "block taps to drop after, numbered from 1 "
                                          "(empty: all of the model's blocks)")

    def validate(self) -> None:
        require(bool(self.p), "dropout needs at least one p")
        for p in self.p:
            require(0 <= p < 1, f"dropout p {p:g} is out of range [0, 1)")
        require(0 < self.repeats <= 100_000, f"repeats must be in 1..100000, got {self.repeats}")
        require(all(b >= 1 for b in self.blocks), "dropout blocks are numbered from 1")


@register_perturbation("dropout", "test-time dropout after each block, LapNet's p in "
                       "{0.25, 0.40} (to 0.75 on one-channel images), 40 repeats (Fig. 6)")
class BlockDropout(Perturbation):
    Settings = DropoutSettings
    sweep = "p"
    repeats_setting = "repeats"
    order = 30
    title = "Test-time dropout"
    short_title = "drop"
    strengths = {"p": Strength("p")}
    # One-channel images: LapNet's rates cost CE 4 and 11 points on mnist5k; the grid goes on
    # until it breaks (measured, CE, smallcnn, 5 epochs, seeds 0/1: p=0.5 78.3/80.7%,
    # p=0.75 46.6/46.8% against 97.2/97.9% clean; docs/perturbations.md#dropout).
    presets = {"grey": {"p": (0.1, 0.25, 0.4, 0.5, 0.6, 0.75)}}
    headline_setting = {"grey": 0.5, "colour": 0.4}

    def passes(self, images: int) -> tuple[int, int]:
        """A forward per image, rate and repeat, a third dearer for the masks drawn on every
        tapped activation (measured on mnist5k, batches of 200: 1.33-1.40x a smallcnn
        forward)."""
        forward, _ = super().passes(images)
        return forward + forward // 3, 0

    def taps(self, model: TappedModel, where: str = "") -> list[torch.nn.Module]:
        taps = model.block_taps
        if not taps:  # e.g. imported with --blocks '': the rows would be the clean accuracy
            raise RbgError(f"{where + ': ' if where else ''}dropout has no block to act "
                           "after (the model declares none; an imported model names them "
                           "with --blocks)")
        if not self.settings.blocks:
            return taps
        if max(self.settings.blocks) > len(taps):
            raise RbgError(f"dropout blocks {self.settings.blocks} name a block beyond the "
                           f"model's {len(taps)}")
        return [taps[b - 1] for b in self.settings.blocks]

    @contextmanager
    def perturbed_model(self, draw: Draw) -> Iterator[TappedModel]:
        from ..models import transform_outputs

        model = draw.ctx.model
        drop = seeded_dropout(draw.cell.param_value, draw.generator)
        with transform_outputs(self.taps(model, draw.ctx.where), drop):
            yield model
