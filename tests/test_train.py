import csv
import json

import pytest
import torch

from robustbench_graph import load_run
from robustbench_graph.config import TrainConfig
from robustbench_graph.errors import RbgError
from robustbench_graph.rundir.folder import load_weights
from robustbench_graph.train import plan_runs, train_run

CPU = torch.device("cpu")


def _train(out, seed=0, epochs=2, **kw):
    (spec,) = plan_runs(TrainConfig(dataset="digits", epochs=epochs, **kw), [seed], out)
    return spec, train_run(spec, device=CPU)


def test_run_folder_contents(tmp_path):
    spec, outcome = _train(tmp_path)
    files = {p.name for p in spec.run_dir.iterdir()}
    assert files == {"config.json", "model.safetensors", "train_log.csv", "status.json"}
    record = json.loads((spec.run_dir / "config.json").read_text())
    assert record["seed"] == 0 and record["method"] == "ce"
    assert record["train"]["dataset"] == "digits" and record["train"]["split_seed"] == 0
    assert record["train"]["lr"] == 0.05  # resolved, not None
    assert {"torch", "robustbench_graph", "python"} <= set(record["versions"])
    assert "git_commit" in record
    assert record["hardware"]["type"] == "cpu"
    assert isinstance(record["hardware"]["native_bf16_matmul"], bool)
    rows = list(csv.DictReader((spec.run_dir / "train_log.csv").open()))
    assert set(rows[0]) == {"epoch", "split", "metric", "value"}
    assert {(r["split"], r["metric"]) for r in rows} >= {("train", "loss"), ("test", "accuracy")}
    assert json.loads((spec.run_dir / "status.json").read_text())["status"] == "complete"
    assert outcome.status == "trained" and 0 < outcome.test_accuracy <= 1


def test_the_log_keeps_the_loss_terms_each_epoch(tmp_path):
    spec, _ = _train(tmp_path, epochs=2, loss="laplacian", loss_options={"gamma": 2.0})
    rows = list(csv.DictReader((spec.run_dir / "train_log.csv").open()))
    value = {(int(r["epoch"]), r["metric"]): float(r["value"]) for r in rows
             if r["split"] == "train"}
    for epoch in (1, 2):
        # the loss is CE + gamma^2 * Delta batch by batch, so also in the epoch's means
        assert value[epoch, "loss"] == pytest.approx(
            value[epoch, "part_ce"] + 4.0 * value[epoch, "part_delta"], rel=1e-5)
        assert value[epoch, "part_delta"] > 0
    ce_run, _ = _train(tmp_path / "ce", epochs=1)
    ce_rows = list(csv.DictReader((ce_run.run_dir / "train_log.csv").open()))
    assert not any(r["metric"].startswith("part_") for r in ce_rows)  # CE reports no terms


def test_same_seed_same_weights_on_cpu(tmp_path):
    a, _ = _train(tmp_path / "a", seed=3)
    b, _ = _train(tmp_path / "b", seed=3)
    c, _ = _train(tmp_path / "c", seed=4)
    wa, wb, wc = (load_weights(s.run_dir / "model.safetensors") for s in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_complete_run_is_skipped_and_overwrite_retrains(tmp_path):
    spec, _ = _train(tmp_path)
    mtime = (spec.run_dir / "model.safetensors").stat().st_mtime_ns
    assert train_run(spec, device=CPU).status == "skipped"
    assert (spec.run_dir / "model.safetensors").stat().st_mtime_ns == mtime
    assert train_run(spec, device=CPU, overwrite=True).status == "trained"


def test_different_configuration_in_same_folder_is_refused(tmp_path):
    spec, _ = _train(tmp_path, epochs=2)
    (other,) = plan_runs(TrainConfig(dataset="digits", epochs=3), [0], tmp_path)
    assert other.run_dir == spec.run_dir
    with pytest.raises(RbgError, match="different configuration"):
        train_run(other, device=CPU)


def test_run_written_before_a_loss_option_existed_still_matches(tmp_path):
    spec, _ = _train(tmp_path, epochs=1, loss="laplacian")
    path = spec.run_dir / "config.json"
    record = json.loads(path.read_text())
    del record["train"]["loss_options"]["grad_dtype"]  # as written by an older version
    path.write_text(json.dumps(record))
    assert train_run(spec, device=CPU).status == "skipped"


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    ref, _ = _train(tmp_path / "ref", epochs=4)
    (spec,) = plan_runs(TrainConfig(dataset="digits", epochs=4), [0], tmp_path / "cut")

    def stop_in_epoch_3(p):
        if p.epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(spec, device=CPU, on_progress=stop_in_epoch_3)
    assert (spec.run_dir / "checkpoint.pt").exists()
    assert json.loads((spec.run_dir / "status.json").read_text())["status"] == "running"
    assert train_run(spec, device=CPU).status == "resumed"
    w_ref = load_weights(ref.run_dir / "model.safetensors")
    w_cut = load_weights(spec.run_dir / "model.safetensors")
    assert all(torch.equal(w_ref[k], w_cut[k]) for k in w_ref)
    assert (ref.run_dir / "train_log.csv").read_text() == (spec.run_dir / "train_log.csv"
                                                          ).read_text()


def test_diverging_run_is_marked_failed(tmp_path):
    (spec,) = plan_runs(TrainConfig(dataset="digits", epochs=1, lr=1e6), [0], tmp_path)
    from robustbench_graph.train import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="loss became"):
        train_run(spec, device=CPU)
    assert json.loads((spec.run_dir / "status.json").read_text())["status"] == "failed"


def test_load_run_gives_eval_model_on_unit_inputs(digits_run):
    run = load_run(digits_run)
    assert not run.model.training and run.config["train"]["dataset"] == "digits"
    from robustbench_graph import load_dataset

    test = load_dataset("digits", False, split_seed=run.train_config.split_seed)
    acc = (run.model(test.float()).argmax(1) == test.labels).float().mean().item()
    assert acc > 0.8


def test_augmentation_keeps_shape_and_range():
    from robustbench_graph.data import dataset_info
    from robustbench_graph.train import augment_batch

    x = torch.rand(5, 3, 32, 32)
    out = augment_batch(x, dataset_info("cifar10"), torch.Generator().manual_seed(0))
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert not torch.equal(out, x)


def test_bf16_autocast_training_runs(tmp_path):
    spec, outcome = _train(tmp_path, epochs=2, amp=True)
    assert outcome.status == "trained" and outcome.test_accuracy > 0.5
    assert json.loads((spec.run_dir / "config.json").read_text())["train"]["amp"] is True


def test_image_data_to_device_keeps_values():
    from robustbench_graph import load_dataset

    data = load_dataset("digits", False)
    moved = data.to("cpu")
    assert torch.equal(moved.float(), data.float()) and torch.equal(moved.labels, data.labels)
