"""Report extras declared by the families: a toy family's per-image figures reach the report
with no change under ``robustbench_graph/report``, and every registered family's declarations
are well-formed (the per-image columns its figures read are the columns it keeps)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from robustbench_graph.cli import app
from robustbench_graph.config import ImageSubset, ReportConfig
from robustbench_graph.data import DatasetInfo, ImageData
from robustbench_graph.models import create_model
from robustbench_graph.perturbations import (
    FAMILIES,
    PERTURBATIONS,
    EvalContext,
    Metric,
    Perturbation,
    family_class,
    register_perturbation,
)
from robustbench_graph.perturbations.report_extras import (
    CellFilter,
    ErrorSummary,
    GroupedLines,
    MetricLabel,
    PerImageFigure,
    RealisedValue,
    ThresholdCurve,
)
from robustbench_graph.report import build_report
from robustbench_graph.report.model import GroupedFigure, ThresholdFigure
from robustbench_graph.rundir.per_image import KEY_COLUMNS, per_image_path, write_per_image
from robustbench_graph.rundir.results import COLUMNS
from robustbench_graph.settings import setting

FINGERPRINT = "abc123abc123"
# Per network: the per-image margins (inf: never crossed) and how many nudges each survived.
MARGINS = {("ce", 0): [0.5, 1.5, math.inf, 0.0], ("ce", 1): [1.0, 2.0, 3.0, 0.0],
           ("wide", 0): [2.0, 2.5, math.inf, 1.0], ("wide", 1): [3.0, 3.5, 4.0, 1.5]}
SURVIVED = [0, 1, 2, 2]


def mean_by_count(x: np.ndarray, y: np.ndarray) -> tuple[float, pd.DataFrame]:
    """The toy family's grouping: the mean margin per survival count, and the count's
    correlation with it."""
    groups = (pd.DataFrame({"survived": x, "margin": y}).replace(math.inf, 5.0)
              .groupby("survived", as_index=False)["margin"].mean())
    return float(np.corrcoef(groups["survived"], groups["margin"])[0, 1]), groups


@dataclass(frozen=True)
class ToySettings:
    widths: tuple[float, ...] = setting((1.0,), "margin widths")


class ToyMargin(Perturbation):
    """A family that keeps each image's margin and survival count (never run here)."""

    Settings = ToySettings
    sweep = "widths"
    metrics = (Metric("margin_mean", "higher", "mean margin over images"),)
    headline = "margin_mean"
    title = "Toy margin"
    report_extras = (
        PerImageFigure("toy-margin-curve", "Toy margin", "toy margins, band: range",
                       "images beyond each margin", ThresholdCurve(
                           "margin", "margin ε (stronger →)", "images beyond ε (%)"),
                       CellFilter(param="widths", param_value=1.0)),
        PerImageFigure("toy-margin-groups", "Toy groups", "margin against survival",
                       "mean margin by survival count", GroupedLines(
                           "survived", "margin", mean_by_count, "r", "nudges survived",
                           "mean margin"), CellFilter(metric="margin_mean")),
    )


@pytest.fixture
def toy_family(monkeypatch: pytest.MonkeyPatch):
    """``toy-margin`` registered for one test (in a copy of the registry's entries)."""
    monkeypatch.setattr(PERTURBATIONS, "_entries", dict(PERTURBATIONS._entries))
    register_perturbation("toy-margin", "toy: per-image margins")(ToyMargin)
    return ToyMargin


@pytest.fixture
def toy_runs(tmp_path: Path, toy_family) -> Path:
    root = tmp_path / "runs"
    for (method, seed), margins in MARGINS.items():
        name = f"mnist5k-smallcnn-{method}-seed{seed}"
        run = root / name
        run.mkdir(parents=True)
        train = {"dataset": "mnist5k", "model": "smallcnn", "loss": "ce", "loss_options": {},
                 "epochs": 5 if method == "ce" else 7, "parseval": False}
        (run / "config.json").write_text(json.dumps(
            {"run": name, "seed": seed, "method": method, "train": train}))
        (run / "status.json").write_text(json.dumps({"status": "complete"}))
        rows = [("clean", "none", 0.0, "accuracy", 0.9, ""),
                ("toy-margin", "widths", 1.0, "margin_mean", float(np.mean(margins[:2])),
                 FINGERPRINT)]
        pd.DataFrame([{"run": name, "dataset": "mnist5k", "model": "smallcnn", "loss": "ce",
                       "seed": seed, "perturbation": p, "param": q, "param_value": v,
                       "repeat": 0, "metric": m, "value": x, "n": 4, "settings": fp}
                      for p, q, v, m, x, fp in rows], columns=list(COLUMNS)
                     ).to_csv(run / "results.csv", index=False)
        write_per_image(per_image_path(run, "toy-margin", "widths", 1.0, FINGERPRINT),
                        pd.DataFrame({"image": range(4), "label": 0, "margin": margins,
                                      "survived": SURVIVED}))
    return root


def test_build_report_draws_a_new_familys_per_image_figures(toy_runs: Path, tmp_path: Path
                                                            ) -> None:
    out = tmp_path / "report"
    report = build_report(toy_runs, out, ReportConfig(baseline="ce"))
    (curve,) = [f for f in report.figures if isinstance(f, ThresholdFigure)]
    assert curve.stem == "mnist5k-smallcnn-toy-margin-curve" and curve.methods == ["ce",
                                                                                  "ce epochs=7"]
    assert curve.grid[0] == 0.0 and curve.grid.size == 60
    # at ε = 0: ce's networks keep 3 of 4 images (margin 0 is not beyond 0), wide's 4 of 4
    assert curve.values["ce"][:, 0].tolist() == [75.0, 75.0]
    assert curve.values["ce epochs=7"][:, 0].tolist() == [100.0, 100.0]
    (groups,) = [f for f in report.figures if isinstance(f, GroupedFigure)]
    first, r = groups.lines["ce"][0]
    assert first["survived"].tolist() == [0, 1, 2] and first["margin"].tolist() == [0.5, 1.5, 2.5]
    assert r == pytest.approx(1.0)
    names = {p.png.name for p in report.plots}
    assert {"mnist5k-smallcnn-toy-margin-curve.png",
            "mnist5k-smallcnn-toy-margin-groups.png"} <= names
    page = (out / "index.html").read_text()
    assert "mnist5k / smallcnn: images beyond each margin" in page
    assert "mnist5k / smallcnn: mean margin by survival count" in page


def test_rbg_report_draws_the_toy_figure(toy_runs: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "--runs", str(toy_runs), "--out",
                                      str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    png = tmp_path / "rep" / "plots" / "mnist5k-smallcnn-toy-margin-curve.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


# --- every registered family's declarations ------------------------------------------------
INFO = DatasetInfo("toy", 10, (3, 8, 8), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), False, False)
KINDS = (PerImageFigure, ErrorSummary, RealisedValue, MetricLabel)


def _default_cells(name: str) -> list:
    cls = family_class(name)
    return [c for family in FAMILIES for c in cls(cls.resolve({}, family)).cells(ImageSubset())]


@pytest.mark.parametrize("name", PERTURBATIONS.names())
def test_declarations_are_well_formed(name: str) -> None:
    cls = family_class(name)
    metrics = {m.name for m in cls.metrics}
    extras = cls.report_extras
    assert all(isinstance(x, KINDS) for x in extras), extras
    cells = _default_cells(name)
    params = {c.param for c in cells}
    for x in extras:
        if isinstance(x, PerImageFigure):
            assert x.columns and not set(x.columns) & set(KEY_COLUMNS)
            f = x.cells
            assert f.metric is None or f.metric in metrics
            assert any((f.param is None or c.param == f.param)
                       and (f.param_value is None or c.param_value == f.param_value)
                       for c in cells), f"{name}: {f} selects none of its default cells"
            if isinstance(x.drawing, GroupedLines):
                stat, groups = x.drawing.groups(np.array([0, 1, 2, 2]),
                                                np.array([1.0, 2.0, 3.0, 4.0]))
                assert isinstance(stat, float)
                assert {x.drawing.x, x.drawing.y} <= set(groups.columns)
        elif isinstance(x, RealisedValue):
            assert x.metric in metrics and x.param in params and x.unit
        elif isinstance(x, (MetricLabel, ErrorSummary)):
            assert x.metric in metrics
    suffixes = [x.suffix for x in extras if isinstance(x, PerImageFigure)]
    assert len(suffixes) == len(set(suffixes))


def _figured() -> list[str]:
    return [n for n in PERTURBATIONS.names()
            if any(isinstance(x, PerImageFigure) for x in family_class(n).report_extras)]


@pytest.mark.parametrize("name", _figured())
def test_per_image_figures_read_columns_the_family_keeps(name: str) -> None:
    """Run the family on 12 tiny images: the table it keeps for each cell a figure selects
    holds the columns the figure reads."""
    gen = torch.Generator().manual_seed(0)
    images = 0.25 + 0.5 * torch.rand(12, 3, 8, 8, generator=gen)
    data = ImageData((images * 255).round().to(torch.uint8),
                     torch.randint(0, 10, (12,), generator=gen), 255.0, INFO)
    torch.manual_seed(0)
    ctx = EvalContext(create_model("smallcnn", INFO, width=4).eval(), data,
                      torch.device("cpu"), "toy-run", batch_size=6)
    cls = family_class(name)
    family = cls(cls.resolve({}, "colour"))
    for fig in (x for x in cls.report_extras if isinstance(x, PerImageFigure)):
        cell = next(c for c in family.cells(ImageSubset())
                    if (fig.cells.param is None or c.param == fig.cells.param)
                    and (fig.cells.param_value is None or c.param_value == fig.cells.param_value))
        rows = family.measure(cell, ctx)
        assert fig.cells.metric is None or fig.cells.metric in {r.metric for r in rows}
        kept = ctx.kept[cell.key]
        assert set(fig.columns) <= set(kept.columns), (name, fig.suffix, list(kept.columns))
