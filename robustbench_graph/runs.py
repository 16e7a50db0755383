"""The run folder: the only contract between ``train``, ``attack`` and ``report``.

A run folder holds::

    config.json        the resolved TrainConfig, seed, method, versions, git commit
    model.safetensors  the final weights (never a pickle)
    loss_state.safetensors  state of a stateful loss (e.g. LMD class centres), if any
    train_log.csv      tidy: epoch, split, metric, value
    status.json        {"status": "running" | "complete" | "failed", ...}
    checkpoint.pt      last finished epoch while training (tensors only, weights_only load)
    results.csv        rows written by ``rbg attack``
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import TrainConfig
from .data import DatasetInfo, dataset_info
from .device import describe_device
from .errors import RbgError
from .io import atomic_write, write_json_atomic
from .losses import LOSSES, create_loss, method_name, parse_loss_options, resolved_options
from .models import TappedModel, create_model, set_memory_format
from .parseval import make_parseval

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
LOSS_STATE = "loss_state.safetensors"
TRAIN_LOG = "train_log.csv"
STATUS = "status.json"
CHECKPOINT = "checkpoint.pt"
RESULTS = "results.csv"


@dataclass(frozen=True)
class RunSpec:
    """One unit of training work, described by plain data."""

    config: TrainConfig
    seed: int
    run_dir: Path

    @property
    def method(self) -> str:
        return method_of(self.config)

    @property
    def name(self) -> str:
        return self.run_dir.name

    def config_record(self, device: torch.device | None = None) -> dict[str, Any]:
        """The run's ``config.json``; with ``device``, also the hardware it trains on."""
        import robustbench_graph

        hardware = {}
        if device is not None:
            device = torch.device(device)
            loss = create_loss(self.config.loss, self.config.loss_options,
                               dataset_info(self.config.dataset).num_classes)
            hardware = {
                "hardware": describe_device(device),
                "numerics": {
                    "layout": "channels_last" if self.config.channels_last else "contiguous",
                    "amp": "bfloat16" if self.config.amp else "off",
                    "loss": loss.numerics(device, self.config.batch_size),
                },
            }
        return {
            "run": self.name,
            "seed": self.seed,
            "method": self.method,
            "train": self.config.to_dict(),
            "versions": {
                "robustbench_graph": robustbench_graph.__version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "git_commit": _git_commit(),
            **hardware,
        }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def method_of(config: TrainConfig) -> str:
    """The training configuration without the seed, named readably (``laplacian+parseval``)."""
    name = method_name(config.loss, config.loss_options)
    return f"{name}+parseval" if config.parseval else name


def run_name(config: TrainConfig, seed: int) -> str:
    return f"{config.dataset}-{config.model}-{method_of(config)}-seed{seed}"


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


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config record that define the run (not versions or commit), with the
    loss options completed by their defaults, so that a run written before an option existed
    still matches the same command."""
    train = dict(record["train"])
    try:
        train["loss_options"] = resolved_options(train["loss"], train.get("loss_options", {}))
    except (RbgError, KeyError, TypeError):
        pass  # an unknown loss or option: compared as written
    return {"seed": record["seed"], "train": train}


def prepare_run_dir(spec: RunSpec, overwrite: bool) -> str:
    """Decide what to do with a run folder: ``"skip"``, ``"resume"`` or ``"new"``.

    Raises if the folder holds a run of a different configuration (unless ``overwrite``).
    """
    run_dir = spec.run_dir
    record = spec.config_record()
    if run_dir.exists() and (run_dir / CONFIG).exists() and not overwrite:
        existing = read_config(run_dir)
        if comparable(existing) != comparable(record):
            raise RbgError(
                f"{run_dir} holds a run with a different configuration; "
                "use another --out or --overwrite"
            )
        status = read_status(run_dir)["status"]
        if status == "complete" and (run_dir / WEIGHTS).exists():
            return "skip"
        return "resume" if (run_dir / CHECKPOINT).exists() else "new"
    if run_dir.exists() and overwrite:
        shutil.rmtree(run_dir)
    return "new"


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


@dataclass
class LoadedRun:
    """A trained run: ``model`` in eval mode on [0, 1] inputs, plus its config record."""

    path: Path
    config: dict[str, Any]
    model: TappedModel
    info: DatasetInfo

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config["train"])

    @property
    def name(self) -> str:
        return str(self.config.get("run", self.path.name))

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def method(self) -> str:
        return str(self.config["method"])


def build_model(cfg: TrainConfig) -> tuple[TappedModel, DatasetInfo]:
    """The run's architecture: the registered model, made Parseval if asked, then adapted by
    its loss (e.g. a centroid head)."""
    info = dataset_info(cfg.dataset)
    model = create_model(cfg.model, info, width=cfg.width, feature_dim=cfg.feature_dim)
    if cfg.parseval:
        make_parseval(model)
    loss_cls = LOSSES.get(cfg.loss).factory
    model = loss_cls.adapt_model(model, parse_loss_options(cfg.loss, cfg.loss_options))
    return model, info


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """Load a finished run folder (see the module docstring) for evaluation."""
    run_dir = Path(run_dir)
    record = read_config(run_dir)
    status = read_status(run_dir)["status"]
    if status != "complete":
        raise RbgError(f"{run_dir} is not a finished run (status: {status})")
    cfg = TrainConfig.from_dict(record["train"])
    model, info = build_model(cfg)
    state = load_weights(run_dir / WEIGHTS)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise RbgError(
            f"{run_dir / WEIGHTS} does not match model {cfg.model!r} of its config"
        ) from None
    model.to(device).eval()
    set_memory_format(model, cfg.channels_last, device)
    return LoadedRun(run_dir, record, model, info)


def find_runs(root: Path) -> list[Path]:
    """Every run folder (one holding config.json) under ``root``, sorted."""
    root = Path(root)
    if (root / CONFIG).exists():
        return [root]
    return sorted(p.parent for p in root.rglob(CONFIG))
