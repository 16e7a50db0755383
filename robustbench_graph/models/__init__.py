"""Model registry; every module in this package registers its models on import."""

from ..registry import import_submodules
from .base import MODELS, Normalize, TappedModel, capture, create_model, transform_outputs

import_submodules(__name__, __path__)

__all__ = ["MODELS", "Normalize", "TappedModel", "capture", "create_model", "transform_outputs"]
