"""What a family measures with: the evaluation context of a run (:class:`EvalContext`), one
repeat of a cell (:class:`Draw`) and the values that come back (:class:`Measurement`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import stable_seed
from ..errors import RbgError
from ..lazy import torch
from .cell import Cell

if TYPE_CHECKING:
    from ..data import ImageData
    from ..models import TappedModel


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
    # Per-image values a family keeps, by cell key: a table of robustbench_graph.rundir.per_image
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

    def predictions(self, logits: torch.Tensor, family: str) -> torch.Tensor:
        """The classes ``logits`` predict: the one place a family turns the network's outputs
        into predictions it scores. Non-finite logits are an error naming the run and the
        family, never a prediction (the argmax of NaNs is class 0, which would score a
        broken network at the frequency of class 0).

        Raises:
            RbgError: a logit is NaN or infinite.
        """
        if not bool(torch.isfinite(logits).all()):
            raise self.non_finite(family)
        return logits.argmax(1)

    @property
    def where(self) -> str:
        """The run as an error names it: its folder in ``rbg attack``, else its name."""
        return str(self.work_dir) if self.work_dir is not None else f"run {self.run}"

    def non_finite(self, family: str) -> RbgError:
        """The error of a network whose outputs under ``family`` are not finite."""
        return RbgError(f"{self.where}: the network's outputs under {family} are not finite "
                        "numbers (NaN or infinite logits: broken weights or normalisation "
                        "statistics); no result of it is written")

    def keep_per_image(self, cell: Cell, table: Any) -> None:
        """Keep a table of per-image values of ``cell`` (the columns of
        :data:`robustbench_graph.rundir.per_image.KEY_COLUMNS`, then the family's values), written
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

