"""An imported run's network (docs/models.md#import): reading a weights file and fitting it
exactly, and rebuilding the model of an imported run folder for
:func:`~robustbench_graph.rundir.runs.load_run` (:func:`rebuild`): its code and weights are
first checked against their recorded SHA-256 (:mod:`.run_code`), and the code runs only when
the user trusts it (:mod:`.trust`), under a time limit (:mod:`.user_code`, which also knows
where the code is and builds the network).

The weights are read from safetensors or from a ``state_dict`` loaded with
``weights_only=True`` (never a pickled module). Writing such a folder (``rbg import``) is
:mod:`.imported`.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from ..data import DatasetInfo
from ..errors import RbgError
from ..lazy import torch
from ..models.checkpoint import unwrap_checkpoint
from .ecosystem import LIBRARY_KINDS, build, inspect_library_run
from .folder import CONFIG, WEIGHTS, load_weights
from .run_code import inspect_run, untrusted_message
from .user_code import DEFAULT_TIMEOUT, describe_error, time_limit, user_code
from .user_code import is_imported as is_imported

if TYPE_CHECKING:
    from torch import nn

    from ..models.external import ExternalModel

IMPORTED_LOSS = "imported"  # the ``loss`` of an imported run's train record


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """Tensors by name from safetensors or a torch ``state_dict`` file (``weights_only``;
    a RobustBench-format checkpoint, ``{"state_dict": ...}`` with ``module.`` prefixes, is
    unwrapped: :mod:`..models.checkpoint`); returns them, the format and what unwrapping
    did."""
    path = Path(path)
    if not path.is_file():
        raise RbgError(f"weights file {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9 and head[8:9] == b"{":  # safetensors: u64 header length, then JSON
        state, notes = unwrap_checkpoint(load_weights(path), str(path))
        return state, "safetensors", notes
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
    state, notes = unwrap_checkpoint(state, str(path))
    return state, "torch state_dict", notes


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


def _parse_weights(data: bytes, path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load as load_safetensors

        return load_safetensors(data)
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        raise RbgError(f"{path} is not a valid safetensors weights file ({err})") from None


def _kind(record: dict[str, Any]) -> Any:
    imported = record.get("imported")
    source = imported.get("source") if isinstance(imported, dict) else None
    return source.get("kind") if isinstance(source, dict) else None


def rebuild(run_dir: Path, record: dict[str, Any], info: DatasetInfo,
            timeout: float | None = DEFAULT_TIMEOUT) -> ExternalModel:
    """An imported run's model, from its recorded source and its folder's weights, once
    :func:`inspect_run` has checked them and the user trusts the code (:mod:`.trust`)."""
    from ..models.external import ExternalModel

    run_dir = Path(run_dir)
    if _kind(record) in LIBRARY_KINDS:  # timm, ONNX: no code of the user's, nothing to trust
        source, code_bytes, code_path, weights = inspect_library_run(run_dir, record)
    else:
        code = inspect_run(run_dir, record)
        if not code.trusted:
            raise RbgError(untrusted_message([run_dir]))
        source, code_bytes, code_path, weights = (code.source, code.code, code.code_path,
                                                  code.weights)
    try:
        io_record = record["imported"]["input"]
        space, mean, std = io_record["space"], io_record["mean"], io_record["std"]
        blocks = list(record["imported"]["blocks"])
        no_gradient = record["imported"].get("no_gradient")
    except (KeyError, TypeError, AttributeError):
        raise RbgError(f"{run_dir / CONFIG}: its 'imported' record is incomplete") from None
    with time_limit(timeout, f"building the model of {run_dir}"), \
            user_code(f"building the model of {run_dir}"):
        net = build(source, code_bytes, code_path)
        load_into(net, _parse_weights(weights, run_dir / WEIGHTS), str(run_dir / WEIGHTS))
        return ExternalModel(net, info, input_space=space, mean=mean, std=std, blocks=blocks,
                             no_gradient=no_gradient)
