"""The entries of an experiment file's ``train.losses``: a loss name, or a table with the
loss's ``options`` and, for that entry only, ``parseval`` and training ``settings``
(docs/experiments.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import TrainConfig
from ..errors import RbgError
from .schema import check, schema_of

_TRAIN = schema_of(TrainConfig)
# TrainConfig fields an experiment may set for every configuration ([train] scalars).
TRAIN_FIELDS = tuple(k for k in _TRAIN
                     if k not in ("dataset", "model", "loss", "loss_options", "parseval"))


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, tuple | list) else [value]


@dataclass(frozen=True)
class LossEntry:
    """One entry of ``train.losses``: the loss, its options, and (optional) the Parseval
    switch and training settings that apply to this entry only (e.g. a sweep of CE's
    learning rate beside the other losses' options)."""

    name: str
    options: dict[str, Any]
    parseval: bool | None = None
    settings: dict[str, Any] | None = None


ENTRY_KEYS = ("name", "options", "parseval", "settings")


def _entry(item: dict[str, Any], where: str) -> LossEntry:
    unknown = set(item) - set(ENTRY_KEYS)
    if unknown:
        raise RbgError(f"{where}: unknown key(s) in a train.losses entry: "
                       f"{', '.join(sorted(unknown))} (valid: {', '.join(ENTRY_KEYS)})")
    name = item["name"]
    options = item.get("options", {})
    if not isinstance(options, dict):
        raise RbgError(f"{where}: the options of loss {name!r} must be a table")
    for key, v in options.items():
        check(v, str | int | float | bool | tuple[str | int | float, ...],
              f"{where}: train.losses {name} option {key}")
    parseval = item.get("parseval")
    if parseval is not None:
        check(parseval, bool, f"{where}: train.losses {name} parseval")
    settings = item.get("settings")
    if settings is not None:
        if not isinstance(settings, dict):
            raise RbgError(f"{where}: the settings of loss {name!r} must be a table")
        bad = set(settings) - set(TRAIN_FIELDS)
        if bad:
            raise RbgError(f"{where}: unknown train setting(s) in train.losses {name}: "
                           f"{', '.join(sorted(bad))}")
        settings = {k: check(v, _TRAIN[k], f"{where}: train.losses {name} settings.{k}")
                    for k, v in settings.items()}
    return LossEntry(name, {k: str(v) if not isinstance(v, str) else v
                            for k, v in options.items()}, parseval, settings)


def losses_of(value: Any, where: str) -> list[LossEntry]:
    out = []
    for item in _items(value):
        if isinstance(item, str):
            out.append(LossEntry(item, {}))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            out.append(_entry(item, where))
        else:
            raise RbgError(f"{where}: each train.losses entry is a name or a table with "
                           "'name' (and 'options', 'parseval', 'settings')")
    if not out:
        raise RbgError(f"{where}: train.losses is empty")
    return out
