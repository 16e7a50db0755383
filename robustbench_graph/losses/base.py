"""The training-loss contract and its registry.

A loss is an ``nn.Module`` called as ``loss(model, images, labels) -> LossOutput``: it runs the
forward pass itself, so it can tap activations or penultimate features. Its options are a
frozen dataclass (``Options``), parsed from ``--loss-option key=value``. Stateful losses keep
their state in buffers, which are saved with the run.

A loss module imports no torch at its top (``from ..lazy import F, torch``): its declarations
(``Options``, ``presets``, ``head``, description) are read by ``rbg list`` and ``rbg report``,
which compute nothing with torch. ``TrainingLoss`` becomes an ``nn.Module`` when a loss is
created (:class:`robustbench_graph.lazy.LazyModuleBase`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..data import family_of
from ..errors import RbgError
from ..lazy import LazyModuleBase
from ..registry import Registry
from ..settings import parse_settings

if TYPE_CHECKING:
    import torch

    from ..data import ImageData
    from ..models import TappedModel


@dataclass
class LossOutput:
    loss: torch.Tensor
    logits: torch.Tensor
    parts: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class NoOptions:
    pass


# Where the grey presets come from: chosen on a validation split, never the test split.
GREY_SWEEP = ("loss-sweep-mnist5k: the strongest of 3 configurations whose median validation "
              "accuracy (3 seeds, 20% of mnist5k's training split) is within 1.5 pt of CE's "
              "best; docs/losses.md#presets")


@dataclass(frozen=True)
class LossPreset:
    """Option values for one dataset family (docs/losses.md#presets), with where they come
    from: the paper's value where its setting applies, else the validation sweep that chose
    them. Options given explicitly (``-o``) override a preset."""

    options: dict[str, Any]
    source: str


class TrainingLoss(LazyModuleBase):
    """Base class; subclasses set ``Options`` and implement ``forward``. An instance is an
    ``nn.Module`` (``LazyModuleBase``); the class itself is read without torch."""

    Options: ClassVar[type] = NoOptions
    # The classifier head the loss trains (models/heads.py) and the Options fields passed to
    # it; training builds the model with them and records them in config.json (model_head).
    head: ClassVar[str] = "linear"
    head_options: ClassVar[tuple[str, ...]] = ()
    # Option values per dataset family ("grey", "colour"); a family without an entry uses
    # the Options defaults (the papers' values).
    presets: ClassVar[dict[str, LossPreset]] = {}

    def __init__(self, options: Any, num_classes: int) -> None:
        super().__init__()
        self.options = options
        self.num_classes = num_classes

    def forward(
        self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    # Extension points (no-ops by default) -------------------------------------------------
    def after_step(self, model: TappedModel) -> None:
        """Called after every optimiser step."""

    def numerics(self, device: torch.device, batch_size: int) -> dict[str, str]:
        """The precisions and algorithms the loss resolves to on ``device`` (recorded in the
        run's ``config.json`` where an option's value depends on the hardware)."""
        return {}

    def resolved(self, model: TappedModel) -> dict[str, Any]:
        """Options left as ``None`` with the value they take on ``model`` (recorded in the
        run's ``config.json`` as ``resolved``, shown by the report)."""
        return {}

    def finish(self, model: TappedModel, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Called once after the last epoch with the clean training set (on the device),
        before the weights are saved (e.g. to compute class centroids)."""

    def final_metrics(
        self, model: TappedModel, train: ImageData, test: ImageData, device: torch.device
    ) -> dict[str, float]:
        """Extra test metrics of the finished model, logged with the run (e.g. GSL's k-NN
        accuracy)."""
        return {}


LOSSES: Registry[type[TrainingLoss]] = Registry("loss")


def require_choice(loss: str, option: str, value: Any, choices: typing.Iterable[str]) -> None:
    """Raise ``RbgError`` unless ``value`` is one of ``choices`` (an option's valid names)."""
    if value not in choices:
        raise RbgError(f"{loss} {option} must be one of {', '.join(choices)}, got {value!r}")


def register_loss(name: str, description: str):  # noqa: ANN201
    def decorate(cls: type[TrainingLoss]) -> type[TrainingLoss]:
        LOSSES.register(name, description)(cls)
        return cls

    return decorate


def loss_preset(name: str, dataset: str | None) -> tuple[str, LossPreset] | None:
    """The family and preset that loss ``name`` takes on ``dataset``, or ``None``."""
    family = family_of(dataset) if dataset is not None else None
    preset = LOSSES.get(name).factory.presets.get(family) if family is not None else None
    return None if preset is None else (family, preset)


def preset_record(name: str, dataset: str | None) -> dict[str, Any] | None:
    """The preset a run of ``name`` on ``dataset`` took, for its ``config.json``."""
    found = loss_preset(name, dataset)
    if found is None:
        return None
    family, preset = found
    return {"family": family, "options": dict(preset.options), "source": preset.source}


def parse_loss_options(name: str, raw: dict[str, Any], dataset: str | None = None) -> Any:
    """The loss's ``Options`` from ``{key: value}`` over the preset of ``dataset``'s family
    (if any), by the parser of the perturbation settings
    (:func:`robustbench_graph.settings.parse_settings`); unknown keys list the valid ones."""
    found = loss_preset(name, dataset)
    merged = {**(found[1].options if found else {}), **raw}
    return parse_settings(LOSSES.get(name).factory.Options, merged, f"loss {name!r}", "option")


def create_loss(name: str, options: dict[str, Any], num_classes: int) -> TrainingLoss:
    cls = LOSSES.get(name).factory
    return cls(parse_loss_options(name, options), num_classes)


def resolved_options(name: str, options: dict[str, Any],
                     dataset: str | None = None) -> dict[str, Any]:
    """Every option of the loss with its value (the dataset family's preset, then the
    defaults, filled in), JSON-ready."""
    return dataclasses.asdict(parse_loss_options(name, options, dataset))


def method_name(name: str, options: dict[str, Any], dataset: str | None = None) -> str:
    """Readable method id: the loss plus its options that differ from the defaults on
    ``dataset`` (its family's preset included), e.g. ``laplacian_gamma0.001``."""
    defaults = resolved_options(name, {}, dataset)
    given = resolved_options(name, options, dataset)
    extras = [f"{k}{given[k]}" for k in sorted(given) if given[k] != defaults[k]]
    return "_".join([name, *extras])
