"""Dataset families for the perturbations' ``presets`` and ``headline_setting`` (keyed by
them): defined once in :mod:`robustbench_graph.data.families`, where the losses' presets read
them too."""

from __future__ import annotations

from ..data.families import FAMILIES, dataset_family

__all__ = ["FAMILIES", "dataset_family"]
