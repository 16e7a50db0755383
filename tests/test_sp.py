"""Stationary-point losses (METHODS.md sections 6 and 8, test 10): checked on the property,
a stationary point at p* > 1/2 with the loss increasing beyond it, not on the formula."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from torch import nn

from robustbench_graph import load_run
from robustbench_graph.errors import RbgError
from robustbench_graph.losses import create_loss
from robustbench_graph.losses.sp import (
    ce_base,
    focal_base,
    log_probs,
    sp_loss,
    stationary_point,
)

from conftest import cli


class FixedLogits(nn.Module):
    """A stand-in model whose output is a parameter: the loss as a function of the logits."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.z = nn.Parameter(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.z


def logits_at(p: float, k: int = 10) -> torch.Tensor:
    """One row of float64 logits whose true class (0) has softmax probability ``p``."""
    z = torch.zeros(1, k, dtype=torch.float64)
    z[0, 0] = math.log(p * (k - 1) / (1 - p))
    return z


def loss_and_grad(loss, p: float) -> tuple[float, torch.Tensor]:
    model = FixedLogits(logits_at(p))
    out = loss(model, torch.zeros(1), torch.tensor([0]))
    (grad,) = torch.autograd.grad(out.loss, model.z)
    return float(out.loss.detach()), grad


def test_log_probs_are_stable_and_exact():
    z = torch.tensor([[2.0, -1.0, 0.5], [40.0, 0.0, -3.0], [-30.0, 5.0, 5.0]],
                     dtype=torch.float64)
    y = torch.tensor([0, 0, 0])
    log_p, log_q = log_probs(z, y)
    p = torch.softmax(z, 1)[:, 0]
    torch.testing.assert_close(log_p, torch.log(p))
    torch.testing.assert_close(log_q[[0, 2]], torch.log1p(-p[[0, 2]]))
    # p = 1 - 5e-18 is 1 in float64; log(1 - p) = -40 + log(1 + e^-3) up to O(e^-40)
    assert float(log_q[1]) == pytest.approx(-40 + math.log1p(math.exp(-3.0)), rel=1e-12)
    assert bool(torch.isfinite(log_probs(z.float() * 10, y)[1]).all())  # p == 1 in float32


@pytest.mark.parametrize("p_star", [0.6, 0.9, 0.97])
def test_sp_has_a_stationary_point_at_p_star_and_rises_beyond(p_star):
    loss = create_loss("sp", {"p_star": p_star}, 10)
    assert loss.lam == pytest.approx((1 - p_star) / p_star)
    _, grad = loss_and_grad(loss, p_star)
    assert float(grad.abs().max()) < 1e-9
    check_shape(loss, p_star)


@pytest.mark.parametrize("p_star", [0.7, 0.9])
def test_sp_focal_has_its_numeric_stationary_point_at_p_star(p_star):
    loss = create_loss("sp-focal", {"p_star": p_star}, 10)
    assert loss.stationary_point > 0.5
    assert loss.stationary_point == pytest.approx(p_star, abs=1e-9)
    _, grad = loss_and_grad(loss, loss.stationary_point)
    assert float(grad.abs().max()) < 1e-9
    check_shape(loss, p_star)


def check_shape(loss, p_star: float) -> None:
    """Strictly decreasing in p below p*, strictly increasing above: p* is the minimum."""
    grid = torch.linspace(0.02, 0.995, 300, dtype=torch.float64).tolist()
    values = [loss_and_grad(loss, p)[0] for p in grid]
    for i in range(len(grid) - 1):
        (p0, v0), (p1, v1) = (grid[i], values[i]), (grid[i + 1], values[i + 1])
        if p1 <= p_star:
            assert v1 < v0, (p0, p1)
        elif p0 >= p_star:
            assert v1 > v0, (p0, p1)


def test_focal_with_the_ce_weight_has_a_numeric_stationary_point_on_the_correct_side():
    base = partial(focal_base, gamma=2.0)
    p = stationary_point(base, 1 / 9)
    assert 0.5 < p < 0.9  # 0.694: focal's own weighting moves it
    z = logits_at(p).requires_grad_(True)
    log_p, log_q = log_probs(z, torch.tensor([0]))
    (grad,) = torch.autograd.grad(sp_loss(base, log_p, log_q, 1 / 9).sum(), z)
    assert float(grad.abs().max()) < 1e-9
    with pytest.raises(RbgError, match="correct side"):
        stationary_point(ce_base, 1.5)  # lam > 1 puts it below 1/2


@pytest.mark.parametrize(("name", "options", "message"), [
    ("sp", {"p_star": "0.5"}, "p_star"), ("sp", {"p_star": "1"}, "p_star"),
    ("sp-focal", {"gamma": "-1"}, "gamma"), ("sp-focal", {"p_star": "0.3"}, "p_star"),
])
def test_sp_options_are_validated(name, options, message):
    with pytest.raises(RbgError, match=message):
        create_loss(name, options, 10)


@pytest.mark.parametrize("name", ["sp", "sp-focal"])
def test_sp_losses_train_end_to_end(name, tmp_path):
    result = cli("train", "--dataset", "digits", "--loss", name, "--epochs", "1", "--seeds", "0",
                 "--width", "8", "--feature-dim", "16", "--out", tmp_path, "--device", "cpu")
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert load_run(run_dir).method == name
    assert not (run_dir / "loss_state.safetensors").exists()  # stateless
