"""The normalisation check of ``rbg import`` (docs/importing.md#the-normalisation-check).

The most common mistake when evaluating one's own model is feeding it inputs in the wrong
space: a network trained on ``(x - mean) / std`` given [0, 1] pixels, or the reverse. rbg
knows the dataset's statistics, so before anything is written it classifies a few hundred
test images both ways: in the declared space and in the other one (the same mean/std). When
the declared space is near chance and the other far above it, the import is refused with one
line, unless ``--force``. "Near" and "far" are measured on the way from chance to perfect
accuracy: the declared space at most a third of it, the other at least two thirds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import load_dataset
from ..errors import RbgError
from ..models.external import ExternalModel

IMAGES = 300  # test images classified in each space
# In fractions of the way from chance to perfect accuracy (10 classes: 40% and 70%):
NEAR_CHANCE = 1 / 3  # the declared space at most this far: near chance
FAR_ABOVE = 2 / 3  # the other space at least this far: far above it
BATCH = 100


@dataclass(frozen=True)
class CheckResult:
    """Clean accuracies on ``images`` test images in the declared and the other space."""

    images: int
    declared: str
    accuracy_declared: float
    accuracy_other: float
    chance: float

    @property
    def other(self) -> str:
        return "normalized" if self.declared == "pixels" else "pixels"

    @property
    def wrong_space(self) -> bool:
        span = 1.0 - self.chance
        return (self.accuracy_declared <= self.chance + NEAR_CHANCE * span
                and self.accuracy_other >= self.chance + FAR_ABOVE * span)

    def line(self, dataset: str) -> str:
        return (f"the network looks imported in the wrong input space: on {self.images} test "
                f"images of {dataset!r} it is {self.accuracy_declared:.1%} accurate with "
                f"--input {self.declared} (chance {self.chance:.1%}) but "
                f"{self.accuracy_other:.1%} with --input {self.other}")

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "other": self.other}


def _accuracy(model: ExternalModel, x: torch.Tensor, y: torch.Tensor) -> float:
    correct = 0
    with torch.no_grad():
        for start in range(0, len(y), BATCH):
            logits = model(x[start:start + BATCH])
            correct += int((logits.argmax(1) == y[start:start + BATCH]).sum())
    return correct / max(1, len(y))


def check_images(dataset: str, data_dir: Path | None, split_seed: int,
                n: int = IMAGES) -> tuple[torch.Tensor, torch.Tensor] | str:
    """The first ``n`` test images and labels, or why they cannot be read (a dataset whose
    files are not here: the check is then skipped, and says so)."""
    try:
        data = load_dataset(dataset, train=False, data_dir=data_dir, split_seed=split_seed)
    except RbgError as err:
        return str(err)
    index = torch.arange(min(n, len(data)))
    return data.float(index), data.labels[index].long()


def check_normalisation(model: ExternalModel, images: torch.Tensor, labels: torch.Tensor
                        ) -> CheckResult:
    """Clean accuracy of ``model`` in its declared input space and in the other one."""
    declared = model.input_space
    other = "normalized" if declared == "pixels" else "pixels"
    acc_declared = _accuracy(model, images, labels)
    model.input_space = other
    try:
        acc_other = _accuracy(model, images, labels)
    finally:
        model.input_space = declared
    return CheckResult(len(labels), declared, acc_declared, acc_other,
                       1.0 / model.num_classes)
