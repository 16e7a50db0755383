"""What the registered families declare that a report reads: each family's main metric and
its direction, percent metrics, strengths, and the report extras
(:mod:`robustbench_graph.perturbations.report_extras`). The one place the report looks the
families up; an unknown family (a results file from elsewhere) gets the defaults."""

from __future__ import annotations

from typing import TypeVar

from ..perturbations import PERTURBATIONS, family_class, metric_info
from ..perturbations.metrics import Strength
from ..perturbations.report_extras import MetricLabel, RealisedValue

E = TypeVar("E")

# Metrics shown in percent: those the families declare so.
PERCENT_METRICS: frozenset[str] = frozenset(
    m.name for e in PERTURBATIONS for m in e.factory.metrics if m.percent)


def main_metric(perturbation: str) -> str:
    """The metric a family is shown by (its declared ``headline``; ``accuracy`` for an
    unknown family)."""
    return family_class(perturbation).headline if perturbation in PERTURBATIONS else "accuracy"


def lower_is_better(perturbation: str, metric: str) -> bool:
    info = metric_info(perturbation, metric)
    return info is not None and info.better == "lower"


def strength_of(perturbation: str, param: str) -> Strength:
    """How a param's values read (the param's name for an undeclared one)."""
    if perturbation in PERTURBATIONS:
        s = family_class(perturbation).strengths.get(param)
        if s is not None:
            return s
    return Strength(param)


def extras_of(perturbation: str, kind: type[E]) -> list[E]:
    """The family's report extras of one kind (none for an unknown family)."""
    if perturbation not in PERTURBATIONS:
        return []
    return [x for x in family_class(perturbation).report_extras if isinstance(x, kind)]


def declaring(kind: type[E]) -> list[tuple[str, E]]:
    """(family, extra) for every registered family's extras of one kind, in name order."""
    return [(name, x) for name in PERTURBATIONS.names() for x in extras_of(name, kind)]


def realised(perturbation: str, param: str) -> RealisedValue | None:
    """The declared realised value of a target param, if any."""
    return next((r for r in extras_of(perturbation, RealisedValue) if r.param == param), None)


def metric_label(metric: str) -> MetricLabel:
    """The label a family declares for ``metric`` (the defaults where none does)."""
    return next((x for _f, x in declaring(MetricLabel) if x.metric == metric),
                MetricLabel(metric))
