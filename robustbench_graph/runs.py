"""Runs as units of work and as trained models: what a run is (:class:`RunSpec`, its config
record and name), deciding what to do with a folder, and assembling a finished run's model
(:func:`load_run`). The folder's files themselves are read and written by
:mod:`robustbench_graph.rundir`.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .config import TrainConfig
from .data import DatasetInfo, dataset_info, info_from_record
from .device import describe_device
from .errors import RbgError
from .importing import is_imported, rebuild
from .losses import LOSSES, create_loss, method_name, parse_loss_options, resolved_options
from .models import TappedModel, create_model, set_memory_format
from .parseval import make_parseval
from .rundir import CHECKPOINT, CONFIG, WEIGHTS, git_commit, load_weights, read_config, read_status


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

    def config_record(self, device: torch.device | None = None,
                      info: DatasetInfo | None = None) -> dict[str, Any]:
        """The run's ``config.json``; with ``device``, also the hardware it trains on, with
        ``info`` the dataset's (recorded: an image folder's info comes from its files)."""
        hardware: dict[str, Any] = {}
        if info is not None:
            hardware["dataset_info"] = dataclasses.asdict(info)
        if device is not None:
            device = torch.device(device)
            loss = create_loss(self.config.loss, self.config.loss_options,
                               (info or dataset_info(self.config.dataset)).num_classes)
            hardware |= {
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
            **software_record(),
            **hardware,
        }


def software_record() -> dict[str, Any]:
    """The versions and commit of the software that writes a run's config record."""
    return {
        "versions": {
            "robustbench_graph": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "git_commit": git_commit(),
    }


def method_of(config: TrainConfig) -> str:
    """The training configuration without the seed, named readably (``laplacian+parseval``)."""
    name = method_name(config.loss, config.loss_options)
    return f"{name}+parseval" if config.parseval else name


def run_name(config: TrainConfig, seed: int) -> str:
    return f"{config.dataset}-{config.model}-{method_of(config)}-seed{seed}"


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


def build_model(cfg: TrainConfig, info: DatasetInfo | None = None
                ) -> tuple[TappedModel, DatasetInfo]:
    """The run's architecture for its dataset (``info``, default the registered one's): the
    registered model, made Parseval if asked, then adapted by its loss (e.g. a centroid
    head)."""
    info = info or dataset_info(cfg.dataset)
    model = create_model(cfg.model, info, width=cfg.width, feature_dim=cfg.feature_dim)
    if cfg.parseval:
        make_parseval(model)
    loss_cls = LOSSES.get(cfg.loss).factory
    model = loss_cls.adapt_model(model, parse_loss_options(cfg.loss, cfg.loss_options))
    return model, info


def recorded_info(run_dir: Path, record: dict[str, Any]) -> DatasetInfo:
    """The dataset info a run recorded, else (runs of older versions) the registered one."""
    if "dataset_info" not in record:
        return dataset_info(str(record["train"].get("dataset")))
    try:
        return info_from_record(record["dataset_info"])
    except (KeyError, TypeError, ValueError):
        raise RbgError(f"{Path(run_dir) / CONFIG}: its dataset_info record is malformed"
                       ) from None


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """Load a finished run folder (see the module docstring) for evaluation."""
    run_dir = Path(run_dir)
    record = read_config(run_dir)
    status = read_status(run_dir)["status"]
    if status != "complete":
        raise RbgError(f"{run_dir} is not a finished run (status: {status})")
    cfg = TrainConfig.from_dict(record["train"])
    info = recorded_info(run_dir, record)
    if is_imported(record):
        model: TappedModel = rebuild(run_dir, record, info)
    else:
        model, info = build_model(cfg, info)
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
