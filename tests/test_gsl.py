"""Graph smoothness loss: METHODS.md section 8, identity 11, plus the head and the clipping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustbench_graph.data import DatasetInfo, ImageData, dataset_info
from robustbench_graph.losses import create_loss
from robustbench_graph.losses.gsl import gsl_smoothness, knn_accuracy
from robustbench_graph.models import TappedModel, create_model
from robustbench_graph.models.heads import CentroidHead, attach_head
from robustbench_graph.train import loss_head


@pytest.mark.parametrize("sim", ["cosine_clamped", "cosine_signed", "rbf_normalized"])
@pytest.mark.parametrize("m,k", [(1, None), (2, 4)])
def test_invariant_to_output_scaling(sim: str, m: int, k: int | None) -> None:
    y = torch.randn(12, 5, dtype=torch.float64)
    labels = torch.arange(12) % 3
    base = gsl_smoothness(y, labels, 3, sim=sim, m=m, k=k)
    assert torch.allclose(base, gsl_smoothness(7.3 * y, labels, 3, sim=sim, m=m, k=k))


def _unit(angle_deg: float) -> list[float]:
    a = math.radians(angle_deg)
    return [math.cos(a), math.sin(a)]


@pytest.mark.parametrize("arrangement", ["simplex", "antipodal_merge"])
def test_signed_cosine_minimum_for_collapsed_zero_sum(arrangement: str) -> None:
    if arrangement == "simplex":  # 3 classes of 4 at 120 degrees
        labels = torch.arange(12) % 3
        points = {0: _unit(0), 1: _unit(120), 2: _unit(240)}
    else:  # 4 classes of 3 merged into two antipodal groups: also a minimiser
        labels = torch.arange(12) % 4
        points = {0: _unit(30), 1: _unit(30), 2: _unit(210), 3: _unit(210)}
    y = torch.tensor([points[int(c)] for c in labels], dtype=torch.float64) * 2.5
    counts = torch.bincount(labels).double()
    value = gsl_smoothness(y, labels, int(labels.max()) + 1, sim="cosine_signed",
                           normalize=False)
    assert torch.allclose(value, -(counts**2).sum())
    noisy = y + 0.3 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0),
                                  dtype=torch.float64)
    worse = gsl_smoothness(noisy, labels, int(labels.max()) + 1, sim="cosine_signed",
                           normalize=False)
    assert worse > value


def test_normalised_by_inter_class_pairs() -> None:
    y = torch.ones(6, 3)
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    # all outputs parallel: every inter-class edge is 1, so the mean is 1
    assert torch.allclose(gsl_smoothness(y, labels, 3), torch.tensor(1.0))
    assert float(gsl_smoothness(y, torch.zeros(6, dtype=torch.long), 3)) == 0.0


class _Toy(TappedModel):
    """Identity features on 1x1x2 'images'; the head maps [0, 1]^2 to centred 2-D outputs."""

    def __init__(self) -> None:
        super().__init__(DatasetInfo("toy", 3, (1, 1, 2), (0.0,), (1.0,), False, True))
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(2))
            self.head.bias.fill_(-0.5)

    def embed(self, u: torch.Tensor) -> torch.Tensor:
        return u.flatten(1)


def _toy_data(n: int, seed: int, info: DatasetInfo) -> ImageData:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]])
    labels = torch.arange(n) % 3
    x = (centres[labels] + 0.05 * torch.randn(n, 2, generator=gen)).clamp(0, 1)
    images = (x * 255).round().to(torch.uint8).view(n, 1, 1, 2)
    return ImageData(images, labels, 255.0, info)


def test_centroid_head_agrees_with_knn_on_separable_toy() -> None:
    model = attach_head(_Toy(), *loss_head("gsl", {"out_dim": "2"}))
    assert isinstance(model.head, CentroidHead)
    with torch.no_grad():  # the head's out_dim made a fresh Linear: restore the toy mapping
        model.head.linear.weight.copy_(torch.eye(2))
        model.head.linear.bias.fill_(-0.5)
    train = _toy_data(90, 0, DatasetInfo("toy", 3, (1, 1, 2), (0.0,), (1.0,), False, True))
    test = _toy_data(60, 1, train.info)
    loss = create_loss("gsl", {"out_dim": "2"}, 3)
    with torch.no_grad():
        loss.finish(model.eval(), train.float(), train.labels)
    centroid_pred = model(test.float()).argmax(1)
    centroid_acc = float((centroid_pred == test.labels).float().mean())
    assert centroid_acc == 1.0
    assert knn_accuracy(model, train, test, k=10) == centroid_acc


def test_default_loss_clips_gradient_and_keeps_value() -> None:
    torch.manual_seed(0)
    info = dataset_info("digits")
    x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 10
    norms = {}
    for clip in ("1.0", "none"):
        torch.manual_seed(0)
        opts = {"clip": clip}
        head, head_options = loss_head("gsl", opts)
        model = create_model("smallcnn", info, width=4, feature_dim=8, head=head,
                             head_options=head_options)
        out = create_loss("gsl", opts, 10)(model, x, y)
        assert out.logits.shape == (20, 10)
        assert math.isclose(float(out.loss.detach()), out.parts["gsl"], rel_tol=1e-6)
        out.loss.backward()
        grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
        norms[clip] = float(torch.cat(grads).norm())
    assert norms["1.0"] == pytest.approx(min(1.0, norms["none"]), rel=1e-4)
    assert sorted(model.state_dict())[:3] == ["block1.0.bias", "block1.0.weight",
                                              "block2.0.bias"]
    assert {"head.centroids", "head.linear.weight"} <= set(model.state_dict())


def test_gsl_run_logs_its_knn_accuracy(tmp_path):
    import csv
    import json

    from conftest import cli

    result = cli("train", "--dataset", "digits", "--loss", "gsl", "--epochs", "2", "--seeds",
                 "0", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "knn accuracy" in result.output
    run = tmp_path / "digits-smallcnn-gsl-seed0"
    knn = json.loads((run / "status.json").read_text())["knn_accuracy"]
    rows = [r for r in csv.DictReader((run / "train_log.csv").open())
            if r["metric"] == "knn_accuracy"]
    assert len(rows) == 1 and float(rows[0]["value"]) == knn and 0 < knn <= 1
