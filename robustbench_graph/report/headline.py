"""The headline: one row per method, a few columns, per dataset/model.

Columns (:func:`column_choices`): ``clean``; each perturbation family at its headline
setting (``gaussian``: declared by the family per dataset family, ``headline_setting``; where
that strength was not computed, the middle of the computed ones); a family at another
strength (``gaussian@0``); and the area under a family's curve (``auc:gaussian``, the run's
metric averaged over the strength range). The default is ``clean``, every family at its
headline setting and every curve's area. A cell holds the median over networks, its
difference from the baseline with the cluster-bootstrap interval, and the Holm-corrected
significance (:mod:`.compare`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import RbgError
from ..perturbations import PERTURBATIONS, family_class
from .aggregate import AUC_SUFFIX, base_metric, method_order, perturbation_rank, value_key
from .tables import format_value, headline_metric, lower_is_better

AUC_PREFIX = "auc:"


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
        if self.perturbation not in PERTURBATIONS:
            text = self.key
        elif self.is_area:
            text = f"{family_class(self.perturbation).title or self.perturbation}: area under " \
                   "the curve"
        else:
            text = family_class(self.perturbation).describe_cell(self.param, self.param_value)
        return f"{text} [{self.variant}]" if self.variant else text

    @property
    def short(self) -> list[str]:
        """Header lines for a narrow terminal column (``fgsm``, ``before``, ``10 dB``)."""
        short = (family_class(self.perturbation).short_title
                 if self.perturbation in PERTURBATIONS else "")
        words = short.split() if short else self.perturbation.split("-")
        if self.is_area:
            return [*words, "area"]
        if self.perturbation in PERTURBATIONS and self.param != "none":
            cls = family_class(self.perturbation)
            strength = cls.strengths.get(self.param)
            if strength is not None and strength.unit:
                return [*words, f"{self.param_value:g} {strength.unit}"]
            return [*words, cls.describe_cell(self.param, self.param_value).split(", ", 1)[-1]]
        return words

    @property
    def unit(self) -> str:
        metric = base_metric(self.metric)
        from .tables import metric_unit

        return metric_unit(metric)


@dataclass(frozen=True)
class HeadlineCell:
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
        return format_value(self.median, base_metric(self.metric)) + ("*" if self.significant
                                                                       else "")

    @property
    def effect(self) -> str:
        """``+3.1 [+1.2, +5.0]``: the difference from the baseline and its interval."""
        if math.isnan(self.diff):
            return ""
        metric = base_metric(self.metric)
        scale = 100.0 if format_value(1.0, metric) == "100.0" else 1.0

        def num(x: float) -> str:
            return "–" if math.isnan(x) else f"{scale * x:+.1f}" if scale == 100 else \
                f"{x:+.3g}"
        if math.isnan(self.ci_low):  # too few networks for an interval
            return num(self.diff)
        return f"{num(self.diff)} [{num(self.ci_low)}, {num(self.ci_high)}]"


@dataclass
class Headline:
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


def _dataset_family(dataset: str) -> str | None:
    from ..data import DATASETS, dataset_info
    from ..perturbations import dataset_family

    if dataset not in DATASETS:
        return None
    try:
        return dataset_family(dataset_info(dataset))
    except Exception:  # noqa: BLE001 - an unreadable dataset: no declared setting
        return None


def column_choices(summary: pd.DataFrame) -> tuple[list[HeadlineColumn], dict[str, HeadlineColumn]]:
    """(the default columns, every column ``--columns`` may name) of one dataset/model."""
    dataset = str(summary["dataset"].iloc[0]) if len(summary) else ""
    family = _dataset_family(dataset)
    default: list[HeadlineColumn] = []
    areas: list[HeadlineColumn] = []
    every: dict[str, HeadlineColumn] = {}
    perturbations = sorted(set(summary["perturbation"]), key=perturbation_rank)
    for p in perturbations:
        rows = summary[summary["perturbation"] == p]
        metric = headline_metric(p)
        points = rows[rows["metric"] == metric]
        for (param, variant), group in points.groupby(["param", "variant"], sort=True,
                                                      dropna=False):
            values = sorted({v for v in (value_key(x) for x in group["param_value"])
                             if v is not None})
            tag = f"[{variant}]" if variant else ""
            if param == "none" or not values:
                col = HeadlineColumn(p + tag, p, str(param), 0.0 if values else math.nan,
                                     metric, str(variant))
                every[col.key] = col
                default.append(col)
                continue
            for v in values:
                col = HeadlineColumn(f"{p}@{v:g}{tag}", p, str(param), v, metric, str(variant))
                every[col.key] = col
            declared = family_class(p).headline_setting.get(family or "", math.nan) \
                if p in PERTURBATIONS else math.nan
            chosen = declared if declared in values else values[(len(values) - 1) // 2]
            head = replace(every[f"{p}@{chosen:g}{tag}"], key=p + tag)
            every[head.key] = head
            default.append(head)
        for (param, variant), _ in rows[rows["metric"] == metric + AUC_SUFFIX].groupby(
                ["param", "variant"], sort=True, dropna=False):
            tag = f"[{variant}]" if variant else ""
            col = HeadlineColumn(f"{AUC_PREFIX}{p}{tag}", p, str(param), math.nan,
                                 metric + AUC_SUFFIX, str(variant))
            every[col.key] = col
            areas.append(col)
    return default + areas, every


def _pick(columns: list[str] | None, default: list[HeadlineColumn],
          every: dict[str, HeadlineColumn]) -> list[HeadlineColumn]:
    if not columns:
        return default
    unknown = [c for c in columns if c not in every]
    if unknown:
        raise RbgError(f"unknown headline column {unknown[0]!r}; valid here: "
                       f"{', '.join(every)}")
    return [every[c] for c in columns]


def build_headlines(summary: pd.DataFrame, comparisons: pd.DataFrame, baseline: str,
                    columns: list[str] | None = None) -> list[Headline]:
    """One :class:`Headline` per dataset/model (``columns``: ``--columns`` keys).

    Raises:
        RbgError: a ``columns`` key that no dataset/model has.
    """
    out = []
    known: set[str] = set()
    for (dataset, model), dm in summary.groupby(["dataset", "model"], sort=True):
        default, every = column_choices(dm)
        known |= set(every)
        chosen = _pick([c for c in columns if c in every] if columns else None, default, every)
        methods = method_order(dm["method"], baseline)
        head = Headline(str(dataset), str(model), baseline, methods, chosen)
        comp = comparisons[(comparisons["dataset"] == dataset) & (comparisons["model"] == model)]
        for j, col in enumerate(chosen):
            rows = _rows_of(dm, col)
            crow = _rows_of(comp, col)
            for method in methods:
                r = rows[rows["method"] == method]
                if r.empty or int(r["n"].iloc[0]) == 0:
                    if not col.is_area:
                        head.missing.append(f"{method}: not measured under {col.label}")
                    continue
                c = crow[crow["method"] == method]
                first = c.iloc[0] if not c.empty else None
                head.cells[(method, j)] = HeadlineCell(
                    float(r["median"].iloc[0]), int(r["n"].iloc[0]), col.metric,
                    *((float(first["diff_median"]), float(first["ci_low"]),
                       float(first["ci_high"]), float(first["cliffs_delta"]),
                       float(first["p_holm"]), bool(first["significant"]))
                      if first is not None else ()))
            _mark_best(head, j)
        clean = dm[(dm["perturbation"] == "clean")]
        for method in methods:
            n = dm.loc[dm["method"] == method, "n"]
            head.n[method] = int(clean.loc[clean["method"] == method, "n"].max()
                                 if (clean["method"] == method).any() else n.max())
        out.append(head)
    if columns:
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise RbgError(f"unknown headline column {unknown[0]!r}; valid: "
                           f"{', '.join(sorted(known))}")
    return out


def _rows_of(df: pd.DataFrame, col: HeadlineColumn) -> pd.DataFrame:
    if df.empty:
        return df
    mask = ((df["perturbation"] == col.perturbation) & (df["metric"] == col.metric)
            & (df["variant"].astype(str) == col.variant)).to_numpy().copy()
    if col.is_area:
        mask &= (df["param"].astype(str) == col.param).to_numpy()
    else:
        want = value_key(col.param_value)
        mask &= np.array([value_key(v) == want for v in df["param_value"]], dtype=bool)
    return df[mask]


def _mark_best(head: Headline, j: int) -> None:
    cells = {m: c for (m, k), c in head.cells.items() if k == j}
    if not cells:
        return
    col = head.columns[j]
    sign = -1.0 if lower_is_better(col.perturbation, base_metric(col.metric)) else 1.0
    best = max(sign * c.median for c in cells.values())
    for method, c in cells.items():
        if sign * c.median == best:
            head.cells[(method, j)] = HeadlineCell(**{**c.__dict__, "best": True})
