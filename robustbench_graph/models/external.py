"""An outside classifier behind the model contract (``rbg import``, docs/models.md#import).

:class:`ExternalModel` wraps any ``nn.Module`` that maps an image batch to (batch, classes)
logits. It declares what the network expects, so that every perturbation stays right:

* ``input_space="pixels"``: the network takes [0, 1] images and normalises inside itself;
  ``forward(x) = net(x)`` and, for perturbations defined after normalisation,
  ``forward_normalized(u) = net(u * std + mean)``;
* ``input_space="normalized"``: the network takes ``(x - mean) / std``;
  ``forward(x) = net((x - mean) / std)`` and ``forward_normalized(u) = net(u)``.

Either way ``forward_normalized(normalize(x)) == forward(x)``, with the declared mean/std.
Block taps are named modules of the network (test-time dropout); ReLU taps are its
``nn.ReLU`` modules, each call one tap (a module used twice, like torchvision's ResNet
blocks, gives two). There is no feature/head split: an imported model is evaluated, not
trained with rbg's margin losses. A network whose gradients are unusable (an ONNX conversion
that is not differentiable) is built with ``no_gradient``, the line it raises when asked for
one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..data import DatasetInfo
from ..errors import RbgError
from .base import Normalize, TappedModel

INPUT_SPACES = ("pixels", "normalized")


def default_blocks(net: nn.Module) -> list[str]:
    """The top-level children that hold parameters, except the last (the classifier)."""
    names = [name for name, child in net.named_children()
             if any(True for _ in child.parameters())]
    return names[:-1]


class ExternalModel(TappedModel):
    """An outside network ``net`` on [0, 1] inputs (see the module docstring)."""

    def __init__(self, net: nn.Module, info: DatasetInfo, *, input_space: str,
                 mean: Sequence[float], std: Sequence[float], blocks: Sequence[str],
                 no_gradient: str | None = None) -> None:
        super().__init__(info)
        self.no_gradient = no_gradient  # why gradients are refused (None: white-box)
        if input_space not in INPUT_SPACES:
            raise RbgError(f"unknown input space {input_space!r}; valid: "
                           f"{', '.join(INPUT_SPACES)}")
        self.normalize = Normalize(mean, std)
        self.net = net
        self.input_space = input_space
        self.block_names = tuple(blocks)
        for name in self.block_names:
            self._submodule(name)  # checked now, not at the first dropout cell

    def _submodule(self, name: str) -> nn.Module:
        try:
            return self.net.get_submodule(name)
        except AttributeError:
            top = ", ".join(n for n, _ in self.net.named_children()) or "none"
            raise RbgError(f"the model has no module {name!r} for --blocks (its top-level "
                           f"modules: {top})") from None

    def _check_gradient(self, x: torch.Tensor) -> None:
        if self.no_gradient is not None and torch.is_grad_enabled() and x.requires_grad:
            raise RbgError(self.no_gradient)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_gradient(x)
        return self.net(x if self.input_space == "pixels" else self.normalize(x))

    def forward_normalized(self, u: torch.Tensor) -> torch.Tensor:
        self._check_gradient(u)
        if self.input_space == "normalized":
            return self.net(u)
        return self.net(u * self.normalize.std + self.normalize.mean)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise RbgError("an imported model has no feature/classifier split; rbg's margin "
                       "losses train only rbg's models")

    def embed(self, u: torch.Tensor) -> torch.Tensor:
        return self.features(u)

    @property
    def relu_taps(self) -> list[nn.Module]:
        return [m for m in self.net.modules() if isinstance(m, nn.ReLU)]

    @property
    def block_taps(self) -> list[nn.Module]:
        return [self._submodule(name) for name in self.block_names]
