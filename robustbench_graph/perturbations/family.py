"""The perturbation contract: a family declares its settings and metrics and writes its step.

A perturbation family is one module with one :class:`Perturbation` subclass, registered with
:func:`register_perturbation`. It declares

* ``Settings``: a frozen dataclass of its settings, each field with its meaning
  (:func:`robustbench_graph.settings.setting`); ``presets`` overrides defaults per dataset
  family (``grey``: one-channel images such as MNIST, ``colour``: CIFAR-like), because the
  papers' budgets are too weak for MNIST (docs/perturbations.md);
* ``sweep``: the settings field (a tuple), or fields, that expand into one *cell* per value,
  the strength axis of a curve (``snr_db``, ``p``, ``eps``); ``sweep_param`` and
  ``sweep_value`` name a cell's param and value where they are not the field and its number;
* ``metrics`` with their direction and ``headline`` (the metric a report table shows);
* ``order``: its place in the suite (cheap first), and ``version``, bumped whenever a change
  alters its numbers (it is part of every cell's settings fingerprint).

The base class owns what every family must get right: the model in eval mode, [0, 1] inputs
clipped after the step (or the normalised space, unclipped, for ``space = "normalized"``), a
generator seeded per (run, cell, repeat), batching, the accuracy count, the repeats, and the
check that only declared metrics come back. A family writes only its step: ``perturb`` (the
inputs), ``perturbed_model`` (the network) or, for attacks with their own metrics,
``evaluate``.

Around it: :mod:`.cell` (a unit of work), :mod:`.context` (what a family measures with),
:mod:`.metrics` (its declarations), :mod:`.checks` (settings checks) and
:mod:`.dataset_families` (the ``grey``/``colour`` keys of presets).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, final

from ..config import ImageSubset
from ..lazy import torch
from ..registry import Registry
from ..rundir.results import as_saved
from ..settings import parse_settings, to_json
from .cell import Cell
from .context import Draw, EvalContext, Measurement
from .dataset_families import FAMILIES
from .metrics import ACCURACY, Metric, Strength
from .report_extras import ReportExtra

if TYPE_CHECKING:
    from ..models import TappedModel


@dataclass(frozen=True)
class NoSettings:
    """The ``Settings`` of a family that has none."""


class Perturbation:
    """Base class of a perturbation family (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str]
    Settings: ClassVar[type] = NoSettings
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    sweep: ClassVar[str | tuple[str, ...] | None] = None
    metrics: ClassVar[tuple[Metric, ...]] = (ACCURACY,)
    headline: ClassVar[str] = "accuracy"
    order: ClassVar[int] = 100
    version: ClassVar[int] = 1
    repeats_setting: ClassVar[str | None] = None  # the settings field counting repeats
    space: ClassVar[str] = "pixel"  # "pixel": [0, 1], clipped; "normalized": unclipped
    title: ClassVar[str] = ""  # the family as a reader names it ("Gaussian noise")
    short_title: ClassVar[str] = ""  # words of a narrow table header ("gauss iid")
    strengths: ClassVar[dict[str, Strength]] = {}  # param: how its values read
    # The strength a report's headline shows, per dataset family (grey/colour): a value of
    # the default grid where the baseline is clearly hurt but not destroyed.
    headline_setting: ClassVar[dict[str, float]] = {}
    # An optional extra the family needs: (the module it imports, the extra's name). A
    # family whose module is missing is left out of ``--suite all`` (with a note) and fails
    # with one line saying how to install it when named.
    requires: ClassVar[tuple[str, str] | None] = None
    # The dataset families (grey/colour) whose runs ``--suite all`` measures it on; named
    # explicitly, a family runs on any dataset (or refuses it with a clear message).
    suite_families: ClassVar[tuple[str, ...]] = FAMILIES
    # Whether the cells measure the test images (their choice, --samples, is then part of
    # every cell's settings); false for a family on the training images (lipschitz).
    on_test_images: ClassVar[bool] = True
    # What the family adds to a report (a per-image figure, a summary table, a realised
    # value, a metric's label): robustbench_graph.perturbations.report_extras.
    report_extras: ClassVar[tuple[ReportExtra, ...]] = ()

    @classmethod
    def available(cls) -> bool:
        """Whether the family's optional extra (``requires``) is installed."""
        if cls.requires is None:
            return True
        import importlib.util

        return importlib.util.find_spec(cls.requires[0]) is not None

    @classmethod
    def describe_cell(cls, param: str, value: float) -> str:
        """``Gaussian noise, SNR 5 dB``; the title alone for a family without a sweep."""
        title = cls.title or cls.name
        if param in ("none", "") or value != value:  # noqa: PLR0124 - NaN check
            return title
        strength = cls.strengths.get(param, Strength(param))
        return f"{title}, {strength.text(value)}"

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings if settings is not None else self.Settings()

    # Settings ------------------------------------------------------------------------------
    @classmethod
    def resolve(cls, raw: dict[str, Any], family: str) -> Any:
        """The family's settings: ``raw`` over the dataset family's preset over the defaults."""
        return parse_settings(cls.Settings, {**cls.presets.get(family, {}), **raw},
                              f"perturbation {cls.name}")

    @classmethod
    def metric(cls, name: str) -> Metric:
        for m in cls.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    @classmethod
    def sweep_fields(cls) -> tuple[str, ...]:
        return (cls.sweep,) if isinstance(cls.sweep, str) else tuple(cls.sweep or ())

    def cells(self, test_images: ImageSubset) -> list[Cell]:
        """One cell per value of each ``sweep`` field, in order (one cell without a sweep);
        every other setting and the test images are the cells' common settings."""
        common = to_json(self.settings)
        axes = {f: common.pop(f) for f in self.sweep_fields()}
        if self.on_test_images:
            common["test_images"] = to_json(test_images)
        if not axes:
            return [Cell(self.name, "none", 0.0, common, self.version)]
        return [Cell(self.name, self.sweep_param(f), self.sweep_value(f, v), common,
                     self.version)
                for f, values in axes.items() for v in dict.fromkeys(values)]

    def sweep_param(self, field: str) -> str:
        """The ``param`` of the cells of a sweep field (the field's name by default)."""
        return field

    def sweep_value(self, field: str, value: Any) -> float:
        """The ``param_value`` of one value of a sweep field: the number, to the 10
        significant digits ``results.csv`` keeps (so that 1/3 or 8/255 read back as the same
        cell and are not recomputed)."""
        return as_saved(value)

    def repeats(self) -> int:
        return int(getattr(self.settings, self.repeats_setting)) if self.repeats_setting else 1

    # The cost, declared ---------------------------------------------------------------------
    def cell_count(self) -> int:
        """The number of cells :meth:`cells` makes (one per distinct sweep value)."""
        counts = [len(dict.fromkeys(getattr(self.settings, f))) for f in self.sweep_fields()]
        return sum(counts) if counts else 1

    def passes(self, images: int) -> tuple[int, int]:
        """(forward, backward): the single-image passes through the network the family's
        cells cost on ``images`` test images, at most (an attack that stops early costs
        less); by default one forward per image, cell and repeat. A family that computes
        gradients or draws many copies overrides it (``rbg attack`` turns it into a time
        per family before work starts)."""
        return images * self.cell_count() * self.repeats(), 0

    def passes_at_most(self, images: int) -> tuple[int, int]:
        """The most :meth:`passes` can be; a family whose ``passes`` counts a typical run
        (an attack that stops early, e.g. DeepFool) overrides it with its bound."""
        return self.passes(images)

    # The guarantees ------------------------------------------------------------------------
    @final
    def measure(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        """Measure one cell with the model in eval mode; only declared metrics come back."""
        model = ctx.model
        was_training = model.training
        model.eval()
        try:
            rows = self.evaluate(cell, ctx)
        finally:
            model.train(was_training)
        declared = {m.name for m in self.metrics}
        for row in rows:
            if row.metric not in declared:
                raise RuntimeError(f"perturbation {self.name} wrote undeclared metric "
                                   f"{row.metric!r}")
        return rows

    def evaluate(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        """Accuracy over every repeat: each batch goes through :meth:`perturb`, is clipped to
        [0, 1] (pixel space) and classified by :meth:`perturbed_model`'s network."""
        n = len(ctx.data)
        rows: list[Measurement] = []
        total, done = self.repeats() * ctx.n_batches(), 0
        for r in range(self.repeats()):
            draw = Draw(ctx, cell, r)
            self.begin(draw)
            with self.perturbed_model(draw) as model:
                correct = 0
                for batch, x, y in ctx.indexed_batches():
                    draw.rows = batch
                    if self.space == "normalized":
                        u = model.normalize(x)
                        adv = self.perturb(u, y, draw, model.forward_normalized)
                    else:
                        u = x
                        adv = self.perturb(u, y, draw, model).clamp(0.0, 1.0)
                    self.observe(u, adv.detach(), draw)
                    with torch.inference_mode():
                        logits = (model.forward_normalized(adv) if self.space == "normalized"
                                  else model(adv))
                    correct += int((ctx.predictions(logits, self.name) == y).sum())
                    done += 1
                    ctx.advance(done, total)
            rows.append(Measurement(r, "accuracy", correct / n, n))
            rows += draw.measurements()
        return rows + self.cell_metrics(cell, ctx)

    # A family's step (no-ops by default) ---------------------------------------------------
    def begin(self, draw: Draw) -> None:
        """Prepare one repeat (e.g. draw its noise pattern into ``draw.state``)."""

    def perturb(self, u: torch.Tensor, y: torch.Tensor, draw: Draw, forward: Any
                ) -> torch.Tensor:
        """The perturbed inputs of one batch (``forward`` classifies inputs of this space)."""
        return u

    def observe(self, u: torch.Tensor, adv: torch.Tensor, draw: Draw) -> None:
        """Record what the final (clipped) inputs realised, e.g. their SNR."""

    @contextmanager
    def perturbed_model(self, draw: Draw) -> Iterator[TappedModel]:
        """The network to classify with in this repeat (the run's model by default)."""
        yield draw.ctx.model

    def cell_metrics(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        """Measurements of the cell as a whole (after its repeats)."""
        return []


PERTURBATIONS: Registry[type[Perturbation]] = Registry("perturbation")


def register_perturbation(name: str, description: str):  # noqa: ANN201
    def decorate(cls: type[Perturbation]) -> type[Perturbation]:
        for field_name in cls.sweep_fields():
            if field_name not in cls.Settings.__dataclass_fields__:
                raise ValueError(f"perturbation {name}: sweep field {field_name!r} not in "
                                 "Settings")
        if cls.headline not in {m.name for m in cls.metrics}:
            raise ValueError(f"perturbation {name}: headline {cls.headline!r} not a metric")
        cls.name = name
        cls.description = description
        PERTURBATIONS.register(name, description)(cls)
        return cls

    return decorate

