"""Loss registry; every module in this package registers its losses on import."""

from ..registry import import_submodules
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

import_submodules(__name__, __path__)

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
