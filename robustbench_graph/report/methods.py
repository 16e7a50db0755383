"""A method is its whole training configuration: runs that differ in anything but the seed
are different methods.

Each run's configuration is resolved (the dataset's learning-rate schedule and the loss's
option defaults filled in) and keyed without its seed, dataset and model (those are the
report's other axes). Each key is named by its loss, ``+parseval`` when on, the loss options
that differ from the loss's defaults, and the training settings that vary among the
configurations of that loss and differ from rbg's defaults: ``ce``, ``ce lr=0.001``,
``laplacian gamma=2``, ``laplacian+parseval epochs=3``. Names are unique within a report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..config import TrainConfig
from ..errors import RbgError
from ..losses import resolved_options

# Fields that are axes of the report, not parts of a method.
NOT_METHOD = ("dataset", "model", "loss", "loss_options", "parseval")


@dataclass(frozen=True)
class MethodConfig:
    """The resolved training configuration of one run, without seed, dataset and model."""

    loss: str
    loss_options: tuple[tuple[str, Any], ...]  # every option, defaults filled in
    default_options: tuple[tuple[str, Any], ...]
    parseval: bool
    train: tuple[tuple[str, Any], ...]  # every other TrainConfig field, resolved
    defaults: tuple[tuple[str, Any], ...]  # rbg's resolved defaults for the same dataset

    @property
    def key(self) -> str:
        return json.dumps({"loss": self.loss, "options": self.loss_options,
                           "parseval": self.parseval, "train": self.train}, default=str)


def _show(value: Any) -> str:
    if value is None:  # as -o writes it (a model-dependent default: laplacian gamma=none)
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(_show(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def method_config(train: dict[str, Any]) -> MethodConfig:
    """The :class:`MethodConfig` of a run's ``config.json`` ``train`` record."""
    cfg = TrainConfig.from_dict(train).resolved()
    loss = cfg.loss
    try:
        options = resolved_options(loss, cfg.loss_options)
        defaults_opt = resolved_options(loss, {}, cfg.dataset)  # its family's preset
    except (RbgError, KeyError, TypeError):  # an unknown loss: its options as written
        options, defaults_opt = dict(cfg.loss_options), {}
    record = cfg.to_dict()
    default = TrainConfig(dataset=cfg.dataset, model=cfg.model, loss=loss,
                          epochs=cfg.epochs).resolved().to_dict()
    # The default schedule depends on the epochs: compared at the run's epochs.
    default["epochs"] = TrainConfig().epochs
    fields = sorted(k for k in record if k not in NOT_METHOD)
    return MethodConfig(
        loss=loss,
        loss_options=tuple(sorted(options.items())),
        default_options=tuple(sorted(defaults_opt.items())),
        parseval=bool(cfg.parseval),
        train=tuple((k, _freeze(record[k])) for k in fields),
        defaults=tuple((k, _freeze(default.get(k))) for k in fields),
    )


def imported_method_config(record: dict[str, Any]) -> MethodConfig:
    """The method of an imported run (``rbg import``): its recorded name, keyed by the
    network's code (source and its SHA-256, factory, keyword arguments) and the input it
    expects, not by its weights (imports of several seeds of one model are one method)."""
    imported = record["imported"]
    source = imported["source"]
    identity = json.dumps({"source": {k: v for k, v in source.items() if k != "path"},
                           "input": imported["input"]}, sort_keys=True, default=str)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return MethodConfig(
        loss=str(record["method"]), loss_options=(("code", digest),),
        default_options=(("code", digest),), parseval=False,
        train=(("code", digest),), defaults=(("code", None),))


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def name_methods(configs: Iterable[MethodConfig]) -> dict[str, str]:
    """A readable, unique name for each configuration key."""
    unique = {c.key: c for c in configs}
    by_base: dict[str, list[MethodConfig]] = {}
    names: dict[str, str] = {}
    for c in unique.values():
        base = c.loss + ("+parseval" if c.parseval else "")
        defaults = dict(c.default_options)
        opts = [f"{k}={_show(v)}" for k, v in c.loss_options
                if k in defaults and v != defaults[k]] + \
               [f"{k}={_show(v)}" for k, v in c.loss_options if k not in defaults]
        names[c.key] = " ".join([base, *opts])
        by_base.setdefault(names[c.key], []).append(c)
    for base, group in by_base.items():
        if len(group) < 2:
            continue
        varying = [k for k, _ in group[0].train
                   if len({dict(c.train)[k] for c in group}) > 1]
        for c in group:
            train, defaults = dict(c.train), dict(c.defaults)
            shown = [f"{k}={_show(train[k])}" for k in varying
                     if train[k] != defaults.get(k)]
            names[c.key] = " ".join([base, *shown])
    _disambiguate(names, unique)
    return names


def _disambiguate(names: dict[str, str], configs: dict[str, MethodConfig]) -> None:
    """Where two configurations still share a name, add every varying field to each."""
    seen: dict[str, list[str]] = {}
    for key, name in names.items():
        seen.setdefault(name, []).append(key)
    for name, keys in seen.items():
        if len(keys) < 2:
            continue
        group = [configs[k] for k in keys]
        varying = [k for k, _ in group[0].train if len({dict(c.train)[k] for c in group}) > 1]
        for c in group:
            train = dict(c.train)
            names[c.key] = " ".join([name, *(f"{k}={_show(train[k])}" for k in varying)])
