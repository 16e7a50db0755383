"""Model registry. Each network's module registers it (``@MODELS.register``); the registry
declares the networks from those modules' sources (names, descriptions) and imports a module,
and torch, when one of its networks is first built: listing or checking the names
(``rbg list``, ``rbg status``, ``rbg run --dry-run``) imports no torch. The model contract
(:mod:`.base`) is imported on first use of one of its names."""

from __future__ import annotations

import importlib
from typing import Any

from ..registry import declare_submodules
from .catalogue import CENTROIDS, LINEAR, MODELS

declare_submodules(MODELS, __name__, __path__, "MODELS")

_BASE = ("MIN_CHANNELS_LAST_CHANNELS", "Normalize", "TappedModel", "capture", "create_model",
         "is_channels_last_model", "model_options", "set_memory_format", "transform_outputs")


def __getattr__(name: str) -> Any:
    if name in _BASE:
        return getattr(importlib.import_module(f"{__name__}.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CENTROIDS", "LINEAR", "MIN_CHANNELS_LAST_CHANNELS", "MODELS", "Normalize",
           "TappedModel", "capture", "create_model", "is_channels_last_model", "model_options",
           "set_memory_format", "transform_outputs"]
