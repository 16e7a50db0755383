"""Dataset families: the two kinds of dataset that presets (perturbation strengths, loss
options) tell apart.

``grey`` is one-channel images such as MNIST, ``colour`` CIFAR-like ones; the papers' values
are the colour ones, and the grey presets exist because those values do not transfer to
MNIST-like sets (docs/perturbations.md, docs/losses.md#presets).
"""

from __future__ import annotations

from .types import DatasetInfo

FAMILIES = ("grey", "colour")


def dataset_family(info: DatasetInfo) -> str:
    """``grey`` for one-channel images (MNIST-like budgets), else ``colour`` (the papers')."""
    return "grey" if info.input_shape[0] == 1 else "colour"


def family_of(dataset: str) -> str | None:
    """The family of a registered dataset from its declared info, without reading files;
    ``None`` where the shape is known only from the files (``imagefolder``) or the name is
    not registered."""
    from .datasets import DATASETS

    if dataset not in DATASETS:
        return None
    info = DATASETS.create(dataset).info
    return dataset_family(info) if info.input_shape[0] > 0 else None
