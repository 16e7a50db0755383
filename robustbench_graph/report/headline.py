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
from dataclasses import replace

import pandas as pd

from ..data import DATASETS, dataset_info
from ..errors import RbgError
from ..perturbations import PERTURBATIONS, dataset_family, family_class
from ..rundir.results import as_saved
from .aggregate import AUC_SUFFIX, method_order, perturbation_rank, select_rows, value_key
from .declared import main_metric
from .model import Headline, HeadlineCell, HeadlineColumn
from .tables import mark_best

AUC_PREFIX = "auc:"


def dataset_family_of(dataset: str) -> str | None:
    """``grey`` or ``colour`` for a registered dataset, None for another."""
    if dataset not in DATASETS:
        return None
    try:
        return dataset_family(dataset_info(dataset))
    except Exception:  # noqa: BLE001 - an unreadable dataset: no declared setting
        return None


def headline_strength(perturbation: str, family: str | None, values: list[float]) -> float:
    """The strength a headline shows among the computed ``values`` (sorted): the family's
    declared ``headline_setting`` for the dataset family, else the middle one."""
    declared = (family_class(perturbation).headline_setting.get(family or "", math.nan)
                if perturbation in PERTURBATIONS else math.nan)
    declared = as_saved(declared)  # as results.csv keeps it (1/3, 40/255)
    return declared if declared in values else values[(len(values) - 1) // 2]


def column_choices(summary: pd.DataFrame) -> tuple[list[HeadlineColumn], dict[str, HeadlineColumn]]:
    """(the default columns, every column ``--columns`` may name) of one dataset/model."""
    dataset = str(summary["dataset"].iloc[0]) if len(summary) else ""
    family = dataset_family_of(dataset)
    default: list[HeadlineColumn] = []
    areas: list[HeadlineColumn] = []
    every: dict[str, HeadlineColumn] = {}
    perturbations = sorted(set(summary["perturbation"]), key=perturbation_rank)
    for p in perturbations:
        rows = summary[summary["perturbation"] == p]
        metric = main_metric(p)
        points = rows[rows["metric"] == metric]
        # A family sweeping several params (one curve per corruption) gets no default
        # column: its columns are named with the param, and its own table sums it up.
        several = points["param"].nunique() > 1
        for (param, variant), group in points.groupby(["param", "variant"], sort=True,
                                                      dropna=False):
            values = sorted({v for v in (value_key(x) for x in group["param_value"])
                             if v is not None})
            tag = f"[{variant}]" if variant else ""
            if several:
                for v in values:
                    col = HeadlineColumn(f"{p}.{param}@{v:g}{tag}", p, str(param), v, metric,
                                         str(variant))
                    every[col.key] = col
                continue
            if param == "none" or not values:
                col = HeadlineColumn(p + tag, p, str(param), 0.0 if values else math.nan,
                                     metric, str(variant))
                every[col.key] = col
                default.append(col)
                continue
            for v in values:
                col = HeadlineColumn(f"{p}@{v:g}{tag}", p, str(param), v, metric, str(variant))
                every[col.key] = col
            chosen = headline_strength(p, family, values)
            head = replace(every[f"{p}@{chosen:g}{tag}"], key=p + tag)
            every[head.key] = head
            default.append(head)
        for (param, variant), _ in rows[rows["metric"] == metric + AUC_SUFFIX].groupby(
                ["param", "variant"], sort=True, dropna=False):
            tag = f"[{variant}]" if variant else ""
            name = f"{p}.{param}" if several else p
            col = HeadlineColumn(f"{AUC_PREFIX}{name}{tag}", p, str(param), math.nan,
                                 metric + AUC_SUFFIX, str(variant))
            every[col.key] = col
            if not several:
                areas.append(col)
    return default + areas, every


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
        # --columns keys this dataset/model lacks are left out here (an unknown one fails
        # below); where it has none of them it shows its default columns.
        chosen = [every[c] for c in columns or () if c in every] or default
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
            mark_best(head, j)
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
    where = ({"param": col.param} if col.is_area
             else {"param": col.param, "param_value": col.param_value})
    return select_rows(df, {"perturbation": col.perturbation, "metric": col.metric,
                            "variant": col.variant, **where})
