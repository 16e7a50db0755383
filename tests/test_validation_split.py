"""Issue 28: the validation split (``rbg train --val-fraction``) and the best-validation
selection (``--select best-val``). The split is disjoint from the training and test images,
stratified, reproducible by its seed and recorded; training sees only the rest; the selection
never reads the test split."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from robustbench_graph import load_run
from robustbench_graph.config import TrainConfig
from robustbench_graph.data import (
    ImageData,
    indices_digest,
    load_dataset,
    split_indices,
    split_validation,
    validation_indices,
)
from robustbench_graph.data.files import read_sklearn_digits
from robustbench_graph.errors import RbgError
from robustbench_graph.rundir.folder import load_weights
from robustbench_graph.train import plan_runs, train_run
from robustbench_graph.train.selection import BestEpoch, evaluate

from conftest import cli

CPU = torch.device("cpu")
# lr 0.2 without milestones on digits: validation accuracy peaks before the last of 4 epochs
# (measured: 48.4, 88.2, 96.9, 92.0%), so "best" and "last" are different weights.
UNSTABLE = {"dataset": "digits", "epochs": 4, "lr": 0.2, "lr_milestones": ()}


def _digests(data: ImageData) -> set[str]:
    return {hashlib.sha256(data.images[i].numpy().tobytes()).hexdigest()
            for i in range(len(data))}


def _log(run_dir) -> list[dict[str, str]]:
    return list(csv.DictReader((run_dir / "train_log.csv").open()))


def _val_accuracies(run_dir) -> dict[int, float]:
    return {int(r["epoch"]): float(r["value"]) for r in _log(run_dir)
            if r["split"] == "val" and r["metric"] == "accuracy"}


def _run(out, datasets=None, on_progress=None, **kw):
    (spec,) = plan_runs(TrainConfig(**kw), [0], out)
    return spec, train_run(spec, device=CPU, datasets=datasets, on_progress=on_progress)


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_split_is_disjoint_from_training_and_test_images(name):
    train, test = load_dataset(name, True), load_dataset(name, False)
    split = split_validation(train, 0.2, seed=0)
    assert not set(split.val_index) & set(split.train_index)
    assert sorted([*split.val_index, *split.train_index]) == list(range(len(train)))
    val, rest, held_test = _digests(split.val), _digests(split.train), _digests(test)
    assert len(val) == len(split.val)  # no image twice: the digests name the images
    assert not val & rest and not val & held_test


def test_split_positions_map_to_file_rows_outside_the_test_split():
    _, labels = read_sklearn_digits()
    file_train = split_indices(labels, 0.2, 0, train=True)  # the rows load_dataset returns
    file_test = split_indices(labels, 0.2, 0, train=False)
    train = load_dataset("digits", True)
    assert np.array_equal(train.labels.numpy(), labels[file_train])
    keep, held = validation_indices(train.labels.numpy(), 0.2, 0)
    assert not set(file_train[held]) & set(file_test)
    assert not set(file_train[held]) & set(file_train[keep])


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2, 0.5])
def test_split_is_stratified(fraction):
    labels = load_dataset("mnist5k", True).labels.numpy()
    _, held = validation_indices(labels, fraction, 0)
    for c in range(10):
        n_c, held_c = int(np.sum(labels == c)), int(np.sum(labels[held] == c))
        assert abs(held_c - fraction * n_c) <= 1, (c, held_c, n_c)
    assert abs(len(held) - fraction * len(labels)) <= 10


def test_split_is_reproducible_by_its_seed():
    labels = load_dataset("digits", True).labels.numpy()
    a, b, c = (validation_indices(labels, 0.2, s)[1] for s in (0, 0, 1))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert indices_digest(a) == indices_digest(b) != indices_digest(c)


def test_split_refuses_fractions_that_hold_out_nothing_or_everything():
    labels = np.repeat(np.arange(3), 2)
    with pytest.raises(RbgError, match="holds out no image"):
        validation_indices(labels, 0.01, 0)
    with pytest.raises(RbgError, match="without a training image"):
        validation_indices(labels, 0.9, 0)


def test_split_is_recorded_and_logged(tmp_path):
    spec, _ = _run(tmp_path, dataset="digits", epochs=2, val_fraction=0.2, split_seed=3)
    record = json.loads((spec.run_dir / "config.json").read_text())
    assert record["train"]["val_fraction"] == 0.2 and record["train"]["select"] == "last"
    split = split_validation(load_dataset("digits", True, split_seed=3), 0.2, 3)
    assert record["validation"] == split.record()
    assert record["validation"]["seed"] == 3
    assert sum(record["validation"]["val_per_class"]) == record["validation"]["val_images"]
    assert record["validation"]["val_indices_sha256"] == indices_digest(split.val_index)
    rows = {(r["epoch"], r["split"], r["metric"]) for r in _log(spec.run_dir)}
    assert {(e, "val", m) for e in ("1", "2") for m in ("accuracy", "loss")} <= rows
    assert "selected_epoch" not in json.loads((spec.run_dir / "status.json").read_text())


def test_no_split_by_default_records_and_logs_nothing_new(tmp_path):
    spec, _ = _run(tmp_path, dataset="digits", epochs=1)
    record = json.loads((spec.run_dir / "config.json").read_text())
    assert "validation" not in record
    assert not {"val_fraction", "select"} & set(record["train"])
    assert all(r["split"] != "val" for r in _log(spec.run_dir))


def test_training_never_sees_the_held_out_images(tmp_path):
    train, test = load_dataset("digits", True), load_dataset("digits", False)
    split = split_validation(train, 0.2, 0)
    noisy = ImageData(train.images.clone(), train.labels, train.scale, train.info)
    held = torch.from_numpy(split.val_index)  # its images replaced by noise, labels kept
    noisy.images[held] = torch.randint(0, 17, noisy.images[held].shape, dtype=torch.uint8)
    a, _ = _run(tmp_path / "a", (train, test), dataset="digits", epochs=2, val_fraction=0.2)
    b, _ = _run(tmp_path / "b", (noisy, test), dataset="digits", epochs=2, val_fraction=0.2)
    wa, wb = (load_weights(s.run_dir / "model.safetensors") for s in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _val_accuracies(a.run_dir) != _val_accuracies(b.run_dir)  # the damage was seen


@pytest.fixture(scope="module")
def best_val(tmp_path_factory):
    """A ``--select best-val`` run on the whole digits splits: (spec, outcome)."""
    return _run(tmp_path_factory.mktemp("best-val"), val_fraction=0.2, select="best-val",
                **UNSTABLE)


def test_best_val_keeps_the_best_validation_epoch(best_val):
    spec, outcome = best_val
    val = _val_accuracies(spec.run_dir)
    best = max(val.values())
    chosen = min(e for e, v in val.items() if v == best)  # ties go to the earliest
    status = json.loads((spec.run_dir / "status.json").read_text())
    assert status["selected_epoch"] == chosen < 4
    assert status["selected_val_accuracy"] == best
    # the kept weights are that epoch's: they score its validation accuracy again
    run = load_run(spec.run_dir)
    split = split_validation(load_dataset("digits", True), 0.2, 0)
    assert evaluate(run.model, split.val, CPU)[0] == best != val[4]
    assert f"kept epoch {chosen}" in outcome.message


def test_best_val_never_reads_the_test_split(tmp_path, best_val):
    train, test = load_dataset("digits", True), load_dataset("digits", False)
    poisoned = ImageData(test.images.flip(0).contiguous(), (test.labels + 3) % 10,
                         test.scale, test.info)
    a = best_val[0]
    b, _ = _run(tmp_path, (train, poisoned), val_fraction=0.2, select="best-val", **UNSTABLE)
    sa, sb = (json.loads((s.run_dir / "status.json").read_text()) for s in (a, b))
    assert sa["selected_epoch"] == sb["selected_epoch"]
    assert sa["test_accuracy"] > 0.5 > sb["test_accuracy"]  # the poison reached the test
    wa, wb = (load_weights(s.run_dir / "model.safetensors") for s in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _val_accuracies(a.run_dir) == _val_accuracies(b.run_dir)


def test_best_val_survives_interruption(tmp_path, best_val):
    ref = best_val[0]

    def stop_in_epoch_4(p):
        if p.epoch == 4:
            raise KeyboardInterrupt

    (spec,) = plan_runs(TrainConfig(val_fraction=0.2, select="best-val", **UNSTABLE), [0],
                        tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train_run(spec, device=CPU, on_progress=stop_in_epoch_4)
    assert train_run(spec, device=CPU).status == "resumed"
    sr, sc = (json.loads((s.run_dir / "status.json").read_text()) for s in (ref, spec))
    assert sr["selected_epoch"] == sc["selected_epoch"] < 4  # chosen before the cut
    wr, wc = (load_weights(s.run_dir / "model.safetensors") for s in (ref, spec))
    assert all(torch.equal(wr[k], wc[k]) for k in wr)
    assert (ref.run_dir / "train_log.csv").read_text() == (spec.run_dir / "train_log.csv"
                                                          ).read_text()


def test_best_epoch_ties_keep_the_earliest():
    model, loss = torch.nn.Linear(2, 2), torch.nn.Module()
    best = BestEpoch()
    assert best.offer(1, 0.5, model, loss)
    with torch.no_grad():
        model.weight.add_(1)
    assert not best.offer(2, 0.5, model, loss)
    assert best.epoch == 1 and not torch.equal(best.model["weight"], model.weight)
    assert best.offer(3, 0.6, model, loss) and best.epoch == 3
    assert BestEpoch.from_state(best.state()).epoch == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--val-fraction", "1"], "--val-fraction must be a number in [0, 1), got 1.0"),
    (["--val-fraction", "-0.1"], "--val-fraction must be a number in [0, 1), got -0.1"),
    (["--val-fraction", "nan"], "--val-fraction must be a number in [0, 1), got nan"),
    (["--select", "foo"], "--select must be one of last, best-val, got 'foo'"),
    (["--select", "best-val"], "--select best-val needs a validation split"),
], ids=["one", "negative", "nan", "foo", "best-val-alone"])
def test_bad_values_give_one_line(tmp_path, args, message):
    result = cli("train", "--dataset", "digits", "--epochs", "1", "--out", tmp_path / "runs",
                 *args)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:") and message in errors[0], errors
    assert not (tmp_path / "runs").exists()


def test_a_value_that_is_not_a_number_gives_one_line(tmp_path):
    """Parsed by the command line itself: through the ``rbg`` entry point (``main``)."""
    out = subprocess.run([sys.executable, "-m", "robustbench_graph", "train", "--val-fraction",
                          "abc", "--out", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and not out.stdout.strip()
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: Invalid value for '--val-fraction': Input should be a valid "
                           "number"), line
    assert not (tmp_path / "runs").exists()


def test_experiment_files_pass_the_settings_through():
    from robustbench_graph.experiment.spec import parse

    text = ('name = "x"\n[train]\ndatasets = ["digits"]\nval_fraction = 0.1\n'
            'select = "best-val"\n[attack]\nsuite = "clean"\n')
    (cfg,) = parse(text, "x.toml").configs
    assert (cfg.val_fraction, cfg.select) == (0.1, "best-val")
    with pytest.raises(RbgError, match="val_fraction must be a number"):
        parse(text.replace("0.1", '"abc"'), "x.toml")
    with pytest.raises(RbgError, match=r"--val-fraction must be a number in \[0, 1\)"):
        parse(text.replace("0.1", "1.5"), "x.toml")
    with pytest.raises(RbgError, match="--select must be one of"):
        parse(text.replace("best-val", "best"), "x.toml")
