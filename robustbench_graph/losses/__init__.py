"""Loss registry; every module in this package registers its losses on import."""

import importlib
import pkgutil

from .base import (
    LOSSES,
    LossOutput,
    TrainingLoss,
    create_loss,
    method_name,
    parse_loss_options,
    register_loss,
    resolved_options,
)

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = [
    "LOSSES",
    "LossOutput",
    "TrainingLoss",
    "create_loss",
    "method_name",
    "parse_loss_options",
    "register_loss",
    "resolved_options",
]
