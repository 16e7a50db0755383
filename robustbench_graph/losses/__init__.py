"""Loss registry; every module in this package registers its losses on import."""

from ..registry import import_submodules
from .base import (
    LOSSES,
    LossOutput,
    LossPreset,
    TrainingLoss,
    create_loss,
    loss_preset,
    method_name,
    parse_loss_options,
    preset_record,
    register_loss,
    resolved_options,
)

import_submodules(__name__, __path__)

__all__ = [
    "LOSSES",
    "LossOutput",
    "LossPreset",
    "TrainingLoss",
    "create_loss",
    "loss_preset",
    "method_name",
    "parse_loss_options",
    "preset_record",
    "register_loss",
    "resolved_options",
]
