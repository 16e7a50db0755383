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
from robustbench_graph.config import ReportConfig
from robustbench_graph.errors import RbgError
from robustbench_graph.losses import LOSSES, preset_record, resolved_options
from robustbench_graph.report import NoUsableResults, build_report, holm
from robustbench_graph.report.aggregate import describe, networks, summarize
from robustbench_graph.report.collect import collect
from robustbench_graph.report.compare import compare
from robustbench_graph.report.headline import build_headlines
from robustbench_graph.report.plots import box_figure, curve_figure, method_colors
from robustbench_graph.report.tables import build_tables
from robustbench_graph.rundir.results import COLUMNS

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
    known = loss in LOSSES
    # As training records them: every option resolved, the grey preset included.
    record = {"run": name, "seed": seed, "method": method,
              "train": {"dataset": "mnist5k", "model": "smallcnn", "loss": loss,
                        "loss_options": resolved_options(loss, {}, "mnist5k") if known else {},
                        "epochs": 5, "parseval": "+parseval" in method},
              "loss_preset": preset_record(loss, "mnist5k") if known else None,
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


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_summary_is_per_network(runs: Path) -> None:
    collected = collect(runs)
    summary = summarize(collected.results)
    row = summary[(summary.method == "ce") & (summary.perturbation == "gaussian")
                  & (summary.metric == "accuracy")].iloc[0]
    per_run = [_mean(CE_GAUSS[0]), _mean(CE_GAUSS[1])]  # 0.4333, 0.7: repeats averaged first
    assert row["n"] == 2 and row["param_value"] == 10.0  # n counts networks
    assert row["median"] == pytest.approx(0.5666667) and row["mean"] == pytest.approx(0.5666667)
    assert row["std"] == pytest.approx(abs(per_run[1] - per_run[0]) / math.sqrt(2))
    # the pooled draws stay described, apart: 0.2 0.4 0.4 0.7 1.0
    assert row["draws"] == 5 and row["draws_median"] == pytest.approx(0.4)
    assert (row["draws_q25"], row["draws_q75"]) == pytest.approx((0.4, 0.7))
    clean = summary[(summary.method == "laplacian") & (summary.perturbation == "clean")].iloc[0]
    assert clean["n"] == 2 and clean["median"] == pytest.approx(0.98)
    assert clean["std"] == pytest.approx(math.sqrt(2 * 0.01**2))
    assert list(summary.method.unique()) == ["ce", "laplacian"]  # baseline first
    failed = [r for r in collected.runs if r.status == "failed"]
    assert [r.method for r in failed] == ["laplacian+parseval"]


def test_curve_area_is_the_mean_height(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    rows = [("clean", "none", 0.0, 0, "accuracy", 0.9)]
    # strengths 0, 10, 30 with values 0.9, 0.5, 0.1: trapezoids 7 + 6 = 13 over a range of 30
    rows += [("gaussian", "snr_db", v, r, "accuracy", x)
             for v, xs in ((0.0, [0.9]), (10.0, [0.4, 0.6]), (30.0, [0.1])) for r, x in
             enumerate(xs)]
    make_run(root, "ce", 0, rows)
    summary = summarize(collect(root).results)
    area = summary[summary.metric == "accuracy_auc"].iloc[0]
    assert area["perturbation"] == "gaussian" and math.isnan(area["param_value"])
    assert area["median"] == pytest.approx(13 / 30) and area["n"] == 1


def test_holm_hand_example() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    out = holm([0.02, math.nan, 0.01])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_comparisons_on_per_run_values(runs: Path) -> None:
    results = collect(runs).results
    table, notes = compare(results, "ce")
    assert notes == []
    assert set(table.method) == {"laplacian"} and set(table.baseline) == {"ce"}
    assert "snr_db" not in set(table.metric)  # diagnostic, not compared
    gauss = table[(table.perturbation == "gaussian") & (table.metric == "accuracy")].iloc[0]
    lap = [_mean(LAP_GAUSS[0]), _mean(LAP_GAUSS[1])]  # 0.88333, 0.875
    ce = [_mean(CE_GAUSS[0]), _mean(CE_GAUSS[1])]  # 0.43333, 0.7
    assert (gauss.n, gauss.n_baseline) == (2, 2)  # networks, not 5 draws
    # both laplacian networks above both ce networks: U = 4; of the C(4, 2) = 6 splits of
    # four runs, U = 4 and U = 0 are as extreme: exact two-sided p = 2/6
    assert gauss.u_statistic == 4 and gauss.exact
    assert gauss.p_value == pytest.approx(1 / 3)
    assert gauss.diff_median == pytest.approx(np.median(lap) - np.median(ce))
    assert gauss.cliffs_delta == 1.0
    # pairwise differences 0.45, 0.18333, 0.44167, 0.175: their median
    assert gauss.hodges_lehmann == pytest.approx((0.1833333 + 0.4416667) / 2)
    assert math.isnan(gauss.ci_low) and math.isnan(gauss.ci_high)  # 2 networks: no interval
    assert table.p_holm.to_numpy() == pytest.approx(holm(table.p_value.to_numpy()))
    assert list(table.significant) == list(table.p_holm < 0.05)
    _, notes = compare(results, "nosuch")
    assert notes and "nosuch" in notes[0]


def _runs_with_draws(root: Path, method: str, per_run: list[float], draws: list[list[float]]
                     ) -> None:
    for seed, (mean, offsets) in enumerate(zip(per_run, draws, strict=True)):
        rows = [("clean", "none", 0.0, 0, "accuracy", mean)]
        rows += [("gaussian", "snr_db", 10.0, r, "accuracy", mean + d)
                 for r, d in enumerate(offsets)]
        make_run(root, method, seed, rows, loss="ce" if method == "ce" else "noisy")


def test_draw_level_noise_gets_no_star(tmp_path: Path) -> None:
    """Same per-run means, different draws: no star, while the old pooled test of the draws
    (10 networks x 40 draws as 400 values) would have given one."""
    root = tmp_path / "runs"
    means = [0.80 + 0.01 * s for s in range(5)]
    steady = [[0.0] * 40 for _ in means]  # every draw at the run's mean
    skewed = [[0.01] * 39 + [-0.39] for _ in means]  # mostly above, one far below: same mean
    _runs_with_draws(root, "ce", means, steady)
    _runs_with_draws(root, "noisy", means, skewed)
    results = collect(root).results
    table, _ = compare(results, "ce")
    gauss = table[table.perturbation == "gaussian"].iloc[0]
    assert gauss.p_value == pytest.approx(1.0) and not gauss.significant
    assert gauss.diff_median == pytest.approx(0.0, abs=1e-12)
    gaussian = results[results.perturbation == "gaussian"]
    pooled = mannwhitneyu(gaussian[gaussian.method == "noisy"].value,
                          gaussian[gaussian.method == "ce"].value).pvalue
    assert pooled * len(table) < 0.05  # the old star, even after Holm over this report


def test_method_is_the_whole_training_configuration(tmp_path: Path) -> None:
    """Runs differing in anything but the seed are different methods, even under one name
    (and with the same run folder names, in two folders)."""
    root = tmp_path / "runs"
    rows = rows_for([0.5], 0.9, 1.0)
    for seed in (0, 1):
        make_run(root / "a", "ce", seed, rows)
        slow = make_run(root / "b", "ce", seed, rows)
        record = json.loads((slow / "config.json").read_text())
        record["train"]["lr"] = 0.001
        (slow / "config.json").write_text(json.dumps(record))
    short = make_run(root / "c", "ce", 0, rows)
    record = json.loads((short / "config.json").read_text())
    record["train"]["epochs"] = 3
    (short / "config.json").write_text(json.dumps(record))
    report = build_report(root, tmp_path / "out", ReportConfig(plots=False))
    assert report.methods == ["ce", "ce epochs=3", "ce lr=0.001"]
    clean = report.summary[report.summary.perturbation == "clean"].set_index("method")
    assert clean.loc["ce", "n"] == 2 and clean.loc["ce lr=0.001", "n"] == 2
    assert clean.loc["ce epochs=3", "n"] == 1
    assert dict(report.method_configs["ce lr=0.001"].train)["lr"] == 0.001


def test_headline_columns(runs: Path) -> None:
    results = collect(runs).results
    summary = summarize(results)
    comparisons, _ = compare(results, "ce")
    (head,) = build_headlines(summary, comparisons, "ce")
    assert [c.key for c in head.columns] == ["clean", "gaussian", "deepfool"]
    assert head.n == {"ce": 2, "laplacian": 2}
    cell = head.cell("laplacian", 1)
    assert cell.text == "87.9" and cell.best and cell.effect == "+31.2"  # no interval at n=2
    (picked,) = build_headlines(summary, comparisons, "ce", ["deepfool", "gaussian@10"])
    assert [c.key for c in picked.columns] == ["deepfool", "gaussian@10"]
    with pytest.raises(RbgError, match="unknown headline column 'pgd'"):
        build_headlines(summary, comparisons, "ce", ["pgd"])


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
    ce_gauss = table.cell("ce", 1)  # per-run values 0.4333 and 0.7
    assert ce_gauss.text == "56.7 [50.0–63.3]" and not ce_gauss.best
    assert table.cell("laplacian", 1).best
    deepfool = table.cell("laplacian", 2)
    assert deepfool.best and deepfool.text.endswith("*") and "2.3" in deepfool.text


def test_box_figure_one_box_and_dots_per_method(runs: Path) -> None:
    results = collect(runs).results
    per_network = networks(results)
    methods = ["ce", "laplacian"]
    panels = [(label, {"perturbation": p, "metric": "accuracy"})
              for label, p in (("Clean", "clean"), ("Gaussian", "gaussian"))]
    fig = box_figure(results, per_network, panels, "t", methods, method_colors(methods))
    axes = fig.get_axes()
    assert len(axes) == 2
    for ax in axes:
        assert len(ax.patches) == len(methods) == len(ax.get_yticks())
        assert len(ax.collections) == len(methods)  # one dot series (networks) per method
        assert [t.get_text() for t in ax.get_yticklabels()] == ["ce (n=2)", "laplacian (n=2)"]
        assert "%" in ax.get_xlabel() and ax.get_xlim()[1] > 50  # percent


def test_curve_figure_marks_the_baseline(runs: Path) -> None:
    per_network = networks(collect(runs).results)
    data = per_network[(per_network.perturbation == "gaussian")
                       & (per_network.metric == "accuracy")]
    data = pd.concat([data, data.assign(param_value=0.0, value=data.value / 2)])
    methods = ["ce", "laplacian"]
    fig = curve_figure(data, "t", "SNR (dB)", "accuracy (%)", "lower", methods,
                       method_colors(methods, "ce"), "ce", 100.0)
    (ax,) = fig.get_axes()
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"ce (n=2) — baseline", "laplacian (n=2)"}
    assert lines["ce (n=2) — baseline"].get_linestyle() == "--"
    assert ax.xaxis_inverted()  # lower SNR is stronger: to the right
    assert list(lines["laplacian (n=2)"].get_xdata()) == [0.0, 10.0]


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
    report = build_report(runs, out, ReportConfig(baseline="ce"))
    for name in ("summary.csv", "comparisons.csv", "networks.csv", "tables.md", "tables.tex",
                 "index.html"):
        assert (out / name).stat().st_size > 0
    assert [p.kind for p in report.plots] == ["box"]  # one strength each: no curve
    for plot in report.plots:
        assert plot.png.read_bytes()[:4] == b"\x89PNG" and plot.svg.stat().st_size > 0
    assert all(p.is_relative_to(out) for p in report.files)
    assert [r.run for r in report.failed_runs] == ["mnist5k-smallcnn-laplacian+parseval-seed0"]
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns[-12:]) == ["n", "mean", "std", "median", "q25", "q75", "min",
                                           "max", "draws", "draws_median", "draws_q25",
                                           "draws_q75"]
    assert "| laplacian | 2 |" in (out / "tables.md").read_text()
    assert "\\toprule" in (out / "tables.tex").read_text()
    page = (out / "index.html").read_text()
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    # headlines + full tables + failed runs + comparisons + methods + settings + provenance
    assert parser.count["table"] == len(report.headlines) + len(report.tables) + 5
    sections = [page.index(f'id="{s}"') for s in ("headline", "curves", "boxes", "tables",
                                                   "comparisons", "methods", "provenance")]
    assert sections == sorted(sections)  # reads top-down
    assert parser.count["img"] == len(report.plots)
    assert page.count("data:image/png;base64,") == len(report.plots)
    assert "laplacian+parseval" in page and "abc123" in page
    assert 'src="http' not in page and "<script" not in page and "<link" not in page


def test_build_report_escapes_text(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root, "ce", 0, rows_for([0.5], 0.9, 1.0))
    make_run(root, "x<i>&evil", 0, rows_for([0.6], 0.9, 1.0), loss="x<i>&evil")
    report = build_report(root, tmp_path / "out", ReportConfig(plots=False))
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


def _every_family_rows(offset: float) -> list[tuple]:
    rows = [("clean", "none", 0.0, 0, "accuracy", 0.97 + offset)]
    grid = {"gaussian": ("snr_db", (10.0, 0.0, -5.0)), "gaussian-iid": ("snr_db", (0.0, -5.0)),
            "fgsm-before-norm": ("snr_db", (20.0, 10.0)), "fgsm-after-norm": ("snr_db",
                                                                              (20.0, 10.0)),
            "dropout": ("p", (0.25, 0.5)), "quantize": ("bits", (5.0, 3.0)),
            "pgd": ("eps", (0.05, 0.1))}
    for family, (param, values) in grid.items():
        rows += [(family, param, v, 0, "accuracy", 0.9 - 0.1 * k + offset)
                 for k, v in enumerate(values)]
    return rows + [("deepfool", "norm", 2.0, 0, "mean_l2", 1.5 + offset)]


def test_cli_headline_fits_100_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    from robustbench_graph.cli.console import console

    root = tmp_path / "runs"
    for seed in range(3):
        make_run(root, "ce", seed, _every_family_rows(0.001 * seed))
        make_run(root, "laplacian+parseval", seed, _every_family_rows(0.01 + 0.001 * seed),
                 loss="laplacian")
    monkeypatch.setattr(console, "width", 100)
    result = invoke("--runs", str(root), "--out", str(tmp_path / "rep"), "--no-plots")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= 100
    titles = [ln.strip() for ln in lines if "mnist5k / smallcnn:" in ln]
    assert titles == ["mnist5k / smallcnn: headline",
                      "mnist5k / smallcnn: area under each curve"]
    assert sum(ln.lstrip().startswith("laplacian+parseval") for ln in lines) == 2
    picked = invoke("--runs", str(root), "--out", str(tmp_path / "rep2"), "--no-plots",
                    "--columns", "clean,pgd@0.05,auc:pgd")
    assert picked.exit_code == 0, picked.output
    bad = invoke("--runs", str(root), "--out", str(tmp_path / "rep3"), "--columns", "nope")
    assert bad.exit_code == 1 and "unknown headline column 'nope'" in bad.stderr


def test_unmeasured_methods_are_named_and_smoothness_is_shown(runs: Path, tmp_path: Path
                                                                ) -> None:
    # a third method without DeepFool: named in a note, not an empty row
    for seed in (0, 1):
        rows = [r for r in rows_for([0.5], 0.9, 1.0) if r[0] != "deepfool"]
        make_run(runs, "sp", seed, rows)
    from matplotlib.figure import Figure

    (runs / "smoothness").mkdir()
    Figure().savefig(runs / "smoothness" / "smoothness.png")
    report = build_report(runs, tmp_path / "out", ReportConfig(baseline="ce"))
    (head,) = report.headlines
    assert head.missing == ["sp: not measured under DeepFool"]  # (an old row: param none)
    assert head.cell("sp", 2) is None and head.cell("sp", 0) is not None
    page = (tmp_path / "out" / "index.html").read_text()
    assert "Not measured: sp: not measured under DeepFool." in page
    assert 'id="smoothness"' in page
