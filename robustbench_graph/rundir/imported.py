"""Outside classifiers as run folders (``rbg import``, docs/models.md#import).

An imported run folder is a finished run that ``attack``, ``report`` and ``smoothness`` use
unchanged. Its ``config.json`` holds, beside the usual ``train`` record (dataset, a model
label, loss ``imported``), an ``imported`` record: where the network's code came from (a
Python file, copied into the folder as ``model_source.py``; an importable module; or a
torchvision architecture), the factory and its keyword arguments, the SHA-256 of the source,
of the weights file given and of the ``model.safetensors`` written (``stored_sha256``), what
input the network expects (:mod:`.models.external`), its block and ReLU taps. The folder is
read back by :mod:`.imported_model`, which rebuilds the model when the folder is loaded.

Everything is checked before anything is written, under a time limit: the factory exists in
the source and builds an ``nn.Module``, the weights fit it exactly, and a batch of the
dataset's shape gives (batch, classes) logits. The folder is then written under a temporary
name beside it and renamed, and the user's trust in its code recorded (:mod:`.trust`). An
existing folder is replaced only when it is proven an rbg run folder (:mod:`.replace`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import MAX_SEED, TrainConfig
from ..data import DatasetInfo, dataset_info
from ..errors import RbgError
from ..models.external import INPUT_SPACES, ExternalModel, default_blocks
from .atomic import DIR_MODE, write_json_atomic
from .folder import CONFIG, WEIGHTS, read_run_bytes, read_run_json, save_weights, write_status
from .imported_model import IMPORTED_LOSS, load_into, read_state_dict
from .provenance import software_record
from .replace import check_target, replace_folder
from .trust import record_trust
from .user_code import (
    CODE_KINDS,
    DEFAULT_TIMEOUT,
    MAX_SOURCE_BYTES,
    SOURCE_COPY,
    ModelSource,
    build_network,
    describe_error,
    locate_module,
    sha256_bytes,
    sha256_of,
    time_limit,
    user_code,
)


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
        except RecursionError:
            raise RbgError(f"--kw {key}: its value is nested too deeply") from None
    return out


def check_output(model: ExternalModel, info: DatasetInfo) -> None:
    """The model maps a batch of the dataset's shape to (batch, classes) logits."""
    x = torch.rand((2, *info.input_shape), generator=torch.Generator().manual_seed(0))
    shape = "x".join(map(str, info.input_shape))
    try:
        with torch.no_grad():
            out = model(x)
    except (KeyboardInterrupt, RbgError):
        raise
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
    timeout: float | None = DEFAULT_TIMEOUT  # seconds for building and checking the model


def _statistics(req: ImportRequest, info: DatasetInfo) -> tuple[list[float], list[float]]:
    mean = list(req.mean) if req.mean is not None else list(info.mean)
    std = list(req.std) if req.std is not None else list(info.std)
    channels = info.input_shape[0]
    for name, values in (("--mean", mean), ("--std", std)):
        if len(values) not in (1, channels):
            raise RbgError(f"{name} needs 1 or {channels} values for dataset {info.name!r}, "
                           f"got {len(values)}")
    if not all(math.isfinite(v) for v in mean + std):
        raise RbgError("--mean and --std values must be finite numbers")
    if any(s <= 0 for s in std):
        raise RbgError("--std values must be positive")
    return mean * (channels // len(mean)), std * (channels // len(std))


def _read_source(source: ModelSource) -> tuple[bytes | None, Path | None, str | None]:
    """A file source's bytes (what runs and is copied), or a module's file, with its
    SHA-256; nothing is run."""
    if source.kind == "file":
        path = Path(source.target)
        try:
            code = read_run_bytes(path, MAX_SOURCE_BYTES)
        except FileNotFoundError:
            raise RbgError(f"model file {path} does not exist") from None
        return code, path, sha256_bytes(code)
    if source.kind == "module":
        path = locate_module(source.target)
        return None, path, sha256_of(path)
    return None, None, None


def import_model(run_dir: Path, req: ImportRequest, *, overwrite: bool = False) -> Path:
    """Check the outside model and write it as a finished run folder; returns the folder.

    Raises:
        RbgError: anything that does not fit (nothing is written then).
    """
    run_dir = Path(run_dir)
    target = check_target(run_dir, overwrite)
    if req.input_space not in INPUT_SPACES:
        raise RbgError(f"unknown --input {req.input_space!r}; valid: {', '.join(INPUT_SPACES)}")
    if not 0 <= req.seed <= MAX_SEED:
        raise RbgError(f"--seed must be in 0..{MAX_SEED}, got {req.seed}")
    if req.timeout is not None and not (math.isfinite(req.timeout) and req.timeout > 0):
        raise RbgError(f"--timeout must be a positive number of seconds, got {req.timeout}")
    info = dataset_info(req.dataset, req.data_dir)
    mean, std = _statistics(req, info)
    code, code_path, code_sha = _read_source(req.source)
    with time_limit(req.timeout, "checking the model"), user_code("checking the model"):
        net = build_network(req.source, code, code_path)
        state, weights_format = read_state_dict(req.weights)
        load_into(net, state, str(req.weights))
        blocks = list(req.blocks) if req.blocks is not None else default_blocks(net)
        model = ExternalModel(net, info, input_space=req.input_space, mean=mean, std=std,
                              blocks=blocks).eval()
        check_output(model, info)
        weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
        relu_taps, parameters = len(model.relu_taps), sum(p.numel() for p in net.parameters())
    source_record: dict[str, Any] = {"kind": req.source.kind, "factory": req.source.factory,
                                     "kwargs": req.source.kwargs}
    if req.source.kind == "file":
        source_record.update(path=str(Path(req.source.target).resolve()), sha256=code_sha,
                             copy=SOURCE_COPY)
    elif req.source.kind == "module":
        source_record.update(module=req.source.target, path=str(code_path), sha256=code_sha)
    else:
        import torchvision

        source_record.update(architecture=req.source.target,
                             torchvision=torchvision.__version__)
    train = TrainConfig(dataset=req.dataset, model=req.source.label, loss=IMPORTED_LOSS,
                        split_seed=req.split_seed)
    train.validate()
    record = dict(
        run=target.name,
        seed=req.seed,
        method=req.method or f"{req.source.label} (imported)",
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
            "relu_taps": relu_taps,
            "num_classes": info.num_classes,
            "parameters": parameters,
        },
    )
    _write_folder(target, record, weights, code, code_sha, req.source.kind)
    return run_dir


def _write_folder(target: Path, record: dict[str, Any], weights: dict[str, torch.Tensor],
                  code: bytes | None, code_sha: str | None, kind: str) -> None:
    """Write the run under a temporary name beside ``target``, record the user's trust in
    its code, then put it in place (:func:`.replace.replace_folder`)."""
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.importing-", dir=parent))
    try:
        tmp.chmod(DIR_MODE)
        save_weights(tmp / WEIGHTS, weights)
        stored_sha = sha256_of(tmp / WEIGHTS)
        record["imported"]["weights"]["stored_sha256"] = stored_sha
        if code is not None:
            (tmp / SOURCE_COPY).write_bytes(code)
        write_json_atomic(tmp / CONFIG, record)
        write_status(tmp, "complete", imported=True)
        if kind in CODE_KINDS:  # the folder as written, read back as it will be loaded
            written = read_run_json(tmp / CONFIG)["imported"]
            record_trust(target, written, code_sha, stored_sha, "rbg import")
        replace_folder(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
