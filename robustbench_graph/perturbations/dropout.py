"""Test-time inverted dropout after each block (LapNet Fig. 6; METHODS.md section 1.6).

Batch-norm stays in eval mode; dropout with rate p (survivors scaled by 1/(1-p)) is applied to
the output of every block tap (``model.block_taps``). Each p is evaluated on its own, unlike the
released LapNet script whose counters carried over from p=0.25 into p=0.40. Masks come from a
generator seeded per (run, p, repeat), so repeats differ and are reproducible.
"""

from __future__ import annotations

import torch

from ..config import AttackConfig
from ..models import transform_outputs
from .base import (
    Cell,
    EvalContext,
    Measurement,
    Perturbation,
    accuracy_under,
    register_perturbation,
)


def seeded_dropout(p: float, gen: torch.Generator):  # noqa: ANN201
    """An inverted-dropout function drawing its masks from ``gen``."""
    keep = 1.0 - p

    def apply(t: torch.Tensor) -> torch.Tensor:
        if p == 0.0:
            return t
        mask = torch.empty_like(t).bernoulli_(keep, generator=gen)
        return t * mask.div_(keep)

    return apply


@register_perturbation("dropout", "test-time dropout after each block, p in {0.25, 0.40}, "
                       "40 repeats (LapNet Fig. 6)")
class BlockDropout(Perturbation):
    def cells(self, cfg: AttackConfig) -> list[Cell]:
        return [Cell("dropout", "p", float(p), {"repeats": cfg.dropout_repeats})
                for p in cfg.dropout_p]

    def measure(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        n = len(ctx.data)
        rows = []
        for r in range(int(cell.options["repeats"])):
            drop = seeded_dropout(cell.param_value, ctx.generator(cell, r))
            with transform_outputs(ctx.model.block_taps, drop):
                rows.append(Measurement(r, "accuracy", accuracy_under(ctx), n))
        return rows
