"""Declared claims in the report: measures resolved to per-network values, verdicts in
claims.csv, on the page, in tables.md/tex and the terminal; ``rbg report --claims``; the
exploratory part saying plainly when no comparison can be significant."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import _Balance, make_run

from robustbench_graph.claims import parse_claims
from robustbench_graph.config import ReportConfig
from robustbench_graph.errors import RbgError
from robustbench_graph.report import build_report
from robustbench_graph.report.hypotheses import ClaimInput, judge_claims, networks_needed
from robustbench_graph.report.stats import holm

from conftest import cli

SEEDS = 10
STRENGTHS = (10.0, 0.0, -5.0)


def _rows(clean: float, gauss: float, df: float) -> list[tuple]:
    rows = [("clean", "none", 0.0, 0, "accuracy", clean)]
    rows += [("gaussian", "snr_db", s, 0, "accuracy", gauss - 0.1 * k)
             for k, s in enumerate(STRENGTHS)]
    return rows + [("deepfool", "none", 0.0, 0, "mean_l2", df),
                   ("deepfool", "none", 0.0, 0, "median_l2", df)]


def ce_values(s: int) -> tuple[float, float, float]:
    return 0.95 + 0.001 * s, 0.60 + 0.002 * s, 1.50 + 0.01 * s


def lap_values(s: int) -> tuple[float, float, float]:
    return 0.951 + 0.001 * s, 0.70 + 0.002 * s, 1.60 + 0.01 * s


@pytest.fixture
def claim_runs(tmp_path: Path) -> Path:
    """ce and laplacian with 10 networks each (laplacian 10 points better under noise, clean
    accuracy interleaved with ce's), sp with 2 networks inside ce's range."""
    root = tmp_path / "runs"
    for s in range(SEEDS):
        make_run(root, "ce", s, _rows(*ce_values(s)))
        make_run(root, "laplacian", s, _rows(*lap_values(s)))
    for s in range(2):
        make_run(root, "sp", s, _rows(0.953, 0.605, 1.52 + 0.01 * s))
    return root


def _claim(id_: str, method: str, measure: str, direction: str, **extra) -> dict:
    return {"id": id_, "text": f"claim {id_}", "method": method, "baseline": "ce",
            "measure": measure, "direction": direction, **extra}


CLAIMS = [
    _claim("noise", "laplacian", "gaussian@0", "higher", source="LapNet, Table 2",
           paper_value="+8.9 pt"),
    _claim("mirror", "laplacian", "gaussian@0", "lower"),
    _claim("clean", "laplacian", "clean", "higher"),
    _claim("few", "sp", "deepfool:median_l2", "higher"),
    _claim("pgd", "laplacian", "pgd@0.1", "higher"),
]


def _report(root: Path, out: Path, claims: list[dict] = CLAIMS):
    return build_report(root, out, ReportConfig(plots=False,
                                                claims=parse_claims(claims, "test")))


def test_verdicts_and_claims_csv(claim_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    report = _report(claim_runs, out)
    csv = pd.read_csv(out / "claims.csv", keep_default_na=False, na_values=[""])
    assert list(csv.columns) == [
        "id", "text", "source", "paper_value", "dataset", "model", "method", "baseline",
        "measure", "perturbation", "metric", "setting", "direction", "margin", "n_method",
        "n_baseline", "median_method", "median_baseline", "effect", "ci_low", "ci_high", "p",
        "p_holm", "p_other_holm", "verdict", "needed", "note"]
    by = csv.set_index("id")
    # four claims measured: Holm over them; the few-networks one cannot reach 0.05
    assert list(csv["verdict"]) == ["supported", "contradicted", "not shown",
                                    "cannot be shown", "not measured"]
    noise = by.loc["noise"]
    lap = [lap_values(s)[1] - 0.1 for s in range(SEEDS)]  # gaussian@0 is the second strength
    ce = [ce_values(s)[1] - 0.1 for s in range(SEEDS)]
    assert (noise["n_method"], noise["n_baseline"]) == (10, 10)
    assert noise["median_method"] == pytest.approx(np.median(lap))
    assert noise["effect"] == pytest.approx(np.median(lap) - np.median(ce))
    assert noise["ci_low"] <= noise["effect"] <= noise["ci_high"]
    assert noise["p"] == pytest.approx(1 / math.comb(20, 10))  # complete separation
    measured = csv[csv["verdict"] != "not measured"]
    assert np.allclose(measured["p_holm"], holm(measured["p"]))  # over the claims only
    assert (noise["source"], noise["paper_value"]) == ("LapNet, Table 2", "+8.9 pt")
    assert "gaussian snr_db=0" in noise["note"]
    assert "the other way" in by.loc["mirror", "note"]
    few = by.loc["few"]
    assert (few["n_method"], few["needed"]) == (2, networks_needed(4))
    assert few["needed"] > 2
    pgd = by.loc["pgd"]
    assert pgd["n_method"] == 0 and math.isnan(pgd["p"]) and "no results of pgd" in pgd["note"]
    assert [r.verdict for r in report.claims] == list(csv["verdict"])
    assert out / "claims.csv" in report.files


def test_measures_resolve_as_the_headline_does(claim_runs: Path, tmp_path: Path) -> None:
    claims = [_claim("head", "laplacian", "gaussian", "higher"),
              _claim("area", "laplacian", "auc:gaussian", "higher"),
              _claim("other", "laplacian", "gaussian:accuracy@-5", "higher"),
              _claim("margin", "laplacian", "clean", "not-worse", margin=0.01),
              _claim("df", "laplacian", "deepfool", "higher"),
              _claim("nostrength", "laplacian", "gaussian@3", "higher"),
              _claim("nometric", "laplacian", "deepfool:nope", "higher"),
              _claim("nodata", "laplacian", "clean", "higher", dataset="cifar10")]
    report = _report(claim_runs, tmp_path / "rep", claims)
    rows = {r.claim.id: r for r in report.claims}
    head = next(h for h in report.headlines)
    gauss = next(c for c in head.columns if c.key == "gaussian")
    assert rows["head"].setting.startswith(f"gaussian snr_db={gauss.param_value:g}")
    assert rows["area"].metric == "accuracy_auc" and rows["area"].verdict == "supported"
    assert rows["other"].setting.startswith("gaussian snr_db=-5")
    assert rows["margin"].verdict == "supported"  # within 1 point of ce's clean accuracy
    assert rows["df"].metric == "mean_l2" and rows["df"].verdict == "supported"
    assert "strengths: -5, 0, 10" in rows["nostrength"].note
    assert "no metric nope" in rows["nometric"].note
    assert rows["nodata"].verdict == "not measured" and "cifar10" in rows["nodata"].note


def test_page_tables_and_exports_show_the_claims_first(claim_runs: Path, tmp_path: Path
                                                        ) -> None:
    out = tmp_path / "rep"
    _report(claim_runs, out)
    page = (out / "index.html").read_text()
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    question = page.index('class="question"')
    claims = page.index('<section id="claims">')
    assert question < claims < page.index('class="note">Runs:') < page.index('id="headline"')
    section = page[claims:page.index("</section>", claims)]
    for cls, verdict in (("v-yes", "supported"), ("v-no", "contradicted"),
                         ("v-none", "not shown"), ("v-cannot", "cannot be shown")):
        assert f'class="{cls}"' in section and verdict in section
    assert f"needs {networks_needed(4)} networks per method" in section
    assert "+8.9 pt" in section and "LapNet, Table 2" in section
    assert "+10.0 [" in section  # percentage points
    assert "td.v-yes" in page  # the claims' colours are styled
    md = (out / "tables.md").read_text()
    assert md.index("## Claims") < md.index("## mnist5k / smallcnn: headline")
    assert "| noise: claim noise (mnist5k / smallcnn: laplacian vs ce, gaussian@0, higher)" in md
    assert "| cannot be shown: needs" in md
    assert "Declared claims" in (out / "tables.tex").read_text()


def test_no_claims_no_claim_output(claim_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    report = build_report(claim_runs, out, ReportConfig(plots=False))
    assert report.claims == [] and not (out / "claims.csv").exists()
    page = (out / "index.html").read_text()
    assert 'id="claims"' not in page and "v-yes" not in page
    assert "Claims" not in (out / "tables.md").read_text()


def test_claims_do_not_change_the_exploratory_comparisons(claim_runs: Path, tmp_path: Path
                                                          ) -> None:
    plain = build_report(claim_runs, tmp_path / "a", ReportConfig(plots=False))
    with_claims = _report(claim_runs, tmp_path / "b")
    pd.testing.assert_frame_equal(plain.comparisons, with_claims.comparisons)
    # and the claims' Holm ignores the comparisons: as judged on their own
    noise = with_claims.claims[0]
    alone = judge_claims([ClaimInput(r.claim.id, *_values(with_claims, r), r.claim.direction)
                          for r in with_claims.claims if r.measured])
    assert noise.p_holm == pytest.approx(alone[0].p_holm)
    assert noise.p_holm < 4 / math.comb(20, 10) + 1e-12


def _values(report, row) -> tuple[np.ndarray, np.ndarray]:
    net = report.networks
    here = net[(net["perturbation"] == row.perturbation) & (net["metric"] == row.metric)]
    if row.perturbation == "gaussian":
        here = here[here["param_value"] == 0.0]
    return tuple(here.loc[here["method"] == m, "value"].to_numpy()
                 for m in (row.claim.method, row.claim.baseline))


def test_a_claim_that_could_mean_several_datasets_is_an_error(claim_runs: Path,
                                                              tmp_path: Path) -> None:
    for s in range(2):
        for method, values in (("ce", ce_values(s)), ("laplacian", lap_values(s))):
            run = make_run(tmp_path / "runs" / "fashion", method, s, _rows(*values))
            df = pd.read_csv(run / "results.csv")
            df["dataset"] = "fashion-mnist"
            df.to_csv(run / "results.csv", index=False)
    with pytest.raises(RbgError, match="fashion-mnist / smallcnn, mnist5k / smallcnn"):
        _report(claim_runs, tmp_path / "rep", CLAIMS[:1])
    named = _report(claim_runs, tmp_path / "rep2", [{**CLAIMS[0], "dataset": "mnist5k"}])
    assert named.claims[0].verdict == "supported"


def _write(path: Path, claims: list[dict]) -> Path:
    def value(v: object) -> str:
        return f'"{v}"' if isinstance(v, str) else repr(v)
    path.write_text("".join("[[claims]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in c.items())
                            + "\n" for c in claims))
    return path


def test_cli_report_claims_end_to_end(claim_runs: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from robustbench_graph.cli.console import console

    monkeypatch.setattr(console, "width", 100)
    claims = _write(tmp_path / "claims.toml",
                    [*CLAIMS, _claim("ghost", "lmd", "clean", "higher"),
                     _claim("laplacian-gaussian-noise-vs-ce", "laplacian", "gaussian@0",
                            "higher")])
    out = tmp_path / "rep"
    result = cli("report", "--runs", claim_runs, "--out", out, "--no-plots", "--claims", claims)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= 100
    assert any("Claims: one-sided, Holm over 5 measured" in ln for ln in lines)
    # a 30-character id stays whole at 100 columns, its measure on the line below
    row = next(i for i, ln in enumerate(lines) if "laplacian-gaussian-noise-vs-ce" in ln)
    assert lines[row + 1].strip() == "gaussian@0"
    assert lines.index(next(ln for ln in lines if "Claims:" in ln)) < lines.index(
        next(ln for ln in lines if "mnist5k / smallcnn: headline" in ln))
    for verdict in ("supported", "contradicted", "not shown", "cannot be shown",
                    "not measured"):
        assert any(verdict in ln for ln in lines), verdict
    assert any(ln.lstrip().startswith("noise") and "10+10" in ln for ln in lines)
    assert "not measured: ghost: no run of lmd" in result.stdout
    warnings = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert warnings == ["warning: claims name method(s) 'lmd' that no run has; methods "
                        "present: ce, laplacian, sp"]
    assert (out / "claims.csv").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("[[claims]\n", "is not valid TOML"),
    ('[[claims]]\nid = "a"\ntext = "t"\nmethod = "x"\nbaseline = "ce"\nmeasure = "clean"\n'
     'direction = "higher"\nmargin = 0.01\n', "a margin goes with direction"),
    ("title = 'no claims'\n", "declares no [[claims]]"),
])
def test_cli_bad_claims_file_is_one_line(claim_runs: Path, tmp_path: Path, text: str,
                                         message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    out = tmp_path / "rep"
    result = cli("report", "--runs", claim_runs, "--out", out, "--claims", bad)
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.output and not out.exists()


def test_power_is_said_plainly_at_three_networks_each(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from robustbench_graph.cli.console import console

    monkeypatch.setattr(console, "width", 100)
    root = tmp_path / "runs"
    for s in range(3):
        make_run(root, "ce", s, _rows(*ce_values(s)))
        make_run(root, "laplacian", s, _rows(*lap_values(s)))
    out = tmp_path / "rep"
    result = cli("report", "--runs", root, "--out", out, "--no-plots")
    assert result.exit_code == 0, result.output
    k = len(pd.read_csv(out / "comparisons.csv"))
    sentence = (f"With 3 networks per method and {k} comparisons, no comparison can be "
                f"significant after Holm (smallest possible p 0.1 x {k}); the intervals are per "
                "comparison, uncorrected.")
    assert sentence in " ".join(result.stdout.split())
    page = (out / "index.html").read_text()
    section = page[page.index('id="comparisons"'):page.index('id="methods"')]
    assert sentence in section and "sig." not in section
    # with 10 networks each a comparison can be significant: no sentence, the star column
    for s in range(3, SEEDS):
        make_run(root, "ce", s, _rows(*ce_values(s)))
        make_run(root, "laplacian", s, _rows(*lap_values(s)))
    big = build_report(root, tmp_path / "rep10", ReportConfig(plots=False))
    assert big.power == ""
    assert "sig." in (tmp_path / "rep10" / "index.html").read_text()



def test_a_claim_may_name_a_method_by_its_recorded_id(tmp_path: Path) -> None:
    """A claim names ``noisy_sigma0.3`` (the method id an experiment file's grid and
    config.json use) where the report shows the method as ``noisy sigma=0.3``."""
    import json

    root = tmp_path / "runs"
    for s in range(4):
        make_run(root, "ce", s, _rows(*ce_values(s)))
        run = make_run(root, "noisy_sigma0.3", s, _rows(*lap_values(s)), loss="noisy")
        record = json.loads((run / "config.json").read_text())
        record["train"]["loss_options"] = {"sigma": "0.3"}
        (run / "config.json").write_text(json.dumps(record))
    report = _report(root, tmp_path / "rep",
                     [_claim("noise", "noisy_sigma0.3", "gaussian@0", "higher")])
    (row,) = report.claims
    assert "noisy_sigma0.3" not in report.methods  # the report's own name differs
    assert row.verdict == "supported" and (row.n_method, row.n_baseline) == (4, 4)
    assert not any("no run has" in w for w in report.warnings)


def test_the_page_asks_about_accuracy_when_only_clean_accuracy_was_measured(
        tmp_path: Path) -> None:
    for seed in (0, 1):
        make_run(tmp_path / "runs", "ce", seed, [("clean", "none", 0.0, 0, "accuracy", 0.97)])
        make_run(tmp_path / "runs", "sp", seed, [("clean", "none", 0.0, 0, "accuracy", 0.96)])
    _report(tmp_path / "runs", tmp_path / "rep", claims=[])
    page = (tmp_path / "rep" / "index.html").read_text()
    question = page[page.index('class="question"'):]
    assert "<b>sp</b> as accurate as the baseline <b>ce</b>" in question
    assert "more robust" not in question[:question.index("</p>")]
    assert "accuracies in percent" in page and "DeepFool in L2" not in page  # not measured
