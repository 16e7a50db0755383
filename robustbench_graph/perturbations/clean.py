"""Clean test accuracy: the reference every perturbation is compared with."""

from __future__ import annotations

from ..config import AttackConfig
from .base import (
    Cell,
    EvalContext,
    Measurement,
    Perturbation,
    accuracy_under,
    register_perturbation,
)


@register_perturbation("clean", "test accuracy without perturbation")
class Clean(Perturbation):
    def cells(self, cfg: AttackConfig) -> list[Cell]:
        return [Cell("clean", "none", 0.0)]

    def measure(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        return [Measurement(0, "accuracy", accuracy_under(ctx), len(ctx.data))]
