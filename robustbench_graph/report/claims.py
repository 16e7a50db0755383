"""Declared claims measured on the runs: each claim's measure resolved to per-network values of
method and baseline, judged by :func:`.hypotheses.judge_claims` (Holm over the claims measured,
apart from the exploratory comparisons); and what the exploratory design can show at all
(:func:`power_sentence`). docs/statistics.md#claims.

A measure resolves in the report's per-network table (:func:`.aggregate.networks`): ``clean``
(clean accuracy), ``FAMILY`` (its main metric at its headline strength, chosen as the headline
chooses it: :func:`.headline.column_choices`), ``FAMILY@S`` (S compared as results.csv keeps
it), ``auc:FAMILY`` (the curve's area), ``FAMILY:METRIC[@S]`` (another metric, at S, at its only
strength, or at the headline strength). What the runs lack is a row ``not measured`` with the
reason (runs may be partial while ``rbg run`` is under way), never an error; a claim that could
mean several datasets/models is one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..claims import Claim, Measure
from ..errors import RbgError
from ..perturbations import metric_info
from ..rundir.results import as_saved
from .aggregate import base_metric, select_rows, value_key
from .claims_model import NOT_MEASURED, ClaimRow
from .declared import main_metric
from .formatting import setting_label
from .headline import column_choices, dataset_family_of, headline_strength
from .hypotheses import ALPHA, CONTRADICTED, ClaimInput, judge_claims
from .model import HeadlineColumn
from .stats import smallest_exact_p

CLAIMS_CSV = "claims.csv"
CLAIMS_COLUMNS: tuple[str, ...] = (
    "id", "text", "source", "paper_value", "dataset", "model", "method", "baseline", "measure",
    "perturbation", "metric", "setting", "direction", "margin", "n_method", "n_baseline",
    "median_method", "median_baseline", "effect", "ci_low", "ci_high", "p", "p_holm",
    "p_other_holm", "verdict", "needed", "note")


class _Unmeasured(Exception):
    """A claim the runs cannot measure (yet): its reason."""


def judge(claims: Sequence[Claim], per_network: pd.DataFrame, summary: pd.DataFrame,
          alpha: float = ALPHA) -> list[ClaimRow]:
    """Every claim measured and judged; Holm over the claims measured only.

    Raises:
        RbgError: a claim without ``dataset``/``model`` where several have both methods.
    """
    located: list[ClaimRow] = []
    inputs: list[ClaimInput] = []
    for claim in claims:
        try:
            row, values = _locate(claim, per_network, summary)
        except _Unmeasured as why:
            located.append(ClaimRow(claim, verdict=NOT_MEASURED, note=str(why)))
            continue
        located.append(row)
        inputs.append(values)
    judged = iter(judge_claims(inputs, alpha))
    rows = []
    for row in located:
        if row.verdict == NOT_MEASURED:
            rows.append(row)
            continue
        r = next(judged)
        other = (f"; the other way: one-sided p {r.p_other:.3g}, Holm {r.p_other_holm:.3g}"
                 if r.verdict == CONTRADICTED else "")
        rows.append(ClaimRow(
            row.claim, row.dataset, row.model, row.perturbation, row.metric, row.setting,
            r.n_method, r.n_baseline, row.median_method, row.median_baseline, r.effect,
            r.ci_low, r.ci_high, r.p, r.p_holm, r.p_other_holm, r.verdict, r.needed,
            row.note + other))
    return rows


def unknown_methods(claims: Sequence[Claim], methods: Sequence[str]) -> list[str]:
    """One warning line where claims name methods that no run has (else none)."""
    named = dict.fromkeys(m for c in claims for m in (c.method, c.baseline))
    missing = [m for m in named if m not in set(methods)]
    if not missing:
        return []
    return [f"claims name method(s) {', '.join(map(repr, missing))} that no run has; methods "
            f"present: {', '.join(methods) or 'none'}"]


def claims_frame(rows: Sequence[ClaimRow]) -> pd.DataFrame:
    """``claims.csv``: one row per claim (numbers in the measure's unit: accuracy a
    fraction)."""
    records = [{
        "id": r.claim.id, "text": r.claim.text, "source": r.claim.source,
        "paper_value": r.claim.paper_value, "dataset": r.dataset or r.claim.dataset or "",
        "model": r.model or r.claim.model or "", "method": r.claim.method,
        "baseline": r.claim.baseline, "measure": r.claim.measure.text,
        "perturbation": r.perturbation, "metric": r.metric, "setting": r.setting,
        "direction": r.claim.direction,
        "margin": math.nan if r.claim.margin is None else r.claim.margin,
        "n_method": r.n_method, "n_baseline": r.n_baseline, "median_method": r.median_method,
        "median_baseline": r.median_baseline, "effect": r.effect, "ci_low": r.ci_low,
        "ci_high": r.ci_high, "p": r.p, "p_holm": r.p_holm,
        "p_other_holm": r.p_other_holm, "verdict": r.verdict,
        "needed": r.needed, "note": r.note} for r in rows]
    return pd.DataFrame(records, columns=list(CLAIMS_COLUMNS))


def _locate(claim: Claim, per_network: pd.DataFrame, summary: pd.DataFrame
            ) -> tuple[ClaimRow, ClaimInput]:
    dataset, model = _where(claim, per_network)
    here = per_network[(per_network["dataset"] == dataset) & (per_network["model"] == model)]
    dm_summary = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
    selector = _selector(claim.measure, here, dm_summary, dataset)
    rows = select_rows(here, selector)
    x, y = (_values(rows, m) for m in (claim.method, claim.baseline))
    setting = setting_label(selector["perturbation"], selector.get("param", "none"),
                            selector.get("param_value", math.nan), selector.get("variant", ""))
    setting += f", {selector['metric']}"
    for name, v in ((claim.method, x), (claim.baseline, y)):
        if v.size == 0:
            raise _Unmeasured(f"{name} has no networks measured at {setting} on "
                              f"{dataset} / {model}")
    better = _better(selector["perturbation"], selector["metric"])
    if claim.direction == "not-worse" and better is None:
        raise _Unmeasured(f"{setting} declares no better direction; not-worse needs one")
    row = ClaimRow(claim, dataset, model, selector["perturbation"], selector["metric"], setting,
                   int(x.size), int(y.size), float(np.median(x)), float(np.median(y)),
                   verdict="", note=f"measured at {setting}")
    return row, ClaimInput(claim.id, x, y, claim.direction, claim.margin or 0.0,
                           better or "higher")


def _values(rows: pd.DataFrame, method: str) -> np.ndarray:
    v = rows.loc[rows["method"] == method, "value"].to_numpy(dtype="float64")
    return v[~np.isnan(v)]


def _where(claim: Claim, per_network: pd.DataFrame) -> tuple[str, str]:
    """The dataset/model of a claim: named, or the only one with both methods."""
    pairs = {(str(d), str(m)): set(g["method"]) for (d, m), g in
             per_network.groupby(["dataset", "model"], sort=True)}
    present = set().union(*pairs.values()) if pairs else set()
    for name in (claim.method, claim.baseline):
        if name not in present:
            raise _Unmeasured(f"no run of {name}")
    named = {k: v for k, v in pairs.items()
             if claim.dataset in (None, k[0]) and claim.model in (None, k[1])}
    if not named:
        wanted = " / ".join(x or "any" for x in (claim.dataset, claim.model))
        raise _Unmeasured(f"no runs on {wanted}")
    both = [k for k, v in named.items() if {claim.method, claim.baseline} <= v]
    if not both:
        raise _Unmeasured(f"{claim.method} and {claim.baseline} have no runs on the same "
                          "dataset / model")
    if len(both) > 1:
        raise RbgError(f"claim {claim.id}: {claim.method} and {claim.baseline} both have runs "
                       f"on {', '.join(' / '.join(k) for k in both)}; say which with "
                       "dataset = and model =")
    return both[0]


def _selector(measure: Measure, here: pd.DataFrame, summary: pd.DataFrame,
              dataset: str) -> dict:
    """The per-network rows a measure names, as a :func:`.aggregate.select_rows` selector."""
    family = measure.family
    if family == "clean":
        return {"perturbation": "clean", "metric": "accuracy"}
    rows = here[here["perturbation"] == family]
    if rows.empty:
        raise _Unmeasured(f"no results of {family}")
    metric = measure.metric
    if metric is None or (metric == main_metric(family) and not measure.area):
        _, every = column_choices(summary)
        unique = {(c.param, value_key(c.param_value), c.variant, c.metric): c
                  for c in every.values() if c.perturbation == family}
        if measure.area:
            found = [c for c in unique.values() if c.is_area]
        elif measure.strength is not None:
            want = as_saved(measure.strength)
            found = [c for c in unique.values() if not c.is_area and c.param_value == want]
        else:
            found = [every[k] for k in every if k == family or k.startswith(family + "[")]
        col = _pick(found, measure, _strengths(rows[rows["metric"] == main_metric(family)]))
        where = {"param": col.param, "variant": col.variant}
        if not col.is_area:
            where["param_value"] = col.param_value
        return {"perturbation": family, "metric": col.metric, **where}
    at = rows[rows["metric"] == metric]
    if at.empty:
        raise _Unmeasured(f"{family} has no metric {metric} (it has: "
                          f"{', '.join(sorted(set(rows['metric'])))})")
    values = _strengths(at)
    if measure.strength is not None:
        value = as_saved(measure.strength)
        if value not in values:
            raise _Unmeasured(f"{family}:{metric} was not measured at {measure.strength:g} "
                              f"(strengths: {', '.join(f'{v:g}' for v in values)})")
    elif len(values) <= 1:
        value = values[0] if values else math.nan
    else:
        value = headline_strength(family, dataset_family_of(dataset), values)
    chosen = select_rows(at, {"param_value": value})
    found = [HeadlineColumn(f"{family}:{metric}", family, p, value, metric, v) for p, v in
             sorted(set(zip(chosen["param"].astype(str), chosen["variant"].astype(str),
                            strict=True)))]
    col = _pick(found, measure, values)
    return {"perturbation": family, "metric": metric, "param": col.param,
            "param_value": value, "variant": col.variant}


def _strengths(rows: pd.DataFrame) -> list[float]:
    return sorted({v for v in (value_key(x) for x in rows["param_value"]) if v is not None})


def _pick(found: list[HeadlineColumn], measure: Measure, values: list[float]
          ) -> HeadlineColumn:
    """The one setting a measure names: the one without variant where there are several."""
    plain = [c for c in found if not c.variant] or found
    if len(plain) == 1:
        return plain[0]
    if not plain:
        have = f" (strengths: {', '.join(f'{v:g}' for v in values)})" if values else ""
        raise _Unmeasured(f"the runs have no setting {measure.text}{have}")
    raise _Unmeasured(f"{measure.text} names several settings: "
                      + ", ".join(sorted(c.key or f"{c.param} [{c.variant}]" for c in plain)))


def _better(perturbation: str, metric: str) -> str | None:
    """Which way is good for a measure: the family's declaration (accuracy: higher)."""
    info = metric_info(perturbation, base_metric(metric))
    if info is None:
        return "higher" if base_metric(metric) == "accuracy" else None
    return info.better if info.better in ("higher", "lower") else None


def power_sentence(comparisons: pd.DataFrame, alpha: float) -> str:
    """One sentence where no exploratory comparison can be significant after Holm (the
    smallest two-sided exact p at these n, times the number of comparisons, is not below
    ``alpha``); empty where one can."""
    k = len(comparisons)
    if k == 0:
        return ""
    pairs = zip(comparisons["n"].astype(int), comparisons["n_baseline"].astype(int),
                strict=True)
    smallest = min(smallest_exact_p(n, m) for n, m in pairs)
    if smallest * k < alpha:
        return ""
    counts = sorted(set(comparisons["n"].astype(int)) | set(comparisons["n_baseline"]
                                                             .astype(int)))
    nets = (f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}")
    return (f"With {nets} networks per method and {k} comparisons, no comparison can be "
            f"significant after Holm (smallest possible p {smallest:.3g} x {k}); the intervals "
            "are per comparison, uncorrected.")
