"""Cross-entropy: the baseline of every paper."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import F, torch
from .base import LossOutput, TrainingLoss, register_loss

if TYPE_CHECKING:
    from ..models import TappedModel


@register_loss("ce", "cross-entropy; the baseline (Vanilla in LapNet, softmax in LMD)")
class CrossEntropy(TrainingLoss):
    def forward(
        self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:
        logits = model(images)
        return LossOutput(F.cross_entropy(logits, labels), logits)
