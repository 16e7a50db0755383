"""torch, imported on its first use.

A family's declarations (settings, metrics, titles, order, presets) are read by commands that
compute nothing with torch (``rbg list``, ``rbg status``, ``rbg run --dry-run``, ``rbg
report``), and importing torch costs seconds. A module of this package takes ``torch`` (and
``F``, ``nn``) from here: the name reads as the module and imports it on the first attribute
access; :func:`inference_mode` decorates a function without importing torch until the call.
Annotations stay strings (``from __future__ import annotations``).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


class LazyModule:
    """A module imported when one of its attributes is first read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


torch: Any = LazyModule("torch")
F: Any = LazyModule("torch.nn.functional")
nn: Any = LazyModule("torch.nn")


def inference_mode(fn: T) -> T:
    """``@torch.inference_mode()``, with torch imported when ``fn`` is called."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch as real

        with real.inference_mode():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
