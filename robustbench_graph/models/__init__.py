"""Model registry; every module in this package registers its models on import."""

from ..registry import import_submodules
from .base import (
    MIN_CHANNELS_LAST_CHANNELS,
    MODELS,
    Normalize,
    TappedModel,
    capture,
    create_model,
    is_channels_last_model,
    model_options,
    set_memory_format,
    transform_outputs,
)

import_submodules(__name__, __path__)

__all__ = ["MIN_CHANNELS_LAST_CHANNELS", "MODELS", "Normalize", "TappedModel", "capture",
           "create_model", "is_channels_last_model", "model_options", "set_memory_format",
           "transform_outputs"]
