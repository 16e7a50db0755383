"""The classifier head is part of the model: built from the config, recorded by training in
``config.json`` (``model_head``), and rebuilt by ``load_run`` without any loss code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from robustbench_graph.config import TrainConfig
from robustbench_graph.data import dataset_info
from robustbench_graph.errors import RbgError
from robustbench_graph.models import create_model
from robustbench_graph.models.heads import CentroidHead, attach_head, head_options
from robustbench_graph.rundir.atomic import write_json_atomic
from robustbench_graph.rundir.folder import save_weights, write_status
from robustbench_graph.rundir.runs import load_run, recorded_head
from robustbench_graph.train import loss_head, plan_runs, train_run

DIGITS = dataset_info("digits")


def test_the_centroids_head_keeps_the_weight_names_of_earlier_versions():
    torch.manual_seed(0)
    linear = create_model("smallcnn", DIGITS, width=4, feature_dim=8)
    torch.manual_seed(0)
    model = create_model("smallcnn", DIGITS, width=4, feature_dim=8, head="centroids")
    assert isinstance(model.head, CentroidHead) and model.head.tau == 10.0
    assert torch.equal(model.head.linear.weight, linear.head.weight)  # the same Linear
    assert set(model.state_dict()) == (set(linear.state_dict()) - {"head.weight", "head.bias"}
                                       | {"head.linear.weight", "head.linear.bias",
                                          "head.centroids"})
    assert model.head.centroids.shape == (10, 10)
    wide = create_model("smallcnn", DIGITS, width=4, feature_dim=8, head="centroids",
                        head_options={"out_dim": 3, "tau": 2.5})
    assert wide.head.linear.out_features == 3 and wide.head.centroids.shape == (10, 3)
    assert wide(torch.rand(2, 1, 8, 8)).shape == (2, 10) and wide.head.tau == 2.5


def test_heads_and_their_options_are_checked():
    model = create_model("smallcnn", DIGITS, width=4)
    assert attach_head(model, "linear") is model and isinstance(model.head, torch.nn.Linear)
    with pytest.raises(RbgError, match="unknown model head 'knn'; valid: linear, centroids"):
        create_model("smallcnn", DIGITS, head="knn")
    with pytest.raises(RbgError, match="unknown option 'tau' for model head 'linear'"):
        head_options("linear", {"tau": 1.0})
    with pytest.raises(RbgError, match="positive out_dim and tau"):
        head_options("centroids", {"tau": 0})
    assert head_options("centroids", {"out_dim": "4"}) == {"out_dim": 4, "tau": 10.0}


def test_the_loss_declares_its_head():
    assert loss_head("ce", {}) == ("linear", {})
    assert loss_head("gsl", {"out_dim": "3", "tau": "5"}) == (
        "centroids", {"out_dim": 3, "tau": 5.0})


def test_recorded_head_and_the_rule_for_runs_written_before_heads_were_recorded():
    record = {"train": {"loss": "gsl", "loss_options": {"tau": 4.0, "k": 5, "out_dim": None}}}
    assert recorded_head(record) == ("centroids", {"tau": 4.0, "out_dim": None})
    assert recorded_head({"train": {"loss": "laplacian"}}) == ("linear", {})
    assert recorded_head({"train": {"loss": "ce"},
                          "model_head": {"name": "centroids", "options": {"tau": 2.0}}}
                         ) == ("centroids", {"tau": 2.0})
    with pytest.raises(RbgError, match="model_head record is malformed"):
        recorded_head({"train": {"loss": "ce"}, "model_head": ["centroids"]})


def _write_gsl_folder(run_dir, *, with_head: bool) -> torch.nn.Module:
    """A finished gsl run folder written by hand, as an earlier version (no ``model_head``)
    or this one wrote it."""
    torch.manual_seed(1)
    model = create_model("smallcnn", DIGITS, width=4, feature_dim=8, head="centroids",
                         head_options={"tau": 3.0})
    model.head.centroids.copy_(torch.randn(10, 10))
    cfg = TrainConfig(dataset="digits", width=4, feature_dim=8, loss="gsl",
                      loss_options={"tau": 3.0}).resolved()
    record = {"run": run_dir.name, "seed": 0, "method": "gsl_tau3.0", "train": cfg.to_dict()}
    if with_head:
        record["model_head"] = {"name": "centroids", "options": {"out_dim": None, "tau": 3.0}}
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "config.json", record)
    save_weights(run_dir / "model.safetensors", model.state_dict())
    write_status(run_dir, "complete")
    return model


@pytest.mark.parametrize("with_head", [True, False])
def test_load_run_builds_the_head_without_importing_a_loss(tmp_path, with_head):
    run_dir = tmp_path / "digits-smallcnn-gsl-seed0"
    model = _write_gsl_folder(run_dir, with_head=with_head)
    loaded = load_run(run_dir).model
    x = torch.rand(4, 1, 8, 8)
    assert isinstance(loaded.head, CentroidHead) and loaded.head.tau == 3.0
    assert torch.allclose(loaded(x), model.eval()(x))
    code = ("import sys; from robustbench_graph.rundir.runs import load_run; "
            f"m = load_run({str(run_dir)!r}).model; "
            "print(type(m.head).__name__, sorted(n for n in sys.modules "
            "if n.startswith('robustbench_graph.losses')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["CentroidHead", "[]"]


def test_training_records_the_head_its_loss_declares(tmp_path):
    cfg = TrainConfig(dataset="digits", epochs=1, width=4, feature_dim=8, loss="gsl",
                      loss_options={"out_dim": "6"})
    (spec,) = plan_runs(cfg, [0], tmp_path)
    assert train_run(spec, device=torch.device("cpu")).status == "trained"
    record = json.loads((spec.run_dir / "config.json").read_text())
    assert record["model_head"] == {"name": "centroids", "options": {"out_dim": 6, "tau": 10.0}}
    model = load_run(spec.run_dir).model
    assert model.head.linear.out_features == 6 and model.head.centroids.abs().sum() > 0
    (plain,) = plan_runs(TrainConfig(dataset="digits", epochs=1), [0], tmp_path)
    assert plain.config_record()["model_head"] == {"name": "linear", "options": {}}
