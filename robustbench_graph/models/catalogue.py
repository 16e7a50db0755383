"""What the model package declares without torch: the registry of networks and the names of
the classifier heads (:mod:`.heads`). The networks' modules are imported when one is built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..registry import Registry

MODELS: Registry[Callable[..., Any]] = Registry("model")  # factories of TappedModel (.base)

# The classifier heads a model is built with (models/heads.py; a loss declares its own).
LINEAR = "linear"
CENTROIDS = "centroids"
