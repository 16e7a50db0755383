"""A declared claim as the report shows it: where it was measured, its numbers and its
verdict, as plain data (:mod:`.claims` computes it; the renderers show it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..claims import Claim
from .aggregate import base_metric
from .declared import PERCENT_METRICS
from .formatting import format_effect
from .hypotheses import CANNOT_BE_SHOWN, CONTRADICTED

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class ClaimRow:
    """One claim: the setting it resolved to (``perturbation``, ``metric``, ``setting`` as a
    label), the per-network numbers of method and baseline, the one-sided test and the
    verdict (``not measured`` with ``note`` saying why, where the runs lack something)."""

    claim: Claim
    dataset: str = ""
    model: str = ""
    perturbation: str = ""
    metric: str = ""
    setting: str = ""
    n_method: int = 0
    n_baseline: int = 0
    median_method: float = math.nan
    median_baseline: float = math.nan
    effect: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p: float = math.nan  # one-sided in the claimed direction
    p_holm: float = math.nan
    p_other_holm: float = math.nan  # the other way, Holm over the claims (contradicted)
    verdict: str = NOT_MEASURED
    needed: int = 0  # networks per method the claim would need (cannot be shown)
    note: str = ""

    @property
    def measured(self) -> bool:
        return self.verdict != NOT_MEASURED

    @property
    def effect_text(self) -> str:
        """``+3.1 [+1.2, +5.0]`` in the measure's unit (accuracies in percentage points)."""
        return format_effect(self.effect, self.ci_low, self.ci_high,
                             base_metric(self.metric)) or "–"

    @property
    def p_shown(self) -> float:
        """The Holm p that decides the verdict (the other way for a contradicted claim)."""
        return self.p_other_holm if self.verdict == CONTRADICTED else self.p_holm

    @property
    def p_text(self) -> str:
        p = self.p_shown
        return "–" if math.isnan(p) else f"{p:.3g}"

    @property
    def n_text(self) -> str:
        return f"{self.n_method} vs {self.n_baseline}" if self.measured else "–"

    @property
    def verdict_text(self) -> str:
        """The verdict, with the networks it would need where it cannot be shown."""
        if self.verdict == CANNOT_BE_SHOWN:
            return f"{self.verdict}: needs {self.needed} networks per method"
        return self.verdict

    @property
    def what(self) -> str:
        """``laplacian vs ce, gaussian@5, higher`` (and the margin of a not-worse claim)."""
        c = self.claim
        direction = c.direction
        if c.margin is not None:
            percent = base_metric(self.metric or "accuracy") in PERCENT_METRICS
            margin = f"{100 * c.margin:.3g} pt" if percent else f"{c.margin:g}"
            direction = f"not worse by more than {margin}"
        where = f"{self.dataset} / {self.model}: " if self.dataset else ""
        return f"{where}{c.method} vs {c.baseline}, {c.measure.text}, {direction}"
