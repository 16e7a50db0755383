"""Validation during training (``rbg train --val-fraction``, ``--select``): the accuracy and
loss of the network on the held-out part of the training split after every epoch
(:func:`evaluate`), and the epoch whose weights a ``best-val`` run keeps (:class:`BestEpoch`).

The choice reads the validation split only: the highest validation accuracy, ties going to
the earliest epoch. The test split plays no part in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..data import ImageData
from ..device import eval_batch_size


@torch.inference_mode()
def evaluate(model: torch.nn.Module, data: ImageData, device: torch.device
             ) -> tuple[float, float]:
    """``(accuracy, loss)`` of ``model`` (in eval mode) on ``data``: the loss is the mean
    cross-entropy of the network's outputs, whatever loss trained it, so that it compares
    across losses."""
    batch = eval_batch_size(device)
    correct, total = 0, 0.0
    for start in range(0, len(data), batch):
        rows = slice(start, start + batch)
        x = data.float(rows).to(device, non_blocking=True)
        y = data.labels[rows].to(device)
        logits = model(x).float()
        correct += int((logits.argmax(1) == y).sum())
        total += float(F.cross_entropy(logits, y, reduction="sum"))
    n = len(data)
    return (correct / n, total / n) if n else (math.nan, math.nan)


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


@dataclass
class BestEpoch:
    """The best validation epoch so far (1-based; 0 before the first) with its accuracy, the
    network's weights and the loss's state at its end, kept on the CPU. Carried by the
    checkpoint (:meth:`state`, :meth:`from_state`) so that a resumed run chooses as an
    uninterrupted one."""

    epoch: int = 0
    accuracy: float = -math.inf
    model: dict[str, torch.Tensor] = field(default_factory=dict)
    loss: dict[str, torch.Tensor] = field(default_factory=dict)

    def offer(self, epoch: int, accuracy: float, model: torch.nn.Module,
              loss_fn: torch.nn.Module) -> bool:
        """Keep this epoch if its validation accuracy beats the best so far (strictly: a tie
        keeps the earlier epoch); returns whether it was kept."""
        if not accuracy > self.accuracy:
            return False
        self.epoch, self.accuracy = epoch, accuracy
        self.model, self.loss = _cpu_copy(model.state_dict()), _cpu_copy(loss_fn.state_dict())
        return True

    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "accuracy": self.accuracy, "model": self.model,
                "loss": self.loss}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BestEpoch:
        epoch, acc = state["epoch"], state["accuracy"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1 \
                or not isinstance(acc, float) or not isinstance(state["model"], dict):
            raise ValueError("the best validation epoch is damaged")
        return cls(epoch, acc, dict(state["model"]), dict(state["loss"]))
