"""Claims in experiment files: checked against the grid when the file is read (one line, exit 1,
nothing created), their power said at planning time, their verdicts after ``rbg run``."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from robustbench_graph.experiment import spec
from robustbench_graph.experiment.claims_check import claims_power
from robustbench_graph.report.hypotheses import networks_needed

from conftest import cli

GRID = textwrap.dedent('''
    name = "grid"
    [train]
    datasets = {datasets}
    losses = ["ce", "laplacian"]
    seeds = "{seeds}"
    epochs = 1
    [attack]
    suite = {suite}
    settings = {{ gaussian = {{ draws = 2 }} }}
''')
CLAIM = textwrap.dedent('''
    [[claims]]
    id = "{id}"
    text = "The Laplacian regulariser makes networks more robust to Gaussian noise than CE"
    method = "{method}"
    baseline = "ce"
    measure = "{measure}"
    direction = "{direction}"
''')


SUITE = '["clean", "gaussian", "curvature"]'


def grid(tmp_path, *claims: dict, datasets: str = '["digits"]', seeds: str = "0-2",
         suite: str = SUITE):
    """An experiment file of CE and Laplacian with ``claims`` (each: the fields that differ
    from a Gaussian-noise claim, and ``extra`` lines)."""
    text = GRID.format(datasets=datasets, seeds=seeds, suite=suite)
    for i, c in enumerate(claims):
        fields = {"id": f"c{i}", "method": "laplacian", "measure": "gaussian@-5",
                  "direction": "higher", "extra": "", **c}
        text += CLAIM.format(**fields) + fields["extra"]
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("claim", "datasets", "message"), [
    ({"method": "lmd"}, '["digits"]',
     "claim c0: method 'lmd' is not a method of the grid; valid: ce, laplacian"),
    ({"measure": "gaussian@3"}, '["digits"]',
     "claim c0: measure 'gaussian@3': strength 3 is not swept for gaussian; valid: -10, -5, "
     "0, 5, 10"),
    ({"measure": "pgd@0.1"}, '["digits"]',
     "claim c0: measure 'pgd@0.1': family 'pgd' is not in the suite; valid: clean, gaussian, "
     "curvature"),
    ({"measure": "curvature:kappa_max"}, '["digits"]',
     "curvature declares no metric 'kappa_max'; valid: kappa_median, kappa_mean"),
    ({"extra": "margin = 0.01\n"}, '["digits"]',
     "claim c0: a margin goes with direction = \"not-worse\" only"),
    ({}, '["digits", "mnist5k"]',
     "claim c0: the grid has several datasets; say which with dataset = one of digits, "
     "mnist5k"),
    ({"extra": 'dataset = "cifar10"\n'}, '["digits"]',
     "claim c0: dataset 'cifar10' is not in the grid; valid: digits"),
    ({"measure": "curvature@1"}, '["digits"]', "curvature sweeps no strength; write 'curvature'"),
    ({"measure": "auc:clean"}, '["digits"]', "clean has no curve here"),
    ({"measure": "curvature:pearson_r", "direction": "not-worse", "extra": "margin = 0.1\n"},
     '["digits"]', "pearson_r of curvature has no better direction"),
])
def test_a_bad_claim_is_one_line_and_nothing_runs(tmp_path, claim, datasets, message):
    path = grid(tmp_path, claim, datasets=datasets)
    for dry in (["--dry-run"], []):
        result = cli("run", path, "--out", tmp_path / "out", *dry)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.output
        assert str(path) in lines[0]
        assert not (tmp_path / "out").exists()


def test_good_claims_parse_into_the_experiment(tmp_path):
    path = grid(tmp_path, {}, {"measure": "clean", "direction": "not-worse",
                               "extra": "margin = 0.01\n"},
                {"measure": "curvature", "direction": "lower"},
                {"measure": "auc:gaussian"}, {"measure": "curvature:pearson_r"})
    exp = spec.load(str(path))
    assert [c.id for c in exp.claims] == ["c0", "c1", "c2", "c3", "c4"]
    assert exp.claims[1].margin == 0.01 and exp.claims[0].measure.strength == -5


def test_the_dry_run_says_which_claims_cannot_be_shown(tmp_path):
    path = grid(tmp_path, {}, {"id": "lapnet-gaussian", "measure": "gaussian"}, seeds="0-2")
    result = cli("run", path, "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "claim c0 cannot be shown with 3 networks per method (4 needed)" in lines
    assert "claim lapnet-gaussian cannot be shown with 3 networks per method (4 needed)" in lines
    assert ('2 claims (level 0.05, Holm): none can be shown with 3 networks per '
            'method; use seeds = "0-3"') in lines
    assert lines.index("claim c0 cannot be shown with 3 networks per method (4 needed)") > next(
        i for i, x in enumerate(lines) if "units in" in x)
    assert not (tmp_path / "out").exists()
    path = grid(tmp_path, {}, {"id": "x", "measure": "gaussian"}, seeds="0-3")
    result = cli("run", path, "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "cannot be shown" not in result.output
    assert ("2 claims (level 0.05, Holm): each can be shown with 4 networks per method "
            "(4 needed)") in result.output.splitlines()


def test_without_claims_the_dry_run_says_nothing_of_them(tmp_path):
    (tmp_path / "g.toml").write_text(GRID.format(datasets="[\"digits\"]", seeds="0", suite=SUITE))
    result = cli("run", tmp_path / "g.toml", "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "can be shown" not in result.output and "Holm" not in result.output


def test_every_shipped_file_parses_and_its_claims_can_be_shown():
    with_claims = 0
    for name in spec.shipped_experiments():
        exp = spec.load(name)
        power = claims_power(exp.claims, exp.seeds)
        if power is None:
            continue
        with_claims += 1
        assert power.shown, (name, power)
        assert len(exp.seeds) >= networks_needed(len(exp.claims)), name
        assert all(c.source for c in exp.claims), name
    # every file but the demo and the three sweeps (read on validation accuracy, no claims)
    assert with_claims == len(spec.shipped_experiments()) - 4
    lapnet = spec.load("lapnet-fashion-mnist")
    assert {(c.method, c.measure.family) for c in lapnet.claims} >= {
        (m, f) for m in ("laplacian", "laplacian+parseval")
        for f in ("clean", "gaussian", "fgsm-before-norm", "fgsm-after-norm", "deepfool")}
    assert {c.measure.family for c in lapnet.claims if c.method == "laplacian"} >= {
        "dropout", "quantize"}
    clean = [c for c in lapnet.claims if c.measure.family == "clean" and c.method == "laplacian"]
    assert clean[0].direction == "not-worse" and clean[0].margin == 0.02


def test_rbg_run_prints_the_claims_verdicts_before_the_report(tmp_path):
    path = grid(tmp_path, {"id": "lap-gauss"}, seeds="0-2", suite='["clean", "gaussian"]')
    result = cli("run", path, "--out", tmp_path / "out", "--workers", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    power = lines.index("1 claim (level 0.05, Holm): it can be shown with 3 networks per "
                        "method (3 needed)")
    assert power < next(i for i, x in enumerate(lines) if x.startswith("[1/"))
    report = next(i for i, x in enumerate(lines) if x.startswith("report: "))
    claim = next(i for i, x in enumerate(lines) if "lap-gauss" in x)
    assert claim < report
    assert any(v in lines[claim] for v in ("supported", "contradicted", "not shown")), \
        result.output
    table = pd.read_csv(tmp_path / "out" / "report" / "claims.csv")
    assert list(table["id"]) == ["lap-gauss"] and table["n_method"].iloc[0] == 3
