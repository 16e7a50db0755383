"""The types of an experiment file's values, read from the configuration dataclasses.

An experiment file is TOML, so its values already have types; each key's type is the
annotation of the dataclass field it fills (``TrainConfig.epochs: int`` types ``[train]
epochs``), found with :func:`typing.get_type_hints`, so that there is no second list of
keys and types to keep in step. A value of the wrong type is a one-line error naming the
key, when the file is read (``rbg run --dry-run`` and ``rbg run`` alike): ``"5"`` is not an
integer, ``1.5`` is not an integer, ``true`` is not a number, ``"no"`` is not a boolean.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from ..errors import RbgError
from ..settings import MAX_INT

_NAMES = {bool: ("true or false", "booleans"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("a string", "strings")}


def schema_of(cls: type, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{field: annotation}`` of the dataclass ``cls``, in field order, less ``skip``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in skip}


def describe(annotation: Any, plural: bool = False) -> str:
    """What a value of ``annotation`` is, in words (``an integer``, ``a list of strings``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(describe(a, plural) for a in args)
    if origin in (tuple, list):
        return ("lists of " if plural else "a list of ") + describe(
            typing.get_args(annotation)[0], plural=True)
    if origin is dict or annotation is dict:
        return "tables" if plural else "a table"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(annotation)))
    if annotation in _NAMES:
        return _NAMES[annotation][plural]
    return getattr(annotation, "__name__", str(annotation))


def shown(value: Any) -> str:
    """A short rendering of a TOML value for an error line (never the whole of a big one)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 40 else text[:40] + "..."
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def check(value: Any, annotation: Any, label: str) -> Any:
    """``value`` as the field of ``annotation`` takes it (a TOML list becomes a tuple, an
    integer a float where a number is asked for).

    Raises:
        RbgError: ``LABEL must be <type>, got <value>`` when it does not fit.
    """
    converted = _convert(value, annotation)
    if converted is _WRONG:
        raise RbgError(f"{label} must be {describe(annotation)}, got {shown(value)}")
    return converted


_WRONG = object()


def _convert(value: Any, annotation: Any) -> Any:  # noqa: PLR0911 - one branch per kind
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is type(None):
                continue
            converted = _convert(value, arg)
            if converted is not _WRONG:
                return converted
        return _WRONG
    if origin in (tuple, list):
        if not isinstance(value, list):
            return _WRONG
        item = typing.get_args(annotation)[0]
        items = [_convert(v, item) for v in value]
        if any(v is _WRONG for v in items):
            return _WRONG
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        return value if isinstance(value, dict) else _WRONG
    if origin is typing.Literal:
        return value if value in typing.get_args(annotation) else _WRONG
    if annotation is bool:
        return value if isinstance(value, bool) else _WRONG
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT
        return value if ok else _WRONG
    if annotation is float:
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value))
        return float(value) if ok else _WRONG
    if annotation is str:
        return value if isinstance(value, str) else _WRONG
    return value  # a type TOML cannot hold: left to the dataclass's own validation


def read_table(table: dict[str, Any], schema: dict[str, Any], section: str,
               where: str) -> dict[str, Any]:
    """The keys of one table checked against ``schema``: an unknown key or a value of the
    wrong type is a one-line error naming ``[section] key``."""
    unknown = [k for k in table if k not in schema]
    if unknown:
        raise RbgError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in [{section}]; "
                       f"[{section}] takes {', '.join(schema)}")
    return {k: check(v, schema[k], f"{where}: {section}.{k}") for k, v in table.items()}


__all__ = ["check", "describe", "read_table", "schema_of", "shown"]
