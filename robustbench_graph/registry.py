"""A small generic registry: names at the API edge, factories behind them (after timm).

:func:`declare_submodules` reads a package's registrations from its sources, so that listing
the names (``rbg list``) imports none of the modules, nor torch (:mod:`.lazy`).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import RbgError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    description: str


class _Declared:
    """The factory of a declared entry: imports the module that registers it when called."""

    def __init__(self, registry: Registry[Any], name: str) -> None:
        self.registry, self.name = registry, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.registry.load(self.name).factory(*args, **kwargs)


class Registry(Generic[T]):
    """Maps a name to a factory and a one-line description.

    Unknown names raise :class:`RbgError` listing the valid ones. An entry may be declared
    (name, description and the module that registers it, :func:`declare_submodules`) before
    its module is imported: :meth:`load` (and :meth:`create`, and calling the declared
    factory) imports the module, whose registration replaces the declaration.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._declared: dict[str, str] = {}  # name -> module that registers it

    def register(
        self, name: str, description: str
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries and self._declared.pop(name, None) is None:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = Entry(name, factory, description)
            return factory

        return decorate

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise RbgError(
                f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}"
            ) from None

    def declare(self, name: str, description: str, module: str) -> None:
        """Declare entry ``name``, registered when ``module`` is imported."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = Entry(name, _Declared(self, name), description)
        self._declared[name] = module

    def load(self, name: str) -> Entry[T]:
        """The entry with its registered factory (its module imported if it was declared)."""
        entry = self.get(name)
        module = self._declared.get(name)
        if module is not None:
            importlib.import_module(module)
            if name in self._declared:
                raise RbgError(f"{self.kind} {name!r} is declared in {module} but not "
                               "registered there")
            entry = self._entries[name]
        return entry

    def create(self, name: str, **kwargs: Any) -> T:
        return self.load(name).factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())


def import_submodules(package: str, path: Iterable[str], *, skip: tuple[str, ...] = ("base",),
                      prefix: str = "") -> None:
    """Import every module of a package (so that each registers its entries), except ``skip``
    and those not starting with ``prefix``: adding an entry is adding one file."""
    for module in pkgutil.iter_modules(path):
        if module.name not in skip and module.name.startswith(prefix):
            importlib.import_module(f"{package}.{module.name}")


def declare_submodules(registry: Registry[Any], package: str, path: Iterable[str],
                       variable: str) -> None:
    """Declare the entries that the modules of a package register with
    ``@<variable>.register("name", "description")``, read from their sources (literal
    arguments only) without importing them: the names and descriptions are known without
    the modules' imports (torch), and adding an entry stays adding one file."""
    marker = f"@{variable}.register("
    for module in pkgutil.iter_modules(path):
        source = Path(module.module_finder.path, f"{module.name}.py")  # type: ignore[union-attr]
        if module.ispkg or not source.is_file():
            continue
        text = source.read_text(encoding="utf-8")
        if marker not in text:
            continue
        for node in ast.parse(text).body:
            for decorator in getattr(node, "decorator_list", ()):
                if (isinstance(decorator, ast.Call) and ast.unparse(decorator.func)
                        == f"{variable}.register"):
                    name, description = (ast.literal_eval(a) for a in decorator.args[:2])
                    registry.declare(name, description, f"{package}.{module.name}")
