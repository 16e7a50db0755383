"""Perturbation registry; every module in this package registers its family on import.

Adding a perturbation is one module here (a :class:`Perturbation` subclass, see
:mod:`.family`) plus one test; the CLI's ``-p name.key=value``, ``rbg list perturbations``,
the suite order and the report's metric directions all come from its declarations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import RbgError
from ..registry import import_submodules
from .cell import Cell
from .context import Draw, EvalContext, Measurement
from .dataset_families import FAMILIES, dataset_family
from .family import PERTURBATIONS, Perturbation, register_perturbation
from .metrics import Metric

if TYPE_CHECKING:
    from ..config import ImageSubset

import_submodules(__name__, __path__)


def family_class(name: str) -> type[Perturbation]:
    return PERTURBATIONS.get(name).factory


def family_title(name: str) -> str:
    """The family as a reader names it: its ``title`` (the name for an unknown family)."""
    return (family_class(name).title or name) if name in PERTURBATIONS else name


# The papers' suite (LapNet's perturbations plus PGD and DeepFool), ``--suite default``: the
# families that cost minutes per run, not hours (``all`` adds lipschitz, AutoAttack, the
# corruptions, ...).
DEFAULT_SUITE = ("clean", "gaussian", "gaussian-iid", "fgsm-before-norm", "fgsm-after-norm",
                 "dropout", "quantize", "pgd", "deepfool")


def suite_order() -> list[str]:
    """Every registered family in suite order (cheap first)."""
    return sorted(PERTURBATIONS.names(), key=lambda n: (family_class(n).order, n))


def unavailable_families() -> list[str]:
    """Registered families whose optional extra is not installed (left out of ``all``)."""
    return [n for n in suite_order() if not family_class(n).available()]


def left_out_note(spec: str) -> str | None:
    """The note ``--suite all`` deserves when families are left out for a missing extra."""
    missing = unavailable_families() if spec.strip() == "all" else []
    if not missing:
        return None
    extras = sorted({family_class(n).requires[1] for n in missing})  # type: ignore[index]
    return (f"--suite all leaves out {', '.join(missing)}: install "
            + ", ".join(f"'robustbench_graph[{e}]'" for e in extras))


def suite_names(spec: str, family: str | None = None) -> list[str]:
    """Resolve ``all`` (every family whose optional extra is installed and, for a dataset
    ``family`` given, that declares it in ``suite_families``), ``default`` (the papers'
    :data:`DEFAULT_SUITE`) or a comma list to registered names, in suite order."""
    if spec.strip() == "all":
        missing = set(unavailable_families())
        return [n for n in suite_order() if n not in missing
                and (family is None or family in family_class(n).suite_families)]
    if spec.strip() == "default":
        return [n for n in suite_order() if n in DEFAULT_SUITE
                and (family is None or family in family_class(n).suite_families)]
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    if not chosen:
        raise RbgError("--suite is empty; give 'default', 'all' or perturbation names "
                       "(rbg list perturbations)")
    for name in chosen:
        PERTURBATIONS.get(name)
    return [n for n in suite_order() if n in chosen]


def build_suite(names: list[str], settings: dict[str, dict[str, Any]], family: str
                ) -> list[Perturbation]:
    """The families ``names`` with their settings resolved for a dataset ``family``
    (settings of families outside the suite are checked, then unused)."""
    for name in settings:
        PERTURBATIONS.get(name)
    return [family_class(n)(family_class(n).resolve(settings.get(n, {}), family))
            for n in names]


def plan_cells(suite: list[Perturbation], test_images: ImageSubset) -> list[Cell]:
    """Every cell the families of ``suite`` measure on ``test_images``, in suite order."""
    return [cell for family in suite for cell in family.cells(test_images)]


def check_suite(names: list[str], settings: dict[str, dict[str, Any]]) -> None:
    """Resolve the suite and every family given settings, for every dataset family: bad
    settings, and settings of a family the suite does not run (they would be ignored), fail
    before any work."""
    for name in settings:
        PERTURBATIONS.get(name)
    left_out = set(unavailable_families()) if names == suite_names("all") else set()
    # (under --suite all, a family left out for its missing extra has a note of its own)
    if outside := [n for n in settings if n not in names and n not in left_out]:
        suite = ", ".join(names) or "none"
        raise RbgError(f"settings given for {', '.join(outside)}, which the suite ({suite}) "
                       f"does not run; add {'it' if len(outside) == 1 else 'them'} to the "
                       "suite or drop the settings")
    for family in FAMILIES:
        build_suite(list(dict.fromkeys([*names, *settings])), settings, family)


def metric_info(perturbation: str, metric: str) -> Metric | None:
    """The declaration of a metric, or None for an unknown family or metric."""
    if perturbation not in PERTURBATIONS:
        return None
    try:
        return family_class(perturbation).metric(metric)
    except KeyError:
        return None


__all__ = ["DEFAULT_SUITE", "FAMILIES", "PERTURBATIONS", "Cell", "Draw", "EvalContext",
           "Measurement", "Metric", "Perturbation", "build_suite", "check_suite",
           "dataset_family", "family_class", "family_title", "metric_info", "plan_cells",
           "register_perturbation", "suite_names", "suite_order"]
