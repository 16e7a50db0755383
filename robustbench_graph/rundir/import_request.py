"""What ``rbg import`` is asked (docs/models.md#import, docs/importing.md): the one source of
the network (:func:`parse_source`), the factory's keyword arguments (:func:`parse_kwargs`),
the request (:class:`ImportRequest`) and the input statistics it resolves to
(:func:`statistics`). Nothing here runs a model's code.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import DatasetInfo
from ..errors import RbgError
from .ecosystem import ONNX, TIMM
from .user_code import DEFAULT_TIMEOUT, ModelSource

SOURCE_FLAGS = ("--model-file FILE.py:FACTORY, --model MODULE:FACTORY, --torchvision ARCH, "
                "--timm NAME or --onnx FILE")


def parse_source(*, model_file: str | None, module: str | None, torchvision: str | None,
                 kwargs: dict[str, Any] | None = None, timm: str | None = None,
                 onnx: str | None = None) -> ModelSource:
    """The one source named by ``--model-file FILE.py:FACTORY``, ``--model MODULE:FACTORY``,
    ``--torchvision ARCH``, ``--timm NAME`` or ``--onnx FILE``."""
    given = [(k, v) for k, v in (("file", model_file), ("module", module),
                                 ("torchvision", torchvision), (TIMM, timm), (ONNX, onnx))
             if v]
    if len(given) != 1:
        raise RbgError(f"name the model with exactly one of {SOURCE_FLAGS}")
    kind, text = given[0]
    if kind in ("torchvision", TIMM):
        return ModelSource(kind, text.strip(), None, dict(kwargs or {}))
    if kind == ONNX:
        if kwargs:
            raise RbgError("--kw passes arguments to a factory; an ONNX file has none")
        return ModelSource(kind, text, None, {})
    target, sep, factory = text.rpartition(":")
    flag = "--model-file" if kind == "file" else "--model"
    if not sep or not target or not factory.isidentifier():
        raise RbgError(f"{flag} expects {'FILE.py' if kind == 'file' else 'MODULE'}:FACTORY, "
                       f"got {text!r}")
    return ModelSource(kind, target, factory, dict(kwargs or {}))


def parse_kwargs(items: list[str] | None) -> dict[str, Any]:
    """``["num_classes=10", "name=x"]`` to keyword arguments; values are JSON where they
    parse (numbers, booleans, lists), else strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise RbgError(f"--kw expects NAME=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        except RecursionError:
            raise RbgError(f"--kw {key}: its value is nested too deeply") from None
    return out


@dataclass(frozen=True)
class ImportRequest:
    """What ``rbg import`` was asked to do (see :func:`.imported.import_model`)."""

    source: ModelSource
    weights: Path | None  # None only for an ONNX file (its weights are in it)
    dataset: str
    input_space: str | None = None  # None: the source's ('normalized' for timm, else pixels)
    mean: tuple[float, ...] | None = None  # None: the network's declared (timm), else the
    std: tuple[float, ...] | None = None  # dataset's
    blocks: tuple[str, ...] | None = None  # None: default_blocks
    seed: int = 0
    method: str | None = None  # None: "<label> (imported)"
    split_seed: int = 0
    data_dir: Path | None = None  # where a dataset read from files is (imagefolder)
    timeout: float | None = DEFAULT_TIMEOUT  # seconds for building and checking the model
    force: bool = False  # import even when the normalisation check says the space is wrong

    @property
    def space(self) -> str:
        if self.input_space is not None:
            return self.input_space
        return "normalized" if self.source.kind == TIMM else "pixels"


def statistics(req: ImportRequest, info: DatasetInfo,
               declared: tuple[list[float], list[float]] | None = None
               ) -> tuple[list[float], list[float], str]:
    """The mean/std of the normalisation and where they come from: ``--mean``/``--std``,
    else what the network declares (``declared``, a timm ``pretrained_cfg``), else the
    dataset's."""
    origin = "dataset"
    mean = list(info.mean) if req.mean is None else list(req.mean)
    std = list(info.std) if req.std is None else list(req.std)
    if declared is not None and req.mean is None and req.std is None:
        (mean, std), origin = declared, "pretrained_cfg"
    elif req.mean is not None or req.std is not None:
        origin = "given"
    channels = info.input_shape[0]
    for name, values in (("--mean", mean), ("--std", std)):
        if len(values) not in (1, channels):
            raise RbgError(f"{name} needs 1 or {channels} values for dataset {info.name!r}, "
                           f"got {len(values)}")
    if not all(math.isfinite(v) for v in mean + std):
        raise RbgError("--mean and --std values must be finite numbers")
    if any(s <= 0 for s in std):
        raise RbgError("--std values must be positive")
    return mean * (channels // len(mean)), std * (channels // len(std)), origin
