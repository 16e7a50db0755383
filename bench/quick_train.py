"""The benchmarks' short training loop: plain SGD (momentum 0.9) on cross-entropy over
shuffled batches, no schedule and no logging. Not rbg's trainer: a bench only needs a model
that has learned something, trained the same way on both sides of its comparison."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sgd_cross_entropy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                      epochs: int, lr: float = 0.05, batch: int = 100) -> torch.nn.Module:
    """Train ``model`` in place for ``epochs`` passes over (``x``, ``y``); returns it in
    eval mode. The shuffling draws from torch's global generator: seed it before."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(batch):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()
