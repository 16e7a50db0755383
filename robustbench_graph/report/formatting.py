"""How a report writes its numbers and names: values (accuracies in percent), units, axis
labels, setting labels and the footer every rendering shares."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from ..perturbations import PERTURBATIONS, family_class, family_title
from ..perturbations.report_extras import MetricLabel
from .declared import PERCENT_METRICS, declaring, main_metric, metric_label, realised, strength_of

__all__ = ["family_title"]  # re-exported: the renderers name families through this module


def format_number(x: float) -> str:
    """A short, readable number (``0.1``, ``20``, ``1e-05``)."""
    return f"{x:g}"


def format_value(x: float, metric: str) -> str:
    """Percent with one decimal for accuracy-like metrics, three significant digits else
    (trailing zeros kept, e.g. ``2.30``)."""
    if math.isnan(x):
        return "–"
    return f"{100 * x:.1f}" if metric in PERCENT_METRICS else f"{x:#.3g}"


def format_effect(diff: float, low: float, high: float, metric: str) -> str:
    """``+3.1 [+1.2, +5.0]``: a difference from the baseline and its interval (percent
    points for percent metrics); empty without a difference, no interval without one."""
    if math.isnan(diff):
        return ""
    percent = metric in PERCENT_METRICS

    def num(x: float) -> str:
        return "–" if math.isnan(x) else f"{100 * x:+.1f}" if percent else f"{x:+.3g}"
    if math.isnan(low):  # too few networks for an interval
        return num(diff)
    return f"{num(diff)} [{num(low)}, {num(high)}]"


def format_diff(x: float, metric: str) -> str:
    """A signed difference in the metric's unit: percentage points with one decimal for
    percent metrics (``+3.1``), three significant digits else (``-0.120``)."""
    if math.isnan(x):
        return "–"
    return f"{100 * x:+.1f}" if metric in PERCENT_METRICS else f"{x:+#.3g}"


def value_unit(metric: str) -> str:
    """The unit a metric's values are written in on the page (``%`` for accuracies, a
    declared unit such as ``L2``, else empty); differences of percents are in ``pp``."""
    if metric in PERCENT_METRICS:
        return "%"
    return metric_label(metric).unit or ""


def natural_key(text: object) -> list[Any]:
    """A sort key that orders numbers by value: ``seed2`` before ``seed10``."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower())
            for t in re.split(r"(\d+)", str(text)) if t]


def shown_option(value: object) -> str:
    """An option's value as the page writes it (``0.001``, ``a,b``, ``none``)."""
    if isinstance(value, (list, tuple)):
        return ",".join(shown_option(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def percent_scale(metric: str) -> float:
    """The factor a metric's values are drawn with (100 for percent metrics)."""
    return 100.0 if metric in PERCENT_METRICS else 1.0


def metric_unit(metric: str) -> str:
    """A table header's unit: ``accuracy %``, a declared unit (``L2``), else the name."""
    if metric in PERCENT_METRICS:
        return f"{metric} %"
    return metric_label(metric).unit or metric


def metric_axis(metric: str) -> str:
    """A figure axis: ``accuracy (%)``, a declared axis label, else the name in words."""
    if metric in PERCENT_METRICS:
        return f"{metric.replace('_', ' ')} (%)"
    return metric_label(metric).axis or metric.replace("_", " ")


def units_note(families: Iterable[str] | None = None) -> str:
    """``accuracies in percent, DeepFool in L2``: the units of the families' main metrics
    (of ``families`` only, where given: a page without DeepFool does not name it)."""
    shown = None if families is None else set(families)
    units = {family_title(f): x.unit for f, x in declaring(MetricLabel)
             if x.unit and x.metric == main_metric(f) and (shown is None or f in shown)}
    return "accuracies in percent" + "".join(f", {t} in {u}" for t, u in units.items())


def setting_label(perturbation: str, param: str, param_value: float, variant: str = "") -> str:
    """``clean``, ``gaussian snr_db=20``, ``fgsm-after-norm linf_eps=0.1``; a variant (other
    settings of the same setting) in brackets: ``gaussian snr_db=20 [draws=2]``."""
    extra = f" [{variant}]" if variant else ""
    value = float(param_value)
    if str(param) in ("none", "", "nan") or math.isnan(value):
        return f"{perturbation}{extra}"
    return f"{perturbation} {param}={format_number(value)}{extra}"


def column_label(perturbation: str, param: str, param_value: float, variant: str,
                 realised_value: float) -> str:
    """:func:`setting_label`, plus the mean realised value where the family declares the
    param a target and the realised value differs from it (``(realised 14.2 dB)``)."""
    text = setting_label(perturbation, param, param_value, variant)
    link = realised(perturbation, param)
    if (link is not None and not math.isnan(realised_value)
            and abs(realised_value - param_value) >= link.shown_gap):
        text += f" (realised {realised_value:.1f} {link.unit})"
    return text


def setting_title(perturbation: str, param: str, param_value: float, variant: str = "",
                  area: bool = False, key: str = "") -> str:
    """A human label: ``Gaussian noise, SNR -5 dB``, ``PGD: area under the curve`` (``key``
    for an unknown family)."""
    if perturbation not in PERTURBATIONS:
        text = key
    elif area:
        text = f"{family_title(perturbation)}: area under the curve"
    else:
        text = family_class(perturbation).describe_cell(param, param_value)
    return f"{text} [{variant}]" if variant else text


def short_header(perturbation: str, param: str, param_value: float, area: bool) -> list[str]:
    """Header lines for a narrow terminal column (``fgsm``, ``before``, ``10 dB``)."""
    known = perturbation in PERTURBATIONS
    short = family_class(perturbation).short_title if known else ""
    words = short.split() if short else perturbation.split("-")
    if area:
        return [*words, "area"]
    if known and param != "none":
        cls = family_class(perturbation)
        strength = cls.strengths.get(param)
        if strength is not None and strength.unit:
            return [*words, f"{param_value:g} {strength.unit}"]
        return [*words, cls.describe_cell(param, param_value).split(", ", 1)[-1]]
    return words


def axis_label(perturbation: str, param: str) -> tuple[str, str]:
    """(the axis label of a param, which way is stronger: ``lower``, ``higher`` or empty)."""
    strength = strength_of(perturbation, param)
    return strength.axis_label, strength.stronger


def footer(baseline: str, comparisons: int, alpha: float) -> str:
    """What every headline rendering says about its cells and tests."""
    return (f"Median over networks (n = networks per method); * differs from "
            f"{baseline} (two-sided Mann–Whitney on per-run values, Holm over all "
            f"{comparisons} comparisons, p < {alpha:g}); Δ: difference of "
            "medians from the baseline, with its 95% cluster-bootstrap interval where both "
            "have 3+ networks. A method is a whole training configuration: runs that differ "
            "in anything but the seed are "
            "different methods.")
