"""``rbg report``: aggregates, comparisons, plots, the HTML page and the command."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu
from typer.testing import CliRunner

from robustbench_graph.cli import app
from robustbench_graph.errors import RbgError
from robustbench_graph.records import COLUMNS
from robustbench_graph.report import NoUsableResults, build_report, holm
from robustbench_graph.report.aggregate import describe, summarize
from robustbench_graph.report.collect import collect
from robustbench_graph.report.compare import compare
from robustbench_graph.report.plots import box_figure, method_colors
from robustbench_graph.report.tables import build_tables

CE_GAUSS = {0: [0.7, 0.2, 0.4], 1: [1.0, 0.4]}  # seed -> repeats; pooled: 0.2 0.4 0.4 0.7 1.0
LAP_GAUSS = {0: [0.9, 0.8, 0.95], 1: [0.85, 0.9]}
CE_CLEAN = {0: 0.98, 1: 0.96}
LAP_CLEAN = {0: 0.99, 1: 0.97}
CE_DEEPFOOL = {0: 1.5, 1: 1.7}
LAP_DEEPFOOL = {0: 2.5, 1: 2.1}


def make_run(root: Path, method: str, seed: int, rows: list[tuple], status: str = "complete",
             loss: str | None = None) -> Path:
    """A run folder with config.json, status.json and results.csv (rows: perturbation,
    param, param_value, repeat, metric, value)."""
    name = f"mnist5k-smallcnn-{method}-seed{seed}"
    run_dir = root / name
    run_dir.mkdir(parents=True)
    loss = loss or method.split("+")[0]
    record = {"run": name, "seed": seed, "method": method,
              "train": {"dataset": "mnist5k", "model": "smallcnn", "loss": loss,
                        "loss_options": {}, "epochs": 2},
              "versions": {"robustbench_graph": "0.1.0", "torch": "2.x"},
              "git_commit": "abc123"}
    (run_dir / "config.json").write_text(json.dumps(record))
    (run_dir / "status.json").write_text(json.dumps({"status": status}))
    if rows:
        df = pd.DataFrame([
            {"run": name, "dataset": "mnist5k", "model": "smallcnn", "loss": loss,
             "seed": seed, "perturbation": p, "param": q, "param_value": v, "repeat": r,
             "metric": m, "value": x, "n": 100}
            for p, q, v, r, m, x in rows], columns=list(COLUMNS))
        df.to_csv(run_dir / "results.csv", index=False)
    return run_dir


def rows_for(gauss: list[float], clean: float, deepfool: float) -> list[tuple]:
    rows = [("clean", "none", 0.0, 0, "accuracy", clean)]
    rows += [("gaussian", "snr_db", 10.0, r, "accuracy", x) for r, x in enumerate(gauss)]
    rows += [("gaussian", "snr_db", 10.0, r, "snr_db", 10.0) for r in range(len(gauss))]
    rows += [("deepfool", "none", 0.0, 0, "mean_l2", deepfool),
             ("deepfool", "none", 0.0, 0, "success_rate", 1.0)]
    return rows


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed in (0, 1):
        make_run(root, "ce", seed, rows_for(CE_GAUSS[seed], CE_CLEAN[seed], CE_DEEPFOOL[seed]))
        make_run(root, "laplacian", seed,
                 rows_for(LAP_GAUSS[seed], LAP_CLEAN[seed], LAP_DEEPFOOL[seed]))
    make_run(root, "laplacian+parseval", 0, [], status="failed", loss="laplacian")
    return root


def test_describe_hand_values() -> None:
    s = describe([0.2, 0.4, 0.4, 1.0])  # even n with a tie
    assert s["n"] == 4 and s["mean"] == pytest.approx(0.5)
    assert s["std"] == pytest.approx(math.sqrt(0.36 / 3))
    assert (s["median"], s["q25"], s["q75"]) == pytest.approx((0.4, 0.35, 0.55))
    s = describe([0.7, 0.2, 0.4, 1.0, 0.4])  # odd n with a tie
    assert (s["median"], s["q25"], s["q75"], s["min"], s["max"]) == pytest.approx(
        (0.4, 0.4, 0.7, 0.2, 1.0))
    assert s["std"] == pytest.approx(math.sqrt(0.392 / 4))
    one = describe([0.3, math.nan])
    assert one["n"] == 1 and one["median"] == 0.3 and math.isnan(one["std"])


def test_summary_pools_seeds_and_repeats(runs: Path) -> None:
    collected = collect(runs)
    summary = summarize(collected.results)
    row = summary[(summary.method == "ce") & (summary.perturbation == "gaussian")
                  & (summary.metric == "accuracy")].iloc[0]
    assert row["n"] == 5 and row["runs"] == 2 and row["param_value"] == 10.0
    assert row["mean"] == pytest.approx(0.54)
    assert row["std"] == pytest.approx(math.sqrt(0.392 / 4))
    assert (row["median"], row["q25"], row["q75"]) == pytest.approx((0.4, 0.4, 0.7))
    clean = summary[(summary.method == "laplacian") & (summary.perturbation == "clean")].iloc[0]
    assert clean["n"] == 2 and clean["median"] == pytest.approx(0.98)
    assert clean["std"] == pytest.approx(math.sqrt(2 * 0.01**2))
    assert list(summary.method.unique()) == ["ce", "laplacian"]  # baseline first
    failed = [r for r in collected.runs if r.status == "failed"]
    assert [r.method for r in failed] == ["laplacian+parseval"]


def test_holm_hand_example() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    out = holm([0.02, math.nan, 0.01])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_comparisons_match_scipy(runs: Path) -> None:
    results = collect(runs).results
    table, notes = compare(results, "ce")
    assert notes == []
    assert set(table.method) == {"laplacian"} and set(table.baseline) == {"ce"}
    assert "snr_db" not in set(table.metric)  # diagnostic, not compared
    gauss = table[(table.perturbation == "gaussian") & (table.metric == "accuracy")].iloc[0]
    lap = [v for s in (0, 1) for v in LAP_GAUSS[s]]
    ce = [v for s in (0, 1) for v in CE_GAUSS[s]]
    expected = mannwhitneyu(lap, ce, alternative="two-sided")
    assert gauss.p_value == pytest.approx(expected.pvalue)
    assert gauss.u_statistic == pytest.approx(expected.statistic)
    assert gauss.diff_median == pytest.approx(np.median(lap) - np.median(ce))
    assert table.p_holm.to_numpy() == pytest.approx(holm(table.p_value.to_numpy()))
    assert list(table.significant) == list(table.p_holm < 0.05)
    _, notes = compare(results, "nosuch")
    assert notes and "nosuch" in notes[0]


def test_tables_mark_best_and_percent(runs: Path) -> None:
    results = collect(runs).results
    summary = summarize(results)
    comparisons, _ = compare(results, "ce")
    comparisons.loc[comparisons.perturbation == "deepfool", "significant"] = True
    (table,) = build_tables(summary, comparisons, "ce")
    labels = [c.label for c in table.columns]
    assert labels == ["clean", "gaussian snr_db=10", "deepfool"]
    assert [c.metric for c in table.columns] == ["accuracy", "accuracy", "mean_l2"]
    assert table.methods == ["ce", "laplacian"]
    ce_gauss = table.cell("ce", 1)
    assert ce_gauss.text == "40.0 [40.0–70.0]" and not ce_gauss.best
    assert table.cell("laplacian", 1).best
    deepfool = table.cell("laplacian", 2)
    assert deepfool.best and deepfool.text.endswith("*") and "2.3" in deepfool.text


def test_box_figure_one_box_per_method(runs: Path) -> None:
    results = collect(runs).results
    data = results[(results.perturbation == "gaussian") & (results.metric == "accuracy")]
    data = pd.concat([data, data.assign(param_value=20.0)], ignore_index=True)
    methods = ["ce", "laplacian"]
    fig = box_figure(data, "t", methods, method_colors(methods))
    axes = fig.get_axes()
    assert len(axes) == 2
    assert [t.get_text() for t in axes[0].get_yticklabels()] == methods  # first column only
    for ax in axes:
        assert len(ax.patches) == len(methods) == len(ax.get_yticks())
        assert "%" in ax.get_xlabel()
        assert ax.get_xlim()[1] > 50  # percent, not a fraction


class _Balance(HTMLParser):
    VOID = {"meta", "br", "img", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.count: dict[str, int] = {}
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.count[tag] = self.count.get(tag, 0) + 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


def test_build_report_writes_files_and_html(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    report = build_report(runs, out, baseline="ce")
    for name in ("summary.csv", "comparisons.csv", "index.html"):
        assert (out / name).stat().st_size > 0
    assert {p.perturbation for p in report.plots} == {"clean", "gaussian", "deepfool"}
    for plot in report.plots:
        assert plot.png.read_bytes()[:4] == b"\x89PNG" and plot.svg.stat().st_size > 0
    assert all(p.is_relative_to(out) for p in report.files)
    assert [r.run for r in report.failed_runs] == ["mnist5k-smallcnn-laplacian+parseval-seed0"]
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns[-8:]) == ["n", "mean", "std", "median", "q25", "q75", "min",
                                          "max"]
    page = (out / "index.html").read_text()
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    # headline tables + failed runs + comparisons + settings + provenance
    assert parser.count["table"] == len(report.tables) + 4
    assert parser.count["img"] == len(report.plots)
    assert page.count("data:image/png;base64,") == len(report.plots)
    assert "laplacian+parseval" in page and "abc123" in page
    assert 'src="http' not in page and "<script" not in page and "<link" not in page


def test_build_report_escapes_text(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root, "ce", 0, rows_for([0.5], 0.9, 1.0))
    make_run(root, "x<i>&evil", 0, rows_for([0.6], 0.9, 1.0), loss="ce")
    report = build_report(root, tmp_path / "out", plots=False)
    page = (tmp_path / "out" / "index.html").read_text()
    assert "x<i>&evil" not in page and "x&lt;i&gt;&amp;evil" in page
    assert report.plots == []


def test_nothing_usable_raises_with_warnings(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    bad = make_run(root, "ce", 0, [])
    (bad / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(NoUsableResults) as info:
        build_report(root, tmp_path / "out")
    assert any("results.csv" in w for w in info.value.warnings)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RbgError, match="no run folders"):
        build_report(tmp_path / "empty", tmp_path / "out2")


def invoke(*args: str):
    return CliRunner().invoke(app, ["report", *args])


def test_cli_report(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    result = invoke("--runs", str(runs), "--out", str(out), "--baseline", "ce", "--no-plots")
    assert result.exit_code == 0, result.output
    assert "mnist5k / smallcnn" in result.stdout
    assert "failed run:" in result.stdout and "laplacian+parseval" in result.stdout
    assert (out / "index.html").exists() and (out / "summary.csv").exists()


def test_cli_foreign_results_file(runs: Path, tmp_path: Path) -> None:
    bad = runs / "mnist5k-smallcnn-ce-seed1" / "results.csv"
    bad.write_text("image,label,score\n1,2,0.5\n")
    out = tmp_path / "rep"
    result = invoke("--runs", str(runs), "--out", str(out), "--no-plots")
    assert result.exit_code == 3, result.output  # written, one folder skipped
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2 and all(ln.startswith("warning:") for ln in lines)
    assert "1 run folder(s) skipped" in lines[1]
    assert "results.csv" in lines[0] and "foreign columns" in lines[0]
    assert "Traceback" not in result.output
    summary = pd.read_csv(out / "summary.csv")
    ce = summary[(summary.method == "ce") & (summary.perturbation == "clean")].iloc[0]
    assert ce["n"] == 1  # seed 1 left out, seed 0 still reported


def test_cli_nothing_usable_exits_nonzero(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    bad = make_run(root, "ce", 0, [])
    (bad / "results.csv").write_text("x\n1\n")
    result = invoke("--runs", str(root), "--out", str(tmp_path / "rep"))
    assert result.exit_code == 1
    assert "warning:" in result.stderr and "error:" in result.stderr
    assert "no usable results" in result.stderr and "Traceback" not in result.output
