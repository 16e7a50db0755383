"""``rbg attack`` end to end on a tiny trained run, idempotence, and bad input."""

import hashlib
import shutil

import pandas as pd
import pytest

from robustbench_graph.perturbations import suite_names
from robustbench_graph.rundir.results import COLUMNS

from conftest import cli

FAST_SETTINGS = ["autoattack.version=cheap", "gaussian.draws=3", "gaussian-iid.draws=3",
                 "dropout.repeats=3", "deepfool.samples=40", "deepfool.backend=foolbox",
                 "mnist-c.corruption=contrast,rotate", "curvature.probes=2",
                 "lipschitz.draws=2", "lipschitz.images=50"]
FAST = ["--suite", "all", *(a for s in FAST_SETTINGS for a in ("-p", s)), "--device", "cpu"]


def fast(suite: str) -> list[str]:
    """--suite ``suite`` with the FAST settings of its families only (a setting of a family
    outside the suite is an error)."""
    names = suite.split(",")
    return ["--suite", suite, *(a for s in FAST_SETTINGS if s.split(".")[0] in names
                                for a in ("-p", s)), "--device", "cpu"]


@pytest.fixture
def runs(tmp_path, digits_run):
    """Two copies of the trained digits run (as two seeds of one method)."""
    root = tmp_path / "runs"
    for seed in (0, 1):
        shutil.copytree(digits_run, root / f"{digits_run.name[:-1]}{seed}")
    return root


def _hash_tree(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".rbg.lock":
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_attack_whole_suite_tidy_and_idempotent(runs):
    result = cli("attack", "--runs", runs, *FAST)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(next(runs.glob("*seed0")) / "results.csv")
    assert tuple(table.columns) == COLUMNS
    assert set(table.perturbation) == set(suite_names("all", "grey"))  # every grey family
    assert pd.api.types.is_numeric_dtype(table.value)
    acc = table[table.metric == "accuracy"]
    assert acc.value.between(0, 1).all()
    clean = acc[acc.perturbation == "clean"].value.item()
    # The attacks that count only images correct *and* not fooled never beat clean (random
    # perturbations may, by chance: 8-bit weights once scored 98.3% against 98.1% clean).
    attacks = acc[acc.perturbation.isin(["pgd", "autoattack"])]
    attacked = attacks.groupby(["perturbation", "param", "param_value"]).value.mean()
    assert len(attacked) and (attacked <= clean + 1e-12).all(), attacked[attacked > clean]
    assert "cells computed" in result.output
    # not a terminal: one plain line per computed cell (with its headline value), no bar
    lines = [ln for ln in result.output.splitlines() if ln.startswith(next(runs.glob("*seed0"))
                                                                      .name + ": ")]
    cells = len(set(zip(table.perturbation, table.param, table.param_value, strict=True)))
    assert len(lines) == 2 * cells  # two copies of one run, one line per cell each
    assert any(ln.startswith(f"{lines[0].split(':')[0]}: clean (1/{cells})") and "accuracy"
               in ln for ln in lines) and not any("━" in ln for ln in lines)
    # DeepFool keeps each image's minimal distance: 0 = misclassified when clean, inf = failed
    fool = table[table.perturbation == "deepfool"].set_index("metric")
    (kept,) = (next(runs.glob("*seed0")) / "per_image").glob("deepfool-norm=2-*.csv")
    assert kept.name.endswith(f"-{fool.settings.iloc[0]}.csv")
    distance = pd.read_csv(kept)["distance"]
    assert len(distance) == 40
    n_ok = fool.loc["success_rate", "n"]
    assert (distance > 0).sum() == n_ok  # correctly classified when clean
    finite = distance[(distance > 0) & (distance < float("inf"))]
    assert len(finite) == round(fool.loc["success_rate", "value"] * n_ok)
    assert finite.mean() == pytest.approx(fool.loc["mean_l2", "value"], rel=1e-6)
    before = (next(runs.glob("*seed0")) / "results.csv").read_bytes()
    again = cli("attack", "--runs", runs, *FAST)
    assert again.exit_code == 0 and "0 cells computed" in again.output
    assert (next(runs.glob("*seed0")) / "results.csv").read_bytes() == before


def test_one_summary_per_invocation_and_per_image_indices_under_samples(runs):
    """One summary table for the whole invocation (a row per run); DeepFool's per-image file
    indexes the test split also under --samples."""
    from robustbench_graph.config import ImageSubset
    from robustbench_graph.rundir.per_image import read_per_image

    result = cli("attack", "--runs", runs, "--suite", "clean,gaussian,quantize,deepfool",
                 "--samples", "60", "-p", "gaussian.draws=1", "-p", "deepfool.samples=20",
                 "-p", "deepfool.steps=5", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = result.output.splitlines()
    assert sum("cells computed" in ln for ln in out) == 1  # one summary, not one per run
    assert sum(ln.startswith("results: ") for ln in out) == 1  # one line for all runs
    seed0 = next(runs.glob("*seed0"))
    table = pd.read_csv(seed0 / "results.csv")
    fool = table[table.perturbation == "deepfool"]
    kept = read_per_image(seed0, "deepfool", "norm", 2.0, fool.settings.iloc[0])
    outer = ImageSubset(60, "spaced").indices(len_test(seed0))
    inner = ImageSubset(20, "spaced").indices(60)
    assert kept["image"].tolist() == [outer[i] for i in inner]


def test_same_command_twice_gives_identical_results(runs, tmp_path):
    other = tmp_path / "again"
    shutil.copytree(runs, other)
    args = fast("clean,gaussian,dropout,fgsm-before-norm")
    assert cli("attack", "--runs", runs, *args).exit_code == 0
    assert cli("attack", "--runs", other, *args).exit_code == 0
    for run in runs.iterdir():
        assert (run / "results.csv").read_bytes() == (other / run.name / "results.csv"
                                                      ).read_bytes()


def test_overwrite_recomputes_only_requested_cells(runs):
    assert cli("attack", "--runs", runs, *fast("clean,quantize")).exit_code == 0
    result = cli("attack", "--runs", runs, *fast("clean"), "--overwrite")
    assert result.exit_code == 0
    table = pd.read_csv(next(runs.glob("*seed0")) / "results.csv")
    assert sorted(set(table.perturbation)) == ["clean", "quantize"]
    assert len(table[table.perturbation == "clean"]) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "clean,blur"], "unknown perturbation 'blur'; valid:"),
        (["-p", "gaussian.snr_db=500"], "out of range"),
        (["-p", "dropout.p=1.5"], "out of range"),
        (["-p", "fgsm-before-norm.snr_db=abc"], "not a valid float"),
        (["-p", "deepfool.backend=cleverhans"], "unknown DeepFool backend"),
        (["-p", "gaussian.draws=0"], "draws must be in"),
    ],
)
def test_bad_options_are_one_line_and_change_nothing(runs, args, message):
    digest = _hash_tree(runs)
    result = cli("attack", "--runs", runs, *args)
    assert result.exit_code == 1 and message in result.output.replace("\n", " ")
    assert "Traceback" not in result.output
    assert _hash_tree(runs) == digest


def test_runs_folder_without_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("attack", "--runs", tmp_path / "empty")
    assert result.exit_code == 1 and "no run folders" in result.output
    missing = cli("attack", "--runs", tmp_path / "nope")
    assert missing.exit_code == 1 and "no such folder" in missing.output


@pytest.mark.parametrize("damage", ["corrupt", "missing", "pickle"])
def test_bad_weights_fail_that_run_only(runs, damage):
    good, bad = sorted(runs.iterdir())
    weights = bad / "model.safetensors"
    if damage == "corrupt":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "missing":
        weights.unlink()
    else:
        import pickle

        weights.write_bytes(pickle.dumps({"x": 1}))
    result = cli("attack", "--runs", runs, *fast("clean"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "weights" in result.output
    assert (good / "results.csv").exists() and not (bad / "results.csv").exists()


def test_foreign_results_file_is_refused_and_kept(runs):
    good, bad = sorted(runs.iterdir())
    (bad / "results.csv").write_text("a,b\n1,2\n")
    result = cli("attack", "--runs", runs, *fast("clean"))
    assert result.exit_code == 1 and "not an rbg results file" in result.output
    assert (bad / "results.csv").read_text() == "a,b\n1,2\n"
    assert (good / "results.csv").exists()


def test_other_settings_are_refused_recomputed_under_overwrite_and_reported_apart(runs,
                                                                                  tmp_path):
    """Issue 14: a 50-image, 2-draw attack and then a default one must not silently share
    results; the report keeps the two settings apart and lists them."""
    import json

    seed0, seed1 = sorted(runs.iterdir())
    small = ["--suite", "clean,gaussian", "--samples", "50", "-p", "gaussian.draws=2",
             "--device", "cpu"]
    assert cli("attack", "--runs", runs, *small).exit_code == 0
    table = pd.read_csv(seed0 / "results.csv", keep_default_na=False)
    record = json.loads((seed0 / "attack.json").read_text())
    fp = table.loc[table.perturbation == "gaussian", "settings"].unique().item()
    assert record["settings"][fp]["settings"]["draws"] == 2
    assert record["settings"][fp]["settings"]["test_images"]["samples"] == 50
    assert set(table.loc[table.perturbation == "gaussian", "n"]) == {50}
    before = (seed0 / "results.csv").read_bytes()

    default = ["--suite", "clean,gaussian", "-p", "gaussian.draws=3", "--device", "cpu"]
    refused = cli("attack", "--runs", runs, *default)
    text = refused.output.replace("\n", " ")
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "other settings" in text and "--overwrite" in text
    assert "draws 2 -> 3" in text and "test_images.samples 50 -> all" in text
    assert (seed0 / "results.csv").read_bytes() == before  # nothing lost, nothing mixed

    assert cli("attack", seed1, *default, "--overwrite").exit_code == 0
    redone = pd.read_csv(seed1 / "results.csv", keep_default_na=False)
    assert set(redone.loc[redone.perturbation == "gaussian", "n"]) == {len_test(seed1)}
    assert redone.settings.nunique() == 2 and fp not in set(redone.settings)

    out = tmp_path / "report"
    assert cli("report", "--runs", runs, "--out", out, "--baseline", "ce").exit_code == 0
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    gauss = summary[(summary.perturbation == "gaussian") & (summary.metric == "accuracy")]
    assert set(gauss.variant) == {"draws=2, test_images.samples=50",
                                  "draws=3, test_images.samples=all"}
    assert set(gauss.n) == {1}  # never pooled across settings
    page = (out / "index.html").read_text()
    assert 'id="settings"' in page and fp in page and "draws=2" in page


def len_test(run_dir):
    from robustbench_graph import load_dataset, load_run

    run = load_run(run_dir)
    return len(load_dataset(run.train_config.dataset, False))


def test_a_strength_that_is_not_a_short_decimal_is_cached(runs):
    """1/3 is written to results.csv to 10 digits; the cell reads back as the same cell."""
    args = ["--suite", "downup", "-p", "downup.factor=0.333333333333333", "--device", "cpu"]
    assert cli("attack", "--runs", runs, *args).exit_code == 0
    again = cli("attack", "--runs", runs, *args)
    assert again.exit_code == 0 and "0 cells computed" in again.output
