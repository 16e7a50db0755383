"""The form of a declared claim (robustbench_graph.claims): parsed, or one line saying why not."""

from __future__ import annotations

import pytest

from robustbench_graph.claims import Measure, load_claims, parse_claims, parse_measure
from robustbench_graph.errors import RbgError

GOOD = {"id": "g", "text": "Laplacian beats CE under noise", "method": "laplacian",
        "baseline": "ce", "measure": "gaussian@5", "direction": "higher",
        "source": "LapNet, Table 2", "paper_value": "+8.9 pt"}


@pytest.mark.parametrize(("text", "expected"), [
    ("clean", Measure("clean", "clean")),
    ("gaussian", Measure("gaussian", "gaussian")),
    ("gaussian@5", Measure("gaussian@5", "gaussian", 5.0)),
    ("pgd@0.3", Measure("pgd@0.3", "pgd", 0.3)),
    ("auc:gaussian", Measure("auc:gaussian", "gaussian", area=True)),
    ("deepfool:median_l2", Measure("deepfool:median_l2", "deepfool", None, "median_l2")),
    ("curvature:kappa_median@0", Measure("curvature:kappa_median@0", "curvature", 0.0,
                                         "kappa_median")),
])
def test_measures_parse(text, expected):
    assert parse_measure(text) == expected


@pytest.mark.parametrize("text", ["", "auc:", "auc:a:b", "gaussian@", "gaussian@x",
                                  "gaussian@nan", "a:", "a:b:c", "clean@1", "clean:accuracy"])
def test_malformed_measures_are_one_line(text):
    with pytest.raises(RbgError, match="measure") as err:
        parse_measure(text)
    assert "\n" not in str(err.value)


def test_a_good_claim_parses():
    (claim,) = parse_claims([GOOD], "file.toml")
    assert claim.method == "laplacian" and claim.measure.strength == 5.0
    assert claim.margin is None and claim.source == "LapNet, Table 2"


@pytest.mark.parametrize(("change", "message"), [
    ({"margin": 0.01}, "margin goes with direction"),
    ({"direction": "not-worse"}, "needs a margin"),
    ({"direction": "not-worse", "margin": -1}, "margin must be a number >= 0"),
    ({"direction": "not-worse", "margin": True}, "margin must be a number"),
    ({"direction": "sideways"}, "direction 'sideways' is not one of"),
    ({"colour": "red"}, "unknown key"),
    ({"method": ""}, "method must be a non-empty string"),
    ({"method": 3}, "method must be a non-empty string"),
    ({"baseline": "laplacian"}, "method and baseline are the same"),
    ({"measure": "gaussian@loud"}, "measure"),
])
def test_bad_claims_are_one_line(change, message):
    with pytest.raises(RbgError, match=message) as err:
        parse_claims([{**GOOD, **change}], "file.toml")
    assert "\n" not in str(err.value) and "file.toml: claim g" in str(err.value)


def test_missing_keys_duplicates_and_shapes():
    record = dict(GOOD)
    del record["measure"]
    with pytest.raises(RbgError, match="missing key 'measure'"):
        parse_claims([record], "f")
    with pytest.raises(RbgError, match="two claims have the id 'g'"):
        parse_claims([GOOD, GOOD], "f")
    with pytest.raises(RbgError, match="array of tables"):
        parse_claims({"id": "g"}, "f")
    with pytest.raises(RbgError, match="must be a table"):
        parse_claims(["g"], "f")
    assert parse_claims(None, "f") == ()


def test_a_not_worse_claim_keeps_its_margin():
    (claim,) = parse_claims([{**GOOD, "measure": "clean", "direction": "not-worse",
                              "margin": 0.01}], "f")
    assert claim.direction == "not-worse" and claim.margin == 0.01


def test_claims_files(tmp_path):
    good = tmp_path / "claims.toml"
    good.write_text('[[claims]]\nid = "a"\ntext = "t"\nmethod = "lmd"\nbaseline = "ce"\n'
                    'measure = "clean"\ndirection = "not-worse"\nmargin = 0.015\n')
    (claim,) = load_claims(good)
    assert claim.margin == 0.015
    for name, text, message in [
        ("none.toml", 'name = "x"\n', "declares no"),
        ("bad.toml", "[[claims]\n", "not valid TOML"),
    ]:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(RbgError, match=message):
            load_claims(path)
    with pytest.raises(RbgError, match="not a readable file"):
        load_claims(tmp_path / "missing.toml")
    with pytest.raises(RbgError, match="not a readable file"):
        load_claims(tmp_path)
