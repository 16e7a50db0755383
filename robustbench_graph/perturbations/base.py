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

A :class:`Cell` is plain data, a unit of work with a run folder; its ``fingerprint`` names its
full settings, so a cached result is reused only under the same settings.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, final

import torch

from ..config import ImageSubset, stable_seed
from ..data import DatasetInfo, ImageData
from ..errors import RbgError
from ..models import TappedModel
from ..records import as_saved
from ..registry import Registry
from ..settings import parse_settings, to_json

FAMILIES = ("grey", "colour")


def dataset_family(info: DatasetInfo) -> str:
    """``grey`` for one-channel images (MNIST-like budgets), else ``colour`` (the papers')."""
    return "grey" if info.input_shape[0] == 1 else "colour"


@dataclass(frozen=True)
class Metric:
    """A metric a family writes: ``better`` is ``higher``, ``lower`` or ``none`` (a diagnostic
    of the perturbation itself, e.g. the realised SNR: described, never compared)."""

    name: str
    better: str
    help: str
    percent: bool = False

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower", "none"):
            raise ValueError(f"metric {self.name}: better must be higher, lower or none")


@dataclass(frozen=True)
class Strength:
    """A swept setting as a reader sees it: ``label`` and ``unit`` for axes and captions
    (``SNR``, ``dB``), and which direction is the stronger perturbation (``stronger``:
    ``lower`` or ``higher``; curves put the strongest on the right)."""

    label: str
    unit: str = ""
    stronger: str = "higher"

    def text(self, value: float) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.label} {value:g}{unit}".strip()

    @property
    def axis_label(self) -> str:
        """``SNR (dB)``, ``bits``."""
        if self.label and self.unit:
            return f"{self.label} ({self.unit})"
        return self.label or self.unit


ACCURACY = Metric("accuracy", "higher", "fraction of the test images classified correctly",
                  percent=True)


@dataclass(frozen=True)
class NoSettings:
    pass


@dataclass(frozen=True)
class Cell:
    """One setting of one family: ``param = param_value`` plus the family's other settings."""

    perturbation: str
    param: str
    param_value: float
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    version: int = field(default=1, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str, float]:
        return (self.perturbation, self.param, float(self.param_value))

    @property
    def label(self) -> str:
        if self.param == "none":
            return self.perturbation
        return f"{self.perturbation} {self.param}={self.param_value:g}"

    @functools.cached_property
    def fingerprint(self) -> str:
        """12 hex digits naming the family, its version and every setting of the cell."""
        return settings_fingerprint(self.perturbation, self.version, self.settings)


def settings_fingerprint(perturbation: str, version: int, settings: dict[str, Any]) -> str:
    text = json.dumps({"perturbation": perturbation, "version": version,
                       "settings": settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Measurement:
    repeat: int
    metric: str
    value: float
    n: int


@dataclass
class EvalContext:
    """What a perturbation needs: the model (eval mode, [0, 1] inputs) and the test images."""

    model: TappedModel
    data: ImageData
    device: torch.device
    run: str
    batch_size: int = 200
    # Where each image of ``data`` is in the test split (``data`` may be a subset of it, e.g.
    # under --samples); None: ``data`` is the whole split.
    test_indices: torch.Tensor | None = None
    # Per-image values a family keeps, by cell key: a table of robustbench_graph.per_image
    # columns, written beside the results by the attack driver (keep_per_image).
    kept: dict[tuple[str, str, float], Any] = field(default_factory=dict)
    # Called with (units done, units in the cell) as a cell's batches finish (for progress).
    progress: Callable[[int, int], None] | None = None
    # The run folder, for a family that keeps resumable state of a cell being computed (e.g.
    # AutoAttack's state file); None outside ``rbg attack``.
    work_dir: Path | None = None
    # The run's training split, loaded on the first call (cached by the attack command), for
    # a family measured on training images (lipschitz); None outside ``rbg attack``.
    train_data: Callable[[], ImageData] | None = None

    def advance(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` units (batches, over every repeat) of the cell."""
        if self.progress is not None:
            self.progress(done, total)

    def keep_per_image(self, cell: Cell, table: Any) -> None:
        """Keep a table of per-image values of ``cell`` (the columns of
        :data:`robustbench_graph.per_image.KEY_COLUMNS`, then the family's values), written
        beside its results."""
        self.kept[cell.key] = table

    def test_index(self, rows: torch.Tensor) -> torch.Tensor:
        """The test-split indices of rows of ``data`` (for per-image files)."""
        return rows if self.test_indices is None else self.test_indices[rows]

    def n_batches(self, count: int | None = None) -> int:
        return max(1, math.ceil((len(self.data) if count is None else count) / self.batch_size))

    def seed(self, cell: Cell, repeat: int = 0) -> int:
        """Stable seed of one repeat of one cell of one run."""
        return stable_seed(self.run, cell.perturbation, cell.param, cell.param_value, repeat)

    def generator(self, cell: Cell, repeat: int = 0) -> torch.Generator:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed(cell, repeat))
        return gen

    @functools.cached_property
    def images(self) -> torch.Tensor:
        """All test images as [0, 1] floats on the device, converted once per context."""
        return self.data.float().to(self.device, non_blocking=True)

    @functools.cached_property
    def labels(self) -> torch.Tensor:
        return self.data.labels.to(self.device, non_blocking=True)

    def batches(self, indices: torch.Tensor | None = None, batch_size: int | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x, y)`` batches of [0, 1] images on the device (of ``indices`` when given)."""
        for _rows, x, y in self.indexed_batches(indices, batch_size):
            yield x, y

    def indexed_batches(self, indices: torch.Tensor | None = None,
                        batch_size: int | None = None
                        ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(rows, x, y)``: :meth:`batches` with the rows of ``data`` each batch holds (a
        CPU tensor; :meth:`test_index` turns them into test-split indices)."""
        size = batch_size or self.batch_size
        total = len(self.data) if indices is None else len(indices)
        for start in range(0, total, size):
            if indices is None:
                rows = torch.arange(start, min(start + size, total))
                at: Any = slice(start, start + size)
            else:
                rows = indices[start:start + size].cpu()
                at = rows.to(self.device)
            yield rows, self.images[at], self.labels[at]


class Draw:
    """One repeat of one cell: its generator, per-draw state and the values it records."""

    def __init__(self, ctx: EvalContext, cell: Cell, repeat: int) -> None:
        self.ctx, self.cell, self.repeat = ctx, cell, repeat
        self.state: dict[str, Any] = {}
        # The rows of ``ctx.data`` in the batch being perturbed (set by the base class).
        self.rows: torch.Tensor | None = None
        self._sums: dict[str, tuple[float, int]] = {}
        self._values: dict[str, tuple[float, int]] = {}

    @functools.cached_property
    def generator(self) -> torch.Generator:
        return self.ctx.generator(self.cell, self.repeat)

    def test_indices(self) -> torch.Tensor:
        """The test-split indices of the images in the batch being perturbed (CPU), for a
        family that seeds each image by its index."""
        if self.rows is None:
            raise RuntimeError("test_indices() is only defined while a batch is perturbed")
        return self.ctx.test_index(self.rows).cpu()

    def record(self, metric: str, values: torch.Tensor) -> None:
        """Add per-image ``values`` to ``metric``, whose measurement is their mean."""
        s, c = self._sums.get(metric, (0.0, 0))
        self._sums[metric] = (s + float(values.double().sum()), c + int(values.numel()))

    def put(self, metric: str, value: float, n: int) -> None:
        """Set ``metric`` of this repeat to one value describing ``n`` items."""
        self._values[metric] = (float(value), int(n))

    def measurements(self) -> list[Measurement]:
        means = [Measurement(self.repeat, m, s / c, c) for m, (s, c) in self._sums.items() if c]
        return means + [Measurement(self.repeat, m, v, n) for m, (v, n) in self._values.items()]


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
                    correct += int((logits.argmax(1) == y).sum())
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


def conventional_median(values: torch.Tensor) -> float:
    """The median, averaging the two middle values of an even count (``torch.median``
    returns the lower one)."""
    if values.numel() == 0:
        return math.nan
    return float(torch.quantile(values.double(), 0.5))


def require(condition: bool, message: str) -> None:
    """Raise :class:`RbgError` with ``message`` unless ``condition`` (settings checks)."""
    if not condition:
        raise RbgError(message)
