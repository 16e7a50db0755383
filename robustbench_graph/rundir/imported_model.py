"""An imported run's network (docs/models.md#import): where its code is
(:class:`ModelSource`), building it, reading a weights file and fitting it exactly, and
rebuilding the model of an imported run folder for
:func:`~robustbench_graph.rundir.runs.load_run` (:func:`rebuild`).

The weights are read from safetensors or from a ``state_dict`` loaded with
``weights_only=True`` (never a pickled module). Writing such a folder (``rbg import``) is
:mod:`.imported`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import DatasetInfo
from ..errors import RbgError
from ..models.external import ExternalModel
from .folder import CONFIG, WEIGHTS, load_weights

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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_error(err: BaseException) -> str:
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
        raise RbgError(f"{path} fails to run ({describe_error(err)})") from None
    finally:
        sys.modules.pop(name, None)
    return module


def module_file(module: Any) -> Path | None:
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
                               f"({describe_error(err)})") from None
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
                       f"({describe_error(err)})") from None
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
                           f"({describe_error(err)})") from None
        raise RbgError(f"{path} holds pickled Python objects (e.g. a whole model), which rbg "
                       "does not load; save model.state_dict() with torch.save, or use "
                       "safetensors") from None
    except Exception as err:
        raise RbgError(f"{path} is neither safetensors nor a torch state_dict file "
                       f"({describe_error(err)})") from None
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
        file = module_file(sys.modules.get(source.target))
        if file is None or not file.is_file() or sha256_of(file) != src["sha256"]:
            raise RbgError(f"module {source.target!r} changed since it was imported into "
                           f"{run_dir} (SHA-256 differs); import it again")
    load_into(net, load_weights(Path(run_dir) / WEIGHTS), str(Path(run_dir) / WEIGHTS))
    return ExternalModel(net, info, input_space=io_record["space"], mean=io_record["mean"],
                         std=io_record["std"], blocks=blocks)
