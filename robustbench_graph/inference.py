"""Batched prediction helpers shared by training and evaluation."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .data import ImageData
from .device import eval_batch_size
from .errors import RbgError


@torch.inference_mode()
def predict(
    forward: Callable[[torch.Tensor], torch.Tensor],
    data: ImageData,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Predicted labels for every image, in batches (``None``: the device's default).

    Raises:
        RbgError: the network's outputs are not finite (never scored as class 0).
    """
    batch_size = batch_size or eval_batch_size(device)
    preds = []
    for start in range(0, len(data), batch_size):
        rows = slice(start, start + batch_size)
        x = data.float(rows).to(device, non_blocking=True)
        logits = forward(x)
        if not bool(torch.isfinite(logits).all()):  # the argmax of NaNs is class 0
            raise RbgError("the network's outputs are not finite numbers (NaN or infinite "
                           "logits); no prediction is made from them")
        preds.append(logits.argmax(dim=1).cpu())
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def accuracy(
    forward: Callable[[torch.Tensor], torch.Tensor],
    data: ImageData,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> float:
    preds = predict(forward, data, batch_size, device)
    return float((preds == data.labels).float().mean()) if len(data) else float("nan")
