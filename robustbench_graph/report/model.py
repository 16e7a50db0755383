"""The report as plain data: what :func:`.build.build_report` computes and the renderers
(:mod:`.html`, :mod:`.export`, :mod:`.plots`, the CLI) show. Nothing here reads a file or
computes a statistic; text comes from :mod:`.formatting`.

* :class:`Table`: every setting of one dataset/model (or a family's declared summary table),
  methods as rows, :class:`TableColumn` settings as columns, :class:`TableCell` values;
* :class:`Headline`: a few columns per dataset/model with effect sizes (:mod:`.headline`);
* figures to draw (:class:`CurveFigure`, :class:`BoxFigure`, :class:`ThresholdFigure`,
  :class:`GroupedFigure`) and those written (:class:`PlotFile`);
* :class:`Report`: all of it, with the runs it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .aggregate import AUC_SUFFIX, base_metric
from .claims_model import ClaimRow
from .collect import RunInfo
from .compare import ALPHA
from .formatting import (
    footer,
    format_effect,
    format_value,
    metric_unit,
    setting_title,
    short_header,
)
from .methods import MethodConfig


@dataclass(frozen=True)
class TableColumn:
    """One column of a :class:`Table`: a setting, the metric shown, its label and unit."""

    perturbation: str
    param: str
    param_value: float
    metric: str
    variant: str = ""
    label: str = ""
    unit: str = ""


@dataclass(frozen=True)
class TableCell:
    """Statistics of one method in one column, with its comparison to the baseline."""

    median: float
    q25: float
    q75: float
    n: int
    metric: str
    best: bool = False
    significant: bool = False
    p_holm: float = math.nan

    @property
    def text(self) -> str:
        """``median [q25–q75]`` plus ``*`` when significantly different from the baseline."""
        med, lo, hi = (format_value(x, self.metric) for x in (self.median, self.q25, self.q75))
        return f"{med} [{lo}–{hi}]" + ("*" if self.significant else "")


@dataclass
class Table:
    """A table of one dataset/model: every setting, or (``name``) a declared summary."""

    dataset: str
    model: str
    baseline: str
    methods: list[str]
    columns: list[TableColumn]
    cells: dict[tuple[str, int], TableCell] = field(default_factory=dict)
    name: str = ""  # what the table is, after the dataset/model in its title

    @property
    def title(self) -> str:
        return f"{self.dataset} / {self.model}" + (f": {self.name}" if self.name else "")

    def cell(self, method: str, column: int) -> TableCell | None:
        return self.cells.get((method, column))


@dataclass(frozen=True)
class HeadlineColumn:
    """One headline column: ``key`` as ``--columns`` names it, and what it shows."""

    key: str
    perturbation: str
    param: str
    param_value: float  # NaN for a curve's area
    metric: str
    variant: str = ""

    @property
    def is_area(self) -> bool:
        return self.metric.endswith(AUC_SUFFIX)

    @property
    def label(self) -> str:
        """A human label: ``Gaussian noise, SNR -5 dB``, ``PGD: area under the curve``."""
        return setting_title(self.perturbation, self.param, self.param_value, self.variant,
                             self.is_area, self.key)

    @property
    def short(self) -> list[str]:
        """Header lines for a narrow terminal column (``fgsm``, ``before``, ``10 dB``)."""
        return short_header(self.perturbation, self.param, self.param_value, self.is_area)

    @property
    def unit(self) -> str:
        return metric_unit(base_metric(self.metric))


@dataclass(frozen=True)
class HeadlineCell:
    """The median over networks of one method in one headline column, and its comparison."""

    median: float
    n: int
    metric: str
    diff: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    cliffs_delta: float = math.nan
    p_holm: float = math.nan
    significant: bool = False
    best: bool = False

    @property
    def text(self) -> str:
        return (format_value(self.median, base_metric(self.metric))
                + ("*" if self.significant else ""))

    @property
    def effect(self) -> str:
        """``+3.1 [+1.2, +5.0]``: the difference from the baseline and its interval."""
        return format_effect(self.diff, self.ci_low, self.ci_high, base_metric(self.metric))


@dataclass
class Headline:
    """The headline of one dataset/model: one row per method, a few columns."""

    dataset: str
    model: str
    baseline: str
    methods: list[str]
    columns: list[HeadlineColumn]
    cells: dict[tuple[str, int], HeadlineCell] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)  # networks per method
    missing: list[str] = field(default_factory=list)  # "method: not attacked under X"

    @property
    def title(self) -> str:
        return f"{self.dataset} / {self.model}"

    def cell(self, method: str, j: int) -> HeadlineCell | None:
        return self.cells.get((method, j))


@dataclass(frozen=True)
class FigureSpec:
    """A figure to draw: its subject, file stem (under ``plots/``), name, caption, kind
    (``curve`` or ``box``: where the page shows it) and the methods it shows, in order."""

    dataset: str
    model: str
    stem: str
    name: str
    caption: str
    kind: str
    methods: list[str]


@dataclass(frozen=True)
class CurveFigure(FigureSpec):
    """A metric over strength: per-run values (``method``, ``run_path``, ``param_value``,
    ``value``), drawn times ``scale``; ``stronger``: which way the strength grows."""

    title: str
    xlabel: str
    ylabel: str
    stronger: str
    scale: float
    data: pd.DataFrame


@dataclass(frozen=True)
class BoxFigure(FigureSpec):
    """One panel per ``(label, selector)`` of the results and per-run values."""

    title: str
    panels: list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class ThresholdFigure(FigureSpec):
    """Per method, a (networks, points) array of percentages over the ``grid``."""

    title: str
    xlabel: str
    ylabel: str
    grid: np.ndarray
    values: dict[str, np.ndarray]


@dataclass(frozen=True)
class GroupedFigure(FigureSpec):
    """Per method, one (groups, statistic) per network; the groups' columns ``x``, ``y``."""

    title: str
    xlabel: str
    ylabel: str
    x: str
    y: str
    statistic: str
    log_y: bool
    lines: dict[str, list[tuple[pd.DataFrame, float]]]


@dataclass(frozen=True)
class PlotFile:
    """One written figure: its subject, name, file paths, PNG bytes, kind (curve | box) and
    caption."""

    dataset: str
    model: str
    name: str
    png: Path
    svg: Path
    png_bytes: bytes
    kind: str
    caption: str


@dataclass(frozen=True)
class Picture:
    """An image found beside the runs (the ``rbg smoothness`` figure)."""

    path: Path
    png_bytes: bytes


@dataclass
class Report:
    """Everything a report shows, as plain data; the CLI and the HTML page only render it."""

    runs_root: Path
    out_dir: Path
    baseline: str
    results: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    tables: list[Table]
    headlines: list[Headline]
    runs: list[RunInfo]
    methods: list[str]
    settings: dict = field(default_factory=dict)  # fingerprint: the attack settings it names
    method_configs: dict[str, MethodConfig] = field(default_factory=dict)
    networks: pd.DataFrame | None = None  # per-run values: the unit of every test
    alpha: float = ALPHA
    figures: list[FigureSpec] = field(default_factory=list)  # to draw (with plots on)
    plots: list[PlotFile] = field(default_factory=list)  # drawn and written
    smoothness: Picture | None = None
    claims: list[ClaimRow] = field(default_factory=list)  # declared claims, judged
    power: str = ""  # where no exploratory comparison can be significant: says so
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    version: str = ""
    created: str = ""

    @property
    def failed_runs(self) -> list[RunInfo]:
        return [r for r in self.runs if r.status == "failed"]

    @property
    def footer(self) -> str:
        return footer(self.baseline, len(self.comparisons), self.alpha)
