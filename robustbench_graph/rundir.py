"""The run folder's files: the only contract between ``train``, ``attack`` and ``report``.

A run folder holds::

    config.json        the resolved TrainConfig, seed, method, versions, git commit
    model.safetensors  the final weights (never a pickle)
    loss_state.safetensors  state of a stateful loss (e.g. LMD class centres), if any
    train_log.csv      tidy: epoch, split, metric, value
    status.json        {"status": "running" | "complete" | "failed", ...}
    checkpoint.pt      last finished epoch while training (tensors only, weights_only load)
    results.csv        rows written by ``rbg attack`` (:mod:`robustbench_graph.records`)
    attack.json        the settings behind them (:mod:`robustbench_graph.attack_record`)

This module reads and writes them and knows nothing of models or losses.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import TrainConfig
from .errors import RbgError
from .io import atomic_write, write_json_atomic

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
LOSS_STATE = "loss_state.safetensors"
TRAIN_LOG = "train_log.csv"
STATUS = "status.json"
CHECKPOINT = "checkpoint.pt"
RESULTS = "results.csv"


def git_commit() -> str | None:
    """The commit of the rbg checkout this code runs from, if it is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def read_status(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / STATUS
    if not path.exists():
        return {"status": "missing"}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"status": "corrupt"}


def write_status(run_dir: Path, status: str, **extra: Any) -> None:
    write_json_atomic(Path(run_dir) / STATUS, {"status": status, **extra})


def read_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG
    try:
        record = json.loads(path.read_text())
        TrainConfig.from_dict(record["train"])
        int(record["seed"])
    except FileNotFoundError:
        raise RbgError(f"{run_dir} is not a run folder (no {CONFIG})") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise RbgError(f"{path} is unreadable or not an rbg run config") from None
    return record


def save_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(Path(path), lambda p: save_file(tensors, str(p)))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; anything else (a pickle, a truncated file) is refused."""
    path = Path(path)
    if not path.exists():
        raise RbgError(f"missing weights file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise RbgError(f"{path} is not a valid safetensors weights file ({err})") from None


def find_runs(root: Path) -> list[Path]:
    """Every run folder (one holding config.json) under ``root``, sorted."""
    root = Path(root)
    if (root / CONFIG).exists():
        return [root]
    return sorted(p.parent for p in root.rglob(CONFIG))
