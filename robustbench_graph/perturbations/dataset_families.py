"""Dataset families: the two kinds of dataset a family's presets and the suite tell apart.

``grey`` is one-channel images such as MNIST, ``colour`` CIFAR-like ones; a family's
``presets`` and ``headline_setting`` are keyed by them, because the papers' budgets are too
weak for MNIST (docs/perturbations.md).
"""

from __future__ import annotations

from ..data import DatasetInfo

FAMILIES = ("grey", "colour")


def dataset_family(info: DatasetInfo) -> str:
    """``grey`` for one-channel images (MNIST-like budgets), else ``colour`` (the papers')."""
    return "grey" if info.input_shape[0] == 1 else "colour"
