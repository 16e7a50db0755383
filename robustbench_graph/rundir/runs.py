"""A finished run folder as a trained model: :func:`load_run` reads the folder's
``config.json`` and weights and assembles the network it records (architecture, Parseval,
classifier head) from :mod:`robustbench_graph.models` alone, so that a run folder is enough to
build its model (docs/run-folder.md). The folder's files themselves are read by
:mod:`.folder`; an imported model is rebuilt by :mod:`.imported_model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import TrainConfig
from ..data import DatasetInfo, dataset_info, info_from_record
from ..errors import RbgError
from ..models.catalogue import CENTROIDS, LINEAR
from .folder import CONFIG, WEIGHTS, is_imported, load_weights, read_config, read_status

if TYPE_CHECKING:
    import torch

    from ..models import TappedModel

# The network is built by the models package and torch, imported by the functions that build
# one: the records' helpers (head_record, recorded_head) are read by torch-free commands.

HEAD_RECORD = "model_head"  # config.json: {"name": "linear" | "centroids", "options": {...}}
# Runs written before the head was recorded: the one loss whose model had another head was
# gsl, with the centroids head of its out_dim and tau options (a rule on the record, so that
# loading an old run needs no loss code).
LEGACY_HEADS: dict[str, tuple[str, tuple[str, ...]]] = {"gsl": (CENTROIDS, ("out_dim", "tau"))}


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


def head_record(head: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``model_head`` entry of a run's ``config.json``."""
    return {"name": head, "options": dict(options or {})}


def recorded_head(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The classifier head (name, options) a run's config record names; for a run written
    before heads were recorded, the one its loss implied (:data:`LEGACY_HEADS`)."""
    entry = record.get(HEAD_RECORD)
    if entry is None:
        train = record.get("train") or {}
        legacy = LEGACY_HEADS.get(str(train.get("loss")))
        if legacy is None:
            return LINEAR, {}
        name, keys = legacy
        options = train.get("loss_options") or {}
        return name, {k: options[k] for k in keys if k in options}
    try:
        return str(entry["name"]), dict(entry.get("options") or {})
    except (KeyError, TypeError, AttributeError, ValueError):
        raise RbgError(f"its {HEAD_RECORD} record is malformed: {entry!r}") from None


def build_model(cfg: TrainConfig, info: DatasetInfo | None = None, head: str = LINEAR,
                head_options: Mapping[str, Any] | None = None
                ) -> tuple[TappedModel, DatasetInfo]:
    """The run's architecture for its dataset (``info``, default the registered one's) with
    its classifier ``head``, made Parseval if the configuration asks."""
    from ..models import create_model
    from ..models.parseval import make_parseval

    info = info or dataset_info(cfg.dataset)
    model = create_model(cfg.model, info, width=cfg.width, feature_dim=cfg.feature_dim,
                         head=head, head_options=head_options)
    if cfg.parseval:
        make_parseval(model)
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
    from ..models import set_memory_format
    from .imported_model import rebuild

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
        try:
            head, options = recorded_head(record)
        except RbgError as err:
            raise RbgError(f"{run_dir / CONFIG}: {err}") from None
        model, info = build_model(cfg, info, head, options)
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
