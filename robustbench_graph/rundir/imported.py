"""Outside classifiers as run folders (``rbg import``, docs/models.md#import).

An imported run folder is a finished run that ``attack``, ``report`` and ``smoothness`` use
unchanged. Its ``config.json`` holds, beside the usual ``train`` record (dataset, a model
label, loss ``imported``), an ``imported`` record: where the network's code came from (a
Python file, copied into the folder as ``model_source.py``; an importable module; or a
torchvision architecture), the factory and its keyword arguments, the SHA-256 of the source
and of the weights file, what input the network expects (:mod:`.models.external`), its block
and ReLU taps. The weights are stored as ``model.safetensors`` (read by
:mod:`.imported_model`, which also rebuilds the model when the folder is loaded).

Everything is checked before anything is written: the factory exists and builds an
``nn.Module``, the weights fit it exactly, and a batch of the dataset's shape gives (batch,
classes) logits. The folder is then written under a temporary name and renamed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import MAX_SEED, TrainConfig
from ..data import DatasetInfo, dataset_info
from ..errors import RbgError
from ..models.external import INPUT_SPACES, ExternalModel, default_blocks
from .atomic import DIR_MODE, write_json_atomic
from .folder import CONFIG, WEIGHTS, save_weights, write_status
from .imported_model import (
    IMPORTED_LOSS,
    SOURCE_COPY,
    ModelSource,
    build_network,
    describe_error,
    load_into,
    module_file,
    read_state_dict,
    sha256_of,
)
from .provenance import software_record


def parse_source(*, model_file: str | None, module: str | None, torchvision: str | None,
                 kwargs: dict[str, Any] | None = None) -> ModelSource:
    """The one source named by ``--model-file FILE.py:FACTORY``, ``--model MODULE:FACTORY``
    or ``--torchvision ARCH``."""
    given = [(k, v) for k, v in (("file", model_file), ("module", module),
                                 ("torchvision", torchvision)) if v]
    if len(given) != 1:
        raise RbgError("name the model with exactly one of --model-file FILE.py:FACTORY, "
                       "--model MODULE:FACTORY or --torchvision ARCH")
    kind, text = given[0]
    if kind == "torchvision":
        return ModelSource(kind, text.strip(), None, dict(kwargs or {}))
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
    return out


def check_output(model: ExternalModel, info: DatasetInfo) -> None:
    """The model maps a batch of the dataset's shape to (batch, classes) logits."""
    x = torch.rand((2, *info.input_shape), generator=torch.Generator().manual_seed(0))
    shape = "x".join(map(str, info.input_shape))
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as err:
        raise RbgError(f"the model fails on a batch of two {shape} images of dataset "
                       f"{info.name!r} ({describe_error(err)})") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, info.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise RbgError(f"the model's output for a batch of 2 is {got}, expected (batch, "
                       f"classes) = (2, {info.num_classes}) for dataset {info.name!r}")
    if not torch.isfinite(out).all():
        raise RbgError("the model's logits are not finite on a random batch")


@dataclass(frozen=True)
class ImportRequest:
    """What ``rbg import`` was asked to do (see :func:`import_model`)."""

    source: ModelSource
    weights: Path
    dataset: str
    input_space: str = "pixels"
    mean: tuple[float, ...] | None = None  # None: the dataset's
    std: tuple[float, ...] | None = None
    blocks: tuple[str, ...] | None = None  # None: default_blocks
    seed: int = 0
    method: str | None = None  # None: "<label> (imported)"
    split_seed: int = 0
    data_dir: Path | None = None  # where a dataset read from files is (imagefolder)


def _statistics(req: ImportRequest, info: DatasetInfo) -> tuple[list[float], list[float]]:
    mean = list(req.mean) if req.mean is not None else list(info.mean)
    std = list(req.std) if req.std is not None else list(info.std)
    channels = info.input_shape[0]
    for name, values in (("--mean", mean), ("--std", std)):
        if len(values) not in (1, channels):
            raise RbgError(f"{name} needs 1 or {channels} values for dataset {info.name!r}, "
                           f"got {len(values)}")
    if any(s <= 0 for s in std):
        raise RbgError("--std values must be positive")
    return mean * (channels // len(mean)), std * (channels // len(std))


def import_model(run_dir: Path, req: ImportRequest, *, overwrite: bool = False) -> Path:
    """Check the outside model and write it as a finished run folder; returns the folder.

    Raises:
        RbgError: anything that does not fit (nothing is written then).
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not overwrite and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise RbgError(f"{run_dir} already exists and is not empty; use another folder or "
                       "--overwrite")
    if req.input_space not in INPUT_SPACES:
        raise RbgError(f"unknown --input {req.input_space!r}; valid: {', '.join(INPUT_SPACES)}")
    if not 0 <= req.seed <= MAX_SEED:
        raise RbgError(f"--seed must be in 0..{MAX_SEED}, got {req.seed}")
    info = dataset_info(req.dataset, req.data_dir)
    mean, std = _statistics(req, info)
    net = build_network(req.source)
    state, weights_format = read_state_dict(req.weights)
    load_into(net, state, str(req.weights))
    blocks = list(req.blocks) if req.blocks is not None else default_blocks(net)
    model = ExternalModel(net, info, input_space=req.input_space, mean=mean, std=std,
                          blocks=blocks).eval()
    check_output(model, info)
    source_record: dict[str, Any] = {"kind": req.source.kind, "factory": req.source.factory,
                                     "kwargs": req.source.kwargs}
    if req.source.kind == "file":
        path = Path(req.source.target).resolve()
        source_record.update(path=str(path), sha256=sha256_of(path), copy=SOURCE_COPY)
    elif req.source.kind == "module":
        module = sys.modules.get(req.source.target)
        file = module_file(module) if module is not None else None
        source_record.update(module=req.source.target, path=str(file) if file else None,
                             sha256=sha256_of(file) if file and file.is_file() else None)
    else:
        import torchvision

        source_record.update(architecture=req.source.target,
                             torchvision=torchvision.__version__)
    train = TrainConfig(dataset=req.dataset, model=req.source.label, loss=IMPORTED_LOSS,
                        split_seed=req.split_seed)
    train.validate()
    label = req.method or f"{req.source.label} (imported)"
    record = dict(
        run=run_dir.name,
        seed=req.seed,
        method=label,
        train={k: v for k, v in train.to_dict().items()
               if k in ("dataset", "model", "loss", "split_seed")},
        **software_record(),
        dataset_info=dataclasses.asdict(info),
        imported={
            "source": source_record,
            "weights": {"path": str(Path(req.weights).resolve()),
                        "sha256": sha256_of(Path(req.weights)), "format": weights_format},
            "input": {"space": req.input_space, "mean": mean, "std": std},
            "blocks": blocks,
            "relu_taps": len(model.relu_taps),
            "num_classes": info.num_classes,
            "parameters": sum(p.numel() for p in net.parameters()),
        },
    )
    _write_folder(run_dir, record, net, req, overwrite)
    return run_dir


def _write_folder(run_dir: Path, record: dict[str, Any], net: nn.Module, req: ImportRequest,
                  overwrite: bool) -> None:
    """Write the run under a temporary name beside ``run_dir``, then rename it."""
    parent = run_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.importing-", dir=parent))
    try:
        tmp.chmod(DIR_MODE)
        save_weights(tmp / WEIGHTS, {k: v.clone() for k, v in net.state_dict().items()})
        if req.source.kind == "file":
            shutil.copyfile(req.source.target, tmp / SOURCE_COPY)
        write_json_atomic(tmp / CONFIG, record)
        write_status(tmp, "complete", imported=True)
        if run_dir.exists():
            if run_dir.is_dir() and not run_dir.is_symlink():
                shutil.rmtree(run_dir) if overwrite else run_dir.rmdir()
            else:
                run_dir.unlink()
        tmp.rename(run_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


