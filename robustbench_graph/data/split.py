"""The validation split: a stratified, seeded part of a training split held out from training
(``rbg train --val-fraction``; docs/datasets.md#validation-split).

Each class gives ``round(n_k * fraction)`` of its ``n_k`` training images, drawn by a generator
seeded from the split seed (``stable_seed("validation", split_seed)``), so the same split seed
holds out the same images. Indices are positions in the training split as
:func:`~.datasets.load_dataset` returns it for that split seed; the training part keeps their
order. The test split is not involved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import stable_seed
from ..errors import RbgError
from .sources import stratified_split
from .types import ImageData


@dataclass(frozen=True)
class ValidationSplit:
    """The two parts of a training split: ``train`` (trained on) and ``val`` (held out),
    with the positions of each in the training split (``train_index``, ``val_index``)."""

    train: ImageData
    val: ImageData
    train_index: np.ndarray
    val_index: np.ndarray
    fraction: float
    seed: int

    def record(self) -> dict[str, Any]:
        """What ``config.json`` records (``validation``): the fraction and seed, the images
        per part and per class, and the SHA-256 of the held-out positions (written as
        decimal numbers joined by commas, ascending)."""
        k = self.train.info.num_classes
        per_class = np.bincount(self.val.labels.cpu().numpy(), minlength=k)
        return {
            "fraction": self.fraction,
            "seed": self.seed,
            "train_images": len(self.train),
            "val_images": len(self.val),
            "val_per_class": [int(c) for c in per_class],
            "val_indices_sha256": indices_digest(self.val_index),
        }


def indices_digest(index: np.ndarray) -> str:
    """SHA-256 of sorted positions written as ``"3,17,42"``."""
    text = ",".join(str(int(i)) for i in np.sort(index))
    return hashlib.sha256(text.encode()).hexdigest()


def validation_indices(labels: np.ndarray, fraction: float, seed: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (kept, held-out) positions: ``round(n_k * fraction)`` of each class held out,
    chosen by a generator seeded from ``seed``.

    Raises:
        RbgError: when nothing would be held out, or a class would keep no training image.
    """
    if not 0 < fraction < 1:
        raise RbgError(f"--val-fraction must be in (0, 1) to hold images out, got {fraction}")
    labels = np.asarray(labels)
    keep, held = stratified_split(labels, fraction, stable_seed("validation", seed))
    if len(held) == 0:
        raise RbgError(f"--val-fraction {fraction:g} holds out no image of the {len(labels)} "
                       "training images; use a larger fraction")
    classes = np.unique(labels)
    empty = [int(c) for c in classes if not np.any(labels[keep] == c)]
    if empty:
        raise RbgError(f"--val-fraction {fraction:g} leaves class(es) "
                       f"{', '.join(map(str, empty))} without a training image; use a smaller "
                       "fraction")
    return keep, held


def split_validation(data: ImageData, fraction: float, seed: int) -> ValidationSplit:
    """Hold out the stratified ``fraction`` of ``data`` (a training split) seeded by
    ``seed``; see :func:`validation_indices`."""
    import torch

    keep, held = validation_indices(data.labels.cpu().numpy(), fraction, seed)
    return ValidationSplit(data.subset(torch.from_numpy(keep)),
                           data.subset(torch.from_numpy(held)),
                           keep, held, float(fraction), int(seed))
