"""Issue 8: a matrix of bad inputs across train, attack, report, smoothness and list.

Each is answered by one readable line on stderr and a non-zero exit, with no traceback, and
nothing under the runs folder changes (its files are hashed before and after).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import cli


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, digits_run) -> Path:
    """runs/ (one attacked run), plus folders with a foreign or non-numeric results file and a
    run whose config names another model."""
    root = tmp_path_factory.mktemp("bad-input")
    good = root / "runs" / digits_run.name
    shutil.copytree(digits_run, good)
    assert cli("attack", good, "--suite", "clean").exit_code == 0
    for name, text in {
        "foreign": "a,b\n1,2\n",
        "nonnumeric": (good / "results.csv").read_text().replace(",accuracy,", ",accuracy,x")
        .replace("accuracy,x0.", "accuracy,abc"),
    }.items():
        run = root / name / digits_run.name
        shutil.copytree(good, run)
        (run / "results.csv").write_text(text)
    other = root / "othermodel" / digits_run.name
    shutil.copytree(good, other)
    config = json.loads((other / "config.json").read_text())
    config["train"]["model"] = "preactresnet18"
    (other / "config.json").write_text(json.dumps(config))
    (root / "empty").mkdir()
    (root / "afile").write_text("not a folder")
    return root


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".rbg.lock":
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


T = ["train", "--dataset", "digits", "--epochs", "1", "--out", "{root}/runs"]
CASES = [
    # train
    ("unknown dataset", [*T, "--dataset", "imagenet"], "unknown dataset"),
    ("unknown model", [*T, "--model", "vgg"], "unknown model"),
    ("unknown loss", [*T, "--loss", "hinge"], "unknown loss"),
    ("malformed seeds", [*T, "--seeds", "1-x"], "malformed seed"),
    ("reversed seed range", [*T, "--seeds", "5-2"], "malformed seed"),
    ("zero epochs", [*T, "--epochs", "0"], "--epochs must be positive"),
    ("zero batch", [*T, "--batch-size", "0"], "--batch-size must be positive"),
    ("negative lr", [*T, "--lr", "-0.1"], "--lr must be positive"),
    ("momentum >= 1", [*T, "--momentum", "1.5"], "--momentum"),
    ("milestone past the end", [*T, "--lr-milestones", "5"], "milestone"),
    ("unknown loss option", [*T, "-o", "gamma=1"], "unknown option 'gamma'"),
    ("non-numeric loss option", [*T, "--loss", "laplacian", "-o", "gamma=abc"],
     "not a valid float"),
    ("unwritable out", [*T[:-1], "{root}/afile/sub"], "not writable"),
    ("dataset folder missing files",
     ["train", "--dataset", "cifar10", "--data-dir", "{root}/empty", "--out", "{root}/runs"],
     "--download"),
    ("unknown device", [*T, "--device", "tpu"], "unknown device"),
    # issue 15, item 6: numbers out of range, caught before any folder is made
    ("seed above 2^64", [*T, "--seeds", "18446744073709551616"], "out of range"),
    ("ten billion seeds", [*T, "--seeds", "0-99999999999"], "out of range"),
    ("a million seeds", [*T, "--seeds", "0-999999"], "more than 10000 seeds"),
    ("negative split seed", [*T, "--split-seed", "-1"], "--split-seed must be in"),
    ("negative feature dim", [*T, "--feature-dim", "-1"], "--feature-dim must be an integer"),
    ("huge width", [*T, "--width", "100000"], "--width must be an integer in 1..1024"),
    ("feature dim on preactresnet18", [*T, "--model", "preactresnet18", "--feature-dim", "8"],
     "has no --feature-dim option"),
    ("channels-last below 8 channels",
     [*T, "--model", "preactresnet18", "--width", "4", "--channels-last"], "at least 8"),
    ("infinite lr", [*T, "--lr", "inf"], "--lr must be a finite number"),
    # attack
    ("unknown perturbation", ["attack", "--runs", "{root}/runs", "--suite", "blur"],
     "unknown perturbation"),
    ("missing runs folder", ["attack", "--runs", "{root}/nope"], "no such folder"),
    ("empty runs folder", ["attack", "--runs", "{root}/empty"], "no run folders"),
    ("SNR out of range", ["attack", "--runs", "{root}/runs", "-p", "gaussian.snr_db=999"],
     "out of range"),
    ("dropout p = 1", ["attack", "--runs", "{root}/runs", "-p", "dropout.p=1"], "out of range"),
    ("one-bit quantisation", ["attack", "--runs", "{root}/runs", "-p", "quantize.bits=1"],
     "out of range"),
    ("L-inf budget above 1",
     ["attack", "--runs", "{root}/runs", "-p", "fgsm-before-norm.linf_eps=2"], "out of range"),
    ("zero samples", ["attack", "--runs", "{root}/runs", "--samples", "0"], "must be positive"),
    # issue 15, items 3 and 6: non-finite and degenerate attack settings
    ("NaN DeepFool overshoot", ["attack", "--runs", "{root}/runs", "-p", "deepfool.overshoot=nan"],
     "must be a finite number"),
    ("infinite DeepFool overshoot",
     ["attack", "--runs", "{root}/runs", "-p", "deepfool.overshoot=inf"], "finite number"),
    ("NaN SNR", ["attack", "--runs", "{root}/runs", "-p", "gaussian.snr_db=nan"], "finite number"),
    ("one DeepFool candidate",
     ["attack", "--runs", "{root}/runs", "-p", "deepfool.candidates=1"], "at least 2"),
    ("zero DeepFool candidates",
     ["attack", "--runs", "{root}/runs", "-p", "deepfool.candidates=0"], "at least 2"),
    ("empty suite", ["attack", "--runs", "{root}/runs", "--suite", ""], "--suite is empty"),
    ("results with foreign columns", ["attack", "--runs", "{root}/foreign", "--suite", "clean"],
     "not an rbg results file"),
    ("results with non-numeric values",
     ["attack", "--runs", "{root}/nonnumeric", "--suite", "clean"], "non-numeric value"),
    ("run folder of a different model",
     ["attack", "--runs", "{root}/othermodel", "--suite", "clean"], "does not match model"),
    # report
    ("report of a missing folder", ["report", "--runs", "{root}/nope", "--out", "{root}/rep"],
     "does not exist"),
    ("report of an empty folder", ["report", "--runs", "{root}/empty", "--out", "{root}/rep"],
     "no run folders"),
    ("report of foreign results only",
     ["report", "--runs", "{root}/foreign", "--out", "{root}/rep"], "foreign"),
    # smoothness
    ("smoothness of a missing folder", ["smoothness", "{root}/nope", "--out", "{root}/sm"],
     "does not exist"),
    ("smoothness of an empty folder", ["smoothness", "{root}/empty", "--out", "{root}/sm"],
     "no run folders"),
    # list
    ("list of an unknown registry", ["list", "widgets"], "unknown registry"),
]


def test_the_matrix_has_at_least_25_distinct_bad_inputs():
    assert len({name for name, _, _ in CASES}) >= 25


@pytest.mark.parametrize(("name", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(workspace, name, args, message):
    before = _digest(workspace)
    result = cli(*[a.format(root=workspace) for a in args])
    assert result.exit_code not in (0, None), name
    assert message in result.output.replace("\n", " "), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) >= 1 and all(len(e) < 400 for e in errors)
    assert _digest(workspace) == before
