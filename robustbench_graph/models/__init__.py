"""Model registry; every module in this package registers its models on import."""

import importlib
import pkgutil

from .base import MODELS, Normalize, TappedModel, capture, create_model, transform_outputs

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["MODELS", "Normalize", "TappedModel", "capture", "create_model", "transform_outputs"]
