"""The perturbation contract: a perturbation expands settings into *cells* and measures one.

A :class:`Cell` (perturbation, param, param_value, options) is plain data; with a run folder it
is one independent, idempotent unit of evaluation work. ``measure`` returns tidy
:class:`Measurement` rows; the driver (:mod:`robustbench_graph.evaluate`) adds the run columns.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..config import AttackConfig, stable_seed
from ..data import ImageData
from ..models import TappedModel
from ..registry import Registry


@dataclass(frozen=True)
class Cell:
    perturbation: str
    param: str
    param_value: float
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str, float]:
        return (self.perturbation, self.param, float(self.param_value))

    @property
    def label(self) -> str:
        if self.param == "none":
            return self.perturbation
        value = f"{self.param_value:g}"
        return f"{self.perturbation} {self.param}={value}"


@dataclass(frozen=True)
class Measurement:
    repeat: int
    metric: str
    value: float
    n: int


@dataclass
class EvalContext:
    """What a perturbation needs: the model (eval mode, [0, 1] inputs) and the test images."""

    model: TappedModel
    data: ImageData
    device: torch.device
    run: str
    batch_size: int = 200

    def seed(self, cell: Cell, repeat: int = 0) -> int:
        """Stable seed of one repeat of one cell of one run."""
        return stable_seed(self.run, cell.perturbation, cell.param, cell.param_value, repeat)

    def generator(self, cell: Cell, repeat: int = 0) -> torch.Generator:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed(cell, repeat))
        return gen

    @functools.cached_property
    def images(self) -> torch.Tensor:
        """All test images as [0, 1] floats on the device, converted once per context."""
        return self.data.float().to(self.device, non_blocking=True)

    @functools.cached_property
    def labels(self) -> torch.Tensor:
        return self.data.labels.to(self.device, non_blocking=True)

    def batches(self):  # noqa: ANN201
        """Yield ``(x, y)`` batches of [0, 1] images on the device."""
        for start in range(0, len(self.data), self.batch_size):
            rows = slice(start, start + self.batch_size)
            yield self.images[rows], self.labels[rows]


class Perturbation:
    """Base class of a registered perturbation family."""

    name: ClassVar[str]

    def cells(self, cfg: AttackConfig) -> list[Cell]:  # pragma: no cover - abstract
        raise NotImplementedError

    def measure(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:  # pragma: no cover
        raise NotImplementedError


PERTURBATIONS: Registry[type[Perturbation]] = Registry("perturbation")


def register_perturbation(name: str, description: str):  # noqa: ANN201
    def decorate(cls: type[Perturbation]) -> type[Perturbation]:
        cls.name = name
        PERTURBATIONS.register(name, description)(cls)
        return cls

    return decorate


@torch.inference_mode()
def accuracy_under(ctx: EvalContext, perturb=None) -> float:  # noqa: ANN001
    """Accuracy of ``ctx.model`` on the test images, each batch passed through
    ``perturb(x, y, batch_index)`` first when given."""
    correct = 0
    for i, (x, y) in enumerate(ctx.batches()):
        if perturb is not None:
            x = perturb(x, y, i)
        correct += int((ctx.model(x).argmax(1) == y).sum())
    return correct / len(ctx.data)
