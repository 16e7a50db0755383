"""Cross-entropy: the baseline of every paper."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import TappedModel
from .base import LossOutput, TrainingLoss, register_loss


@register_loss("ce", "cross-entropy; the baseline (Vanilla in LapNet, softmax in LMD)")
class CrossEntropy(TrainingLoss):
    def forward(
        self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:
        logits = model(images)
        return LossOutput(F.cross_entropy(logits, labels), logits)
