"""Settings dataclasses at the command-line edge: ``key=value`` text to typed, checked fields.

Losses (options, ``-o key=value``) and perturbations (settings, ``-p name.key=value``) declare
theirs as frozen dataclasses; :func:`parse_settings` is the one parser that turns what a user
typed (or a TOML/JSON value) into those fields. A field's ``metadata["help"]`` is its one-line
meaning (shown by ``rbg list``). Tuple fields (``tuple[float, ...]``) take comma-separated
values; ``X | None`` takes ``none``. :func:`default_of` reads a field's default, so that a
command-line option can state the dataclass's default instead of retyping it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from .errors import RbgError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
MAX_INT = 2**63 - 1  # beyond this a value overflows torch and numpy integers


def setting(default: Any, help: str) -> Any:  # noqa: A002 - the dataclass field's meaning
    """A dataclass field with its meaning (``metadata["help"]``)."""
    return dataclasses.field(default=default, metadata={"help": help})


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


def convert(raw: Any, annotation: Any, label: str) -> Any:
    """Convert ``raw`` (a string from the command line, or a JSON value) to ``annotation``.

    Raises:
        RbgError: naming ``label`` when the value does not fit.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "null", "")):
            return None
        return convert(raw, args[0], label)
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        parts = ([p for p in raw.split(",") if p.strip()] if isinstance(raw, str)
                 else list(raw) if isinstance(raw, list | tuple) else [raw])
        return tuple(convert(p, item, label) for p in parts)
    if annotation is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise RbgError(f"{label}={raw!r} is not a valid bool (true/false)")
    if annotation is int:
        try:
            value = int(str(raw).strip()) if not isinstance(raw, bool) else None
        except ValueError:
            value = None
        if value is None:
            raise RbgError(f"{label}={raw!r} is not a valid int")
        if abs(value) > MAX_INT:
            raise RbgError(f"{label}={raw!r} is out of range")
        return value
    if annotation is float:
        try:
            value = float(str(raw).strip()) if not isinstance(raw, bool) else math.nan
        except ValueError:
            raise RbgError(f"{label}={raw!r} is not a valid float") from None
        if not math.isfinite(value):
            raise RbgError(f"{label} must be a finite number, got {raw!r}")
        return value
    if annotation is str:
        return str(raw).strip()
    return raw


def parse_settings(cls: type, raw: dict[str, Any], what: str, noun: str = "setting") -> Any:
    """Build the dataclass ``cls`` from ``{key: value}`` (defaults for the rest) and run its
    ``validate()`` if it has one.

    ``what`` names the owner in errors (``perturbation gaussian``, ``loss 'laplacian'``) and
    ``noun`` what a key is to the user (``setting``, ``option``): the messages differ in
    nothing else. Values are strings as typed or JSON/TOML values; both go through
    :func:`convert`.

    Raises:
        RbgError: one line, for an unknown key (the valid ones listed) or a value that does
            not fit its field.
    """
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise RbgError(f"unknown {noun} {unknown[0]!r} for {what}; valid: "
                       f"{', '.join(fields) or 'none'}")
    values = {k: convert(v, hints[k], f"{what} {noun} {k}") for k, v in raw.items()}
    try:
        settings = cls(**values)
    except (TypeError, ValueError) as err:
        raise RbgError(f"{what}: {err}") from None
    check = getattr(settings, "validate", None)
    if check is not None:
        check()
    return settings


def default_of(cls: type, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``cls`` (a ``default_factory`` is called).

    Raises:
        KeyError: when ``cls`` has no such field, or the field has no default.
    """
    for f in dataclasses.fields(cls):
        if f.name != name:
            continue
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def describe_fields(cls: type) -> list[tuple[str, str, str, str]]:
    """``(name, type, default, meaning)`` of every field of a settings dataclass."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        has_default = (f.default is not dataclasses.MISSING
                       or f.default_factory is not dataclasses.MISSING)
        shown = typed_text(default_of(cls, f.name)) if has_default else ""
        rows.append((f.name, _type_name(hints[f.name]).replace("typing.", ""), shown,
                     str(f.metadata.get("help", ""))))
    return rows


def typed_text(value: Any) -> str:
    """A setting's value as a user would type it (``none``, ``true``, ``0.25``, ``5,10``)."""
    if isinstance(value, tuple | list):
        return ",".join(typed_text(v) for v in value)
    if value is None or isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def to_json(settings: Any) -> dict[str, Any]:
    """A settings dataclass as JSON-ready data (tuples become lists)."""
    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, tuple | list) else v

    return {k: plain(v) for k, v in dataclasses.asdict(settings).items()}
