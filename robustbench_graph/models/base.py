"""The model contract shared by training, attacks and diagnostics.

Every model takes images in [0, 1] and normalises inside itself (``Normalize``), so attacks
and noise work in pixel space. ``forward_normalized`` skips that step, for perturbations
defined after normalisation (LapNet's "FGSM after normalisation", METHODS.md section 1.3).

Named taps (lists of modules whose forward outputs are the tapped tensors):

* ``relu_taps``: every post-ReLU activation, in order (graph losses, METHODS.md section 3.1);
* ``block_taps``: the output of each block (test-time dropout, section 1.6);
* ``features`` / ``head``: the penultimate feature and the classifier on top of it
  (margin losses, section 4.1);
* ``input_layer``: the first convolution (every path from the input passes through its output).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..data import DatasetInfo
from ..registry import Registry

MODELS: Registry[Callable[..., TappedModel]] = Registry("model")


class Normalize(nn.Module):
    """Channel-wise ``(x - mean) / std`` with the dataset's training statistics."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TappedModel(nn.Module):
    """Base class: ``forward(x) = head(features(x))`` on [0, 1] inputs."""

    normalize: Normalize
    head: nn.Module

    def __init__(self, info: DatasetInfo) -> None:
        super().__init__()
        self.normalize = Normalize(info.mean, info.std)
        self.num_classes = info.num_classes

    def embed(self, u: torch.Tensor) -> torch.Tensor:
        """Penultimate feature of an already-normalised input."""
        raise NotImplementedError

    @property
    def relu_taps(self) -> list[nn.Module]:
        raise NotImplementedError

    @property
    def input_layer(self) -> nn.Module | None:
        """The first layer, through whose single output every path from the input to the
        logits passes (a speed hint for DeepFool's input gradients), or None."""
        return None

    @property
    def block_taps(self) -> list[nn.Module]:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.normalize(x))

    def forward_normalized(self, u: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(u))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(self.normalize(x)))


@contextmanager
def capture(modules: Sequence[nn.Module]) -> Iterator[list[torch.Tensor]]:
    """Collect the forward outputs of ``modules`` (in call order) while the block runs."""
    outputs: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        outputs.append(out)

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


@contextmanager
def transform_outputs(
    modules: Sequence[nn.Module], fn: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Replace each module's forward output by ``fn(output)`` while the block runs."""

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
        return fn(out)

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def create_model(
    name: str, info: DatasetInfo, *, width: int | None = None, feature_dim: int | None = None
) -> TappedModel:
    """Build a registered model for a dataset; ``None`` options take the model's defaults."""
    options = {k: v for k, v in {"width": width, "feature_dim": feature_dim}.items() if v}
    return MODELS.create(name, info=info, **options)
