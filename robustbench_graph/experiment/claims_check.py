"""An experiment's claims checked against its grid, and the power its seeds give them.

:func:`check_claims` runs where the file is read, before any work: every claim must name
methods the grid trains (as the report names them, ``method_of``), a dataset and model of the
grid (needed where the grid has several), a family of the suite, a strength among that
family's swept values and a metric the family declares. :func:`claims_power` says, from the
seeds alone, whether a claim can be significant after Holm over the declared claims
(:mod:`robustbench_graph.report.hypotheses`). Both are silent: errors are one-line
:class:`RbgError`, the rest is plain data for the CLI to render.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..claims import Claim
from ..config import AttackConfig, TrainConfig
from ..data import dataset_info
from ..errors import RbgError
from ..perturbations import (
    FAMILIES,
    build_suite,
    dataset_family,
    family_class,
    metric_info,
    suite_names,
)
from ..report.hypotheses import ALPHA, networks_needed, reachable
from ..rundir.results import as_saved
from ..train import method_of


def _choices(values: Sequence[object]) -> str:
    return ", ".join(str(v) for v in values) or "none"


def _pick(claim: Claim, key: str, grid: list[str], where: str) -> list[str]:
    """The grid's datasets (or models) a claim applies to: the one it names, or the grid's
    only one; naming none where the grid has several is ambiguous."""
    named = getattr(claim, key)
    if named is None:
        if len(grid) > 1:
            raise RbgError(f"{where}: the grid has several {key}s; say which with {key} = "
                           f"one of {_choices(grid)}")
        return grid
    if named not in grid:
        raise RbgError(f"{where}: {key} {named!r} is not in the grid; valid: {_choices(grid)}")
    return [named]


def _dataset_families(dataset: str, data_dir: Path | None) -> tuple[str, ...]:
    """``(grey,)`` or ``(colour,)``; both where the dataset cannot be described without its
    files (an image folder not there yet: training will say so)."""
    try:
        return (dataset_family(dataset_info(dataset, data_dir)),)
    except (RbgError, OSError, ValueError):
        return FAMILIES


def _strengths(suite: dict, family: str, attack: AttackConfig) -> list[float]:
    """The swept values (as results.csv keeps them) of one family of a built suite."""
    cells = suite[family].cells(attack.test_images)
    return sorted({as_saved(c.param_value) for c in cells if c.param != "none"})


def _check_measure(claim: Claim, suite: dict, attack: AttackConfig, where: str) -> None:
    """The claim's measure against one built suite (``{family name: Perturbation}``)."""
    m = claim.measure
    if m.family not in suite:
        raise RbgError(f"{where}: measure {m.text!r}: family {m.family!r} is not in the "
                       f"suite; valid: {_choices(list(suite))}")
    cls = family_class(m.family)
    metric_name = m.metric or cls.headline
    metric = metric_info(m.family, metric_name)
    if metric is None:
        declared = [x.name for x in cls.metrics]
        raise RbgError(f"{where}: measure {m.text!r}: {m.family} declares no metric "
                       f"{metric_name!r}; valid: {_choices(declared)}")
    values = _strengths(suite, m.family, attack)
    if m.strength is not None:
        if not values:
            raise RbgError(f"{where}: measure {m.text!r}: {m.family} sweeps no strength; "
                           f"write {m.family!r}" + (f" or '{m.family}:{metric_name}'"
                                                    if m.metric else ""))
        if as_saved(m.strength) not in values:
            raise RbgError(f"{where}: measure {m.text!r}: strength {m.strength:g} is not "
                           f"swept for {m.family}; valid: {_choices([f'{v:g}' for v in values])}")
    if m.area and len(values) < 2:
        raise RbgError(f"{where}: measure {m.text!r}: {m.family} has no curve here (fewer "
                       "than 2 strengths); give 'FAMILY' or 'FAMILY@STRENGTH'")
    if claim.direction == "not-worse" and metric.better not in ("higher", "lower"):
        raise RbgError(f"{where}: measure {m.text!r}: {metric_name} of {m.family} has no "
                       "better direction, so 'not-worse' means nothing; use higher or lower")


def check_claims(claims: Sequence[Claim], configs: Sequence[TrainConfig], suite_spec: str,
                 attack: AttackConfig, where: str, data_dir: Path | None = None) -> None:
    """Every claim against the grid (module docstring); the first problem is a one-line
    :class:`RbgError` naming the claim, what is wrong and the valid choices."""
    if not claims:
        return
    methods = list(dict.fromkeys(method_of(c) for c in configs))
    datasets = list(dict.fromkeys(c.dataset for c in configs))
    models = list(dict.fromkeys(c.model for c in configs))
    suites: dict[str, dict] = {}
    for family in FAMILIES:
        names = suite_names(suite_spec, family)
        suites[family] = {p.name: p for p in build_suite(names, attack.settings, family)}
    for claim in claims:
        label = f"{where}: claim {claim.id}"
        for key in ("method", "baseline"):
            name = getattr(claim, key)
            if name not in methods:
                raise RbgError(f"{label}: {key} {name!r} is not a method of the grid; "
                               f"valid: {_choices(methods)}")
        _pick(claim, "model", models, label)
        for dataset in _pick(claim, "dataset", datasets, label):
            kinds = _dataset_families(dataset, data_dir)
            errors = []
            for kind in kinds:
                try:
                    _check_measure(claim, suites[kind], attack, label)
                except RbgError as err:
                    errors.append(err)
            if len(errors) == len(kinds):
                raise errors[0]


@dataclass(frozen=True)
class ClaimsPower:
    """What an experiment's seeds can show: ``networks`` per method, ``needed`` for any
    claim to reach ``alpha`` after Holm over ``claims`` claims; ``shown`` whether they do."""

    claims: int
    networks: int
    needed: int
    alpha: float
    shown: bool
    ids: tuple[str, ...]
    first_seed: int = 0

    @property
    def cannot(self) -> tuple[str, ...]:
        """The claims that cannot be shown (all of them or none: one n for every claim)."""
        return () if self.shown else self.ids

    @property
    def seeds_needed(self) -> str:
        """The ``seeds`` value that would do, starting at the grid's first seed."""
        return f"{self.first_seed}-{self.first_seed + self.needed - 1}"


def claims_power(claims: Sequence[Claim], seeds: Sequence[int],
                 alpha: float = ALPHA) -> ClaimsPower | None:
    """The power of a grid with ``seeds`` per configuration for its ``claims`` (None
    without claims)."""
    if not claims:
        return None
    n, k = len(seeds), len(claims)
    return ClaimsPower(claims=k, networks=n, needed=networks_needed(k, alpha), alpha=alpha,
                       shown=reachable(n, n, k, alpha), ids=tuple(c.id for c in claims),
                       first_seed=min(seeds) if seeds else 0)


__all__ = ["ClaimsPower", "check_claims", "claims_power"]
