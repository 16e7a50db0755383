"""The run folder's files: the only contract between ``train``, ``attack`` and ``report``.

A run folder holds::

    config.json        the resolved TrainConfig, seed, method, model head, versions, commit
    model.safetensors  the final weights (never a pickle)
    loss_state.safetensors  state of a stateful loss (e.g. LMD class centres), if any
    train_log.csv      tidy: epoch, split, metric, value
    status.json        {"status": "running" | "complete" | "failed", ...}
    checkpoint.pt      last finished epoch while training (tensors only, weights_only load)
    model_source.py    an imported model's code (:mod:`robustbench_graph.rundir.imported`)
    results.csv        rows written by ``rbg attack`` (:mod:`robustbench_graph.rundir.results`)
    attack.json        the settings behind them (:mod:`robustbench_graph.rundir.attack_record`)

This module reads and writes them and knows nothing of models or losses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import MAX_SEED, TrainConfig
from ..errors import RbgError
from ..reading import read_bounded
from .atomic import atomic_write, write_json_atomic

if TYPE_CHECKING:
    import torch

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
LOSS_STATE = "loss_state.safetensors"
TRAIN_LOG = "train_log.csv"
STATUS = "status.json"
CHECKPOINT = "checkpoint.pt"
RESULTS = "results.csv"


STATUSES = ("running", "complete", "failed")
MAX_JSON_BYTES = 16 * 2**20  # a config, status or attack record beyond this is not rbg's


def read_run_bytes(path: Path, limit: int) -> bytes:
    """The bytes of a run file, read only if it is a regular file of at most ``limit`` bytes
    (:func:`robustbench_graph.reading.read_bounded`: no FIFO, no endless device, no reservation
    of the whole limit).

    Raises:
        FileNotFoundError: there is no such file.
        RbgError: anything else that makes it unreadable, naming the file.
    """
    return read_bounded(path, limit, RbgError, " for an rbg run file")


def read_run_json(path: Path) -> Any:
    """A run file's JSON value (a readable error naming the file for anything else)."""
    raw = read_run_bytes(path, MAX_JSON_BYTES)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RbgError(f"{path} is not UTF-8 text") from None
    except (json.JSONDecodeError, RecursionError, ValueError):
        raise RbgError(f"{path} is not valid JSON") from None


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status record; ``{"status": "missing"}`` without one and ``{"status":
    "corrupt", "message": ...}`` for one that is unreadable or of the wrong shape."""
    path = Path(run_dir) / STATUS
    try:
        record = read_run_json(path)
    except FileNotFoundError:
        return {"status": "missing"}
    except RbgError as err:
        return {"status": "corrupt", "message": str(err)}
    if not isinstance(record, dict) or record.get("status") not in STATUSES:
        return {"status": "corrupt", "message": f"{path} is not an rbg status record"}
    return record


def write_status(run_dir: Path, status: str, **extra: Any) -> None:
    write_json_atomic(Path(run_dir) / STATUS, {"status": status, **extra})


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config record, checked: a dict with a valid ``train`` configuration, a seed
    in range and a method name.

    Raises:
        RbgError: naming the file and what is wrong.
    """
    path = Path(run_dir) / CONFIG
    try:
        record = read_run_json(path)
    except FileNotFoundError:
        raise RbgError(f"{run_dir} is not a run folder (no {CONFIG})") from None
    try:
        if not isinstance(record, dict) or not isinstance(record.get("train"), dict):
            raise ValueError("not an rbg run config")
        seed = record.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed {seed!r} is not an integer in 0..{MAX_SEED}")
        if not isinstance(record.get("method"), str):
            raise ValueError("no method name")
        TrainConfig.from_dict(record["train"]).validate()
    except RbgError as err:
        raise RbgError(f"{path}: {err}") from None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError,
            RecursionError) as err:
        raise RbgError(f"{path} is not a valid rbg run config ({err})") from None
    return record


MAX_WEIGHTS_BYTES = 2**34


def save_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Weights as safetensors, serialised in memory and written by rbg itself: the usual
    file permissions, and a full disk surfaces as the OSError it is."""
    from safetensors.torch import save as save_safetensors  # torch: imported when used

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    data = save_safetensors(tensors)
    atomic_write(Path(path), lambda p: p.write_bytes(data))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; anything else (a pickle, a truncated file) is refused. The
    bytes are read by rbg (any path, UTF-8 or not), then parsed."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors  # torch: imported when used

    path = Path(path)
    try:
        data = read_run_bytes(path, MAX_WEIGHTS_BYTES)
    except FileNotFoundError:
        raise RbgError(f"missing weights file {path}") from None
    try:
        return load_safetensors(data)
    except KeyError as err:  # a dtype safetensors knows and its torch side does not
        raise RbgError(f"{path} holds a tensor of dtype {err.args[0] if err.args else '?'}, "
                       "which this torch cannot load") from None
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as err:
        message = (str(err).splitlines() or [type(err).__name__])[0]
        raise RbgError(f"{path} is not a valid safetensors weights file ({message})") from None


def is_imported(record: dict[str, Any]) -> bool:
    """Whether a ``config.json`` record is of an imported network (``rbg import``)."""
    return isinstance(record.get("imported"), dict)


def find_runs(root: Path) -> list[Path]:
    """Every run folder (one holding config.json) under ``root``, sorted, following symbolic
    links (a folder of links to run folders is a common way to assemble a subset); a folder
    reached twice, through a link loop or two links, is read once."""
    root = Path(root)
    if (root / CONFIG).is_file():
        return [root]
    found: list[Path] = []
    seen: set[str] = set()
    for here, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(here)
        if real in seen:  # a loop, or a second way in: not again, nor below it
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        if CONFIG in files:
            found.append(Path(here))
    return sorted(found)
