"""What a family adds to a report beyond its curves and table columns, declared by the family.

A family lists these in its ``report_extras`` class attribute; the report draws them from the
declarations and knows no family by name (a new family with a per-image figure touches no
module of :mod:`robustbench_graph.report`):

* :class:`PerImageFigure`: a figure drawn from the per-image values the family keeps
  (:mod:`robustbench_graph.rundir.per_image`), as a :class:`ThresholdCurve` (DeepFool's robust
  accuracy against the L2 distance) or :class:`GroupedLines` (curvature against noise
  survival, the noise paper's figure);
* :class:`ErrorSummary`: a table of the mean error over the family's params (the common
  corruptions' mean error and mCE, Hendrycks & Dietterich, ICLR 2019);
* :class:`RealisedValue`: a param that is a target the family realises only approximately
  (Gaussian noise's target SNR and its realised ``snr_db``);
* :class:`MetricLabel`: how a report names a metric's unit and axis (DeepFool's ``mean_l2``).

Plain declarations: no report code and no heavy imports here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CellFilter:
    """The cells of a family a figure reads (None: any): the ``param``, ``param_value`` and
    a ``metric`` its results rows carry."""

    param: str | None = None
    param_value: float | None = None
    metric: str | None = None


@dataclass(frozen=True)
class ThresholdCurve:
    """Per network, the percentage of images whose per-image ``value`` exceeds x, over a
    grid of ``points`` x values from 0 to 1.05 times the 99th percentile of the finite values
    (every network of the dataset/model pooled); lines: the median over networks, bands:
    their range. Robust accuracy at ε from minimal adversarial distances."""

    value: str
    xlabel: str
    ylabel: str
    points: int = 60

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.value,)


@dataclass(frozen=True)
class GroupedLines:
    """Per network, one line through the groups that ``groups`` makes of the per-image
    ``x`` and ``y`` values: ``groups(x, y) -> (statistic, table)``, the table with columns
    ``x`` and ``y`` (one row per group). The legend gives the median ``statistic`` of each
    method's networks; a network whose ``x`` takes a single value is left out. The y axis is
    logarithmic where ``log_y`` and every group's value is positive."""

    x: str
    y: str
    groups: Callable[[Any, Any], tuple[float, Any]]
    statistic: str
    xlabel: str
    ylabel: str
    log_y: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.y, self.x)


@dataclass(frozen=True)
class PerImageFigure:
    """A figure per dataset/model from the family's per-image files, written as
    ``{dataset}-{model}-{suffix}.png|svg``; ``title`` follows ``dataset / model:`` in the
    figure, ``caption`` under it on the page; ``name`` names the figure in a list."""

    suffix: str
    name: str
    title: str
    caption: str
    drawing: ThresholdCurve | GroupedLines
    cells: CellFilter = CellFilter()

    @property
    def columns(self) -> tuple[str, ...]:
        """The per-image columns the figure reads (beside ``image`` and ``label``)."""
        return self.drawing.columns


@dataclass(frozen=True)
class ErrorSummary:
    """A table per dataset/model/variant: per method, the mean error (1 - ``metric``) of each
    param over its values from ``from_value`` on, the mean over the params and, relative to
    the report's baseline, the sum of the errors over the baseline's (``relative``, the mCE).
    ``params`` and ``values`` name the params and their values in labels (``corruptions``,
    ``severities``)."""

    metric: str = "accuracy"
    from_value: float = 1.0
    params: str = "params"
    values: str = "values"
    relative: str = "relative error"


@dataclass(frozen=True)
class RealisedValue:
    """The ``param`` is a target the family realises approximately; its metric ``metric``
    records what was realised. A table column names the mean realised value (``unit``) where
    it differs from the target by ``shown_gap`` or more."""

    param: str
    metric: str
    unit: str
    shown_gap: float = 0.1


@dataclass(frozen=True)
class MetricLabel:
    """How a report names ``metric``: ``unit`` in table headers, ``axis`` on figure axes
    (empty: the defaults, the metric's name)."""

    metric: str
    unit: str = ""
    axis: str = ""


ReportExtra = PerImageFigure | ErrorSummary | RealisedValue | MetricLabel
