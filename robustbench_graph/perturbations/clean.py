"""Clean test accuracy: the reference every perturbation is compared with."""

from __future__ import annotations

from .family import Perturbation, register_perturbation


@register_perturbation("clean", "test accuracy without perturbation")
class Clean(Perturbation):
    order = 0
    title = "Clean"
