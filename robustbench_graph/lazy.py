"""torch, imported on its first use.

The declarations of the package (a family's settings, metrics and presets; a loss's options,
presets and head; the registries' names and descriptions) are read by commands that compute
nothing with torch (``rbg list``, ``rbg status``, ``rbg run --dry-run``, ``rbg report``), and
importing torch costs seconds. A module that declares such things takes ``torch`` (and ``F``,
``nn``) from here: the name reads as the module and imports it on the first attribute access.
:func:`inference_mode` and :func:`no_grad` decorate a function without importing torch until
the call; :class:`LazyModuleBase` is a base class that becomes an ``nn.Module`` when an
instance is created; :class:`LazyFunction` an autograd function made on its first use.
Annotations stay strings (``from __future__ import annotations``).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

C = TypeVar("C", bound=Callable[..., Any])

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


def _under(context: str) -> Callable[[C], C]:
    """A decorator running the function inside ``torch.<context>()``, with torch imported
    when the function is called."""

    def decorate(fn: C) -> C:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            import torch as real

            with getattr(real, context)():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


inference_mode = _under("inference_mode")
inference_mode.__doc__ = "``@torch.inference_mode()``, with torch imported when called."
no_grad = _under("no_grad")
no_grad.__doc__ = "``@torch.no_grad()``, with torch imported when called."


class LazyModuleBase:
    """A base class whose instances are ``nn.Module`` objects, without importing torch when a
    subclass is defined.

    A subclass is a plain class (its declarations, e.g. a loss's ``Options`` and
    ``presets``, read without torch); creating an instance builds, once per class, the class
    ``type(name, (cls, nn.Module), {})`` and returns an instance of it, so that
    ``register_buffer``, ``state_dict``, ``to`` and ``__call__`` -> ``forward`` work as on any
    module, and ``isinstance(obj, cls)`` holds. ``__init__`` calls ``super().__init__()``
    first, as a module's does."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(module_class(cls))


@functools.cache
def module_class(cls: type) -> type:
    """``cls`` made an ``nn.Module`` subclass (itself when it already is one)."""
    import torch.nn as real

    if issubclass(cls, real.Module):
        return cls
    made = type(cls.__name__, (cls, real.Module),
                {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
                 "__doc__": cls.__doc__})
    return made


class LazyFunction:
    """A ``torch.autograd.Function`` declared as a plain class (static ``forward`` and
    ``backward``) and made one on its first :meth:`apply`; ``once_differentiable`` wraps the
    backward as ``@once_differentiable`` would."""

    def __init__(self, cls: type, *, once_differentiable: bool = False) -> None:
        self.declared, self.once_differentiable = cls, once_differentiable

    @functools.cached_property
    def function(self) -> Any:
        import torch
        from torch.autograd.function import once_differentiable

        body = {k: v for k, v in vars(self.declared).items()
                if k not in ("__dict__", "__weakref__")}
        if self.once_differentiable:
            body["backward"] = staticmethod(once_differentiable(body["backward"].__func__))
        return type(self.declared.__name__, (torch.autograd.Function,), body)

    def apply(self, *args: Any) -> Any:
        return self.function.apply(*args)
