"""Perturbation registry; every module in this package registers its perturbations on import.
The suite order follows :data:`SUITE_ORDER` (cheap first)."""

from ..errors import RbgError
from ..registry import import_submodules
from .base import (
    PERTURBATIONS,
    Cell,
    EvalContext,
    Measurement,
    Perturbation,
    register_perturbation,
)

import_submodules(__name__, __path__)

SUITE_ORDER = ("clean", "gaussian", "gaussian-iid", "fgsm-before-norm", "fgsm-after-norm",
               "dropout", "quantize", "deepfool")


def suite_names(spec: str) -> list[str]:
    """Resolve ``all`` or a comma list to registered names, in suite order."""
    names = PERTURBATIONS.names()
    if spec.strip() == "all":
        chosen = names
    else:
        chosen = [s.strip() for s in spec.split(",") if s.strip()]
        if not chosen:
            raise RbgError("--suite is empty; give 'all' or perturbation names "
                           "(rbg list perturbations)")
        for name in chosen:
            PERTURBATIONS.get(name)
    order = {n: i for i, n in enumerate(SUITE_ORDER)}
    return sorted(dict.fromkeys(chosen), key=lambda n: (order.get(n, len(order)), n))


__all__ = ["PERTURBATIONS", "Cell", "EvalContext", "Measurement", "Perturbation",
           "register_perturbation", "suite_names", "SUITE_ORDER"]
