"""Outside classifiers as run folders (``rbg import``, docs/models.md#import).

An imported run folder is a finished run that ``attack``, ``report`` and ``smoothness`` use
unchanged. Its ``config.json`` holds, beside the usual ``train`` record (dataset, a model
label, loss ``imported``), an ``imported`` record: where the network's code came from (a
Python file, copied into the folder as ``model_source.py``; an importable module; or a
torchvision architecture), the factory and its keyword arguments, the SHA-256 of the source
and of the weights file, what input the network expects (:mod:`.models.external`), its block
and ReLU taps. The weights are stored as ``model.safetensors``, read from safetensors or from
a ``state_dict`` loaded with ``weights_only=True`` (never a pickled module).

Everything is checked before anything is written: the factory exists and builds an
``nn.Module``, the weights fit it exactly, and a batch of the dataset's shape gives (batch,
classes) logits. The folder is then written under a temporary name and renamed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import pickle
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import MAX_SEED, TrainConfig
from .data import DatasetInfo, dataset_info
from .errors import RbgError
from .io import DIR_MODE, write_json_atomic
from .models.external import INPUT_SPACES, ExternalModel, default_blocks
from .rundir import CONFIG, WEIGHTS, load_weights, save_weights, write_status

SOURCE_COPY = "model_source.py"
KINDS = ("file", "module", "torchvision")
IMPORTED_LOSS = "imported"  # the ``loss`` of an imported run's train record


@dataclass(frozen=True)
class ModelSource:
    """Where a network's code is: ``kind`` file (``target`` a path), module (a module name)
    or torchvision (an architecture name); ``factory`` is called with ``kwargs``."""

    kind: str
    target: str
    factory: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The model column of its results: ``net.py:make_model``, ``torchvision.resnet18``."""
        if self.kind == "torchvision":
            return f"torchvision.{self.target}"
        target = Path(self.target).name if self.kind == "file" else self.target
        return f"{target}:{self.factory}"


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _exec_file(path: Path) -> Any:
    """The module defined by a Python file (run under a private name, not kept in
    ``sys.modules``)."""
    name = f"rbg_imported_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RbgError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up while it runs
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise RbgError(f"{path} fails to run ({_describe(err)})") from None
    finally:
        sys.modules.pop(name, None)
    return module


def _module_file(module: Any) -> Path | None:
    path = getattr(module, "__file__", None)
    return Path(path) if path else None


def build_network(source: ModelSource, code_path: Path | None = None) -> nn.Module:
    """Run the source's factory; ``code_path`` overrides a file source's path (the run
    folder's copy)."""
    if source.kind == "torchvision":
        import torchvision.models as tvm

        if source.target not in tvm.list_models():
            raise RbgError(f"unknown torchvision architecture {source.target!r} (see "
                           "torchvision.models.list_models())")
        make = lambda **kw: tvm.get_model(source.target, weights=None, **kw)  # noqa: E731
        where = f"torchvision architecture {source.target!r}"
    else:
        if source.kind == "file":
            path = Path(code_path or source.target)
            if not path.is_file():
                raise RbgError(f"model file {path} does not exist")
            module = _exec_file(path)
            where = str(path)
        else:
            try:
                module = importlib.import_module(source.target)
            except Exception as err:
                raise RbgError(f"module {source.target!r} cannot be imported "
                               f"({_describe(err)})") from None
            where = f"module {source.target!r}"
        make = getattr(module, str(source.factory), None)
        if not callable(make):
            defined = sorted(n for n, v in vars(module).items()
                             if callable(v) and not n.startswith("_")
                             and getattr(v, "__module__", None) == module.__name__)
            raise RbgError(f"{where} has no factory {source.factory!r} (it defines: "
                           f"{', '.join(defined) or 'nothing callable'})")
        where = f"{where}:{source.factory}"
    try:
        net = make(**source.kwargs)
    except Exception as err:
        raise RbgError(f"{where} failed with the given keyword arguments "
                       f"({_describe(err)})") from None
    if not isinstance(net, nn.Module):
        raise RbgError(f"{where} returned a {type(net).__name__}, not a torch nn.Module")
    return net


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Tensors by name from safetensors or a torch ``state_dict`` file (``weights_only``;
    a ``{"state_dict": ...}`` checkpoint is unwrapped); returns them and the format."""
    path = Path(path)
    if not path.is_file():
        raise RbgError(f"weights file {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9 and head[8:9] == b"{":  # safetensors: u64 header length, then JSON
        return load_weights(path), "safetensors"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" not in str(err).lower():  # not a pickle of objects
            raise RbgError(f"{path} is neither safetensors nor a torch state_dict file "
                           f"({_describe(err)})") from None
        raise RbgError(f"{path} holds pickled Python objects (e.g. a whole model), which rbg "
                       "does not load; save model.state_dict() with torch.save, or use "
                       "safetensors") from None
    except Exception as err:
        raise RbgError(f"{path} is neither safetensors nor a torch state_dict file "
                       f"({_describe(err)})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise RbgError(f"{path} is not a state_dict (a mapping of names to tensors)")
    return state, "torch state_dict"


def load_into(net: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``net`` exactly, or raise naming the first mismatches."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
              for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected),
                       ("of another shape", shapes)):
        if keys:
            more = f" and {len(keys) - 2} more" if len(keys) > 2 else ""
            problems.append(f"{len(keys)} {what} ({', '.join(keys[:2])}{more})")
    if problems:
        raise RbgError(f"{where} does not fit the model: tensors " + "; ".join(problems))
    net.load_state_dict(state, strict=True)


def check_output(model: ExternalModel, info: DatasetInfo) -> None:
    """The model maps a batch of the dataset's shape to (batch, classes) logits."""
    x = torch.rand((2, *info.input_shape), generator=torch.Generator().manual_seed(0))
    shape = "x".join(map(str, info.input_shape))
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as err:
        raise RbgError(f"the model fails on a batch of two {shape} images of dataset "
                       f"{info.name!r} ({_describe(err)})") from None
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
    from .runs import software_record

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
        file = _module_file(module) if module is not None else None
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


def is_imported(record: dict[str, Any]) -> bool:
    return isinstance(record.get("imported"), dict)


def rebuild(run_dir: Path, record: dict[str, Any], info: DatasetInfo) -> ExternalModel:
    """An imported run's model, from its recorded source and its folder's weights. A file
    source runs from the folder's copy; a module's code must be unchanged since the import."""
    try:
        imported = record["imported"]
        src = imported["source"]
        source = ModelSource(src["kind"], src.get("architecture") or src.get("module")
                             or src.get("path") or "", src.get("factory"),
                             dict(src.get("kwargs") or {}))
        io_record = imported["input"]
        blocks = list(imported["blocks"])
    except (KeyError, TypeError, AttributeError):
        raise RbgError(f"{run_dir / CONFIG}: its 'imported' record is incomplete") from None
    if source.kind not in KINDS:
        raise RbgError(f"{run_dir / CONFIG}: unknown model source kind {source.kind!r}")
    code = None
    if source.kind == "file":
        code = Path(run_dir) / SOURCE_COPY
        if not code.is_file() or sha256_of(code) != src.get("sha256"):
            raise RbgError(f"{code} is missing or differs from the imported source "
                           "(SHA-256); import the model again")
    net = build_network(source, code)
    if source.kind == "module" and src.get("sha256"):
        file = _module_file(sys.modules.get(source.target))
        if file is None or not file.is_file() or sha256_of(file) != src["sha256"]:
            raise RbgError(f"module {source.target!r} changed since it was imported into "
                           f"{run_dir} (SHA-256 differs); import it again")
    load_into(net, load_weights(Path(run_dir) / WEIGHTS), str(Path(run_dir) / WEIGHTS))
    return ExternalModel(net, info, input_space=io_record["space"], mean=io_record["mean"],
                         std=io_record["std"], blocks=blocks)
