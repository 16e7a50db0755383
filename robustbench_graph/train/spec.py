"""What a run to train is: :class:`RunSpec` (a configuration, a seed, a folder), its name and
``config.json`` record, the sweep of runs (:func:`plan_runs`) and deciding what to do with a
folder that already exists (:func:`prepare_run_dir`)."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..data import DatasetInfo, dataset_info
from ..device import describe_device
from ..errors import RbgError
from ..lazy import torch
from ..losses import (
    LOSSES,
    create_loss,
    method_name,
    parse_loss_options,
    preset_record,
    resolved_options,
)
from ..rundir.folder import CHECKPOINT, CONFIG, WEIGHTS, read_config, read_status
from ..rundir.provenance import software_record
from ..rundir.replace import check_target
from ..rundir.runs import HEAD_RECORD, head_record


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
                      info: DatasetInfo | None = None,
                      validation: dict[str, Any] | None = None,
                      model: Any = None) -> dict[str, Any]:
        """The run's ``config.json``, with the classifier head its loss trains; with
        ``device``, also the hardware it trains on, with ``info`` the dataset's (recorded: an
        image folder's info comes from its files), with ``validation`` the validation split
        held out of the training split (``ValidationSplit.record``), with ``model`` the
        values the loss's unset options take on it (``resolved``, e.g. Laplacian's γ)."""
        hardware: dict[str, Any] = {} if validation is None else {"validation": validation}
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
            if model is not None and (values := loss.resolved(model)):
                hardware["resolved"] = values
        return {
            "run": self.name,
            "seed": self.seed,
            "method": self.method,
            "train": self.config.to_dict(),
            "loss_preset": preset_record(self.config.loss, self.config.dataset),
            HEAD_RECORD: head_record(*loss_head(self.config.loss, self.config.loss_options)),
            **software_record(),
            **hardware,
        }


def loss_head(loss: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The classifier head the loss ``loss`` trains and the head's options, taken from the
    loss's ``options`` (``TrainingLoss.head`` and ``head_options``)."""
    cls = LOSSES.get(loss).factory
    parsed = parse_loss_options(loss, options)
    return cls.head, {name: getattr(parsed, name) for name in cls.head_options}


def method_of(config: TrainConfig) -> str:
    """The training configuration without the seed, named readably (``laplacian+parseval``)."""
    name = method_name(config.loss, config.loss_options, config.dataset)
    return f"{name}+parseval" if config.parseval else name


def run_name(config: TrainConfig, seed: int) -> str:
    return f"{config.dataset}-{config.model}-{method_of(config)}-seed{seed}"


def plan_runs(config: TrainConfig, seeds: list[int], out: Path) -> list[RunSpec]:
    """The training units of a sweep: one :class:`RunSpec` per seed (plain data)."""
    config.validate()
    options = resolved_options(config.loss, config.loss_options, config.dataset)
    config = replace(config.resolved(), loss_options=options)
    prefix = run_name(config, 0).removesuffix("seed0")  # the method is named once, not per seed
    return [RunSpec(config, s, Path(out) / f"{prefix}seed{s}") for s in seeds]


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
        check_target(run_dir, overwrite=True)  # only a proven run folder, never the cwd
        shutil.rmtree(run_dir)
    return "new"
