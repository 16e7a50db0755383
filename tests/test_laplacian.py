"""LapNet regulariser: METHODS.md section 8, identity 2, plus the loss options."""

from __future__ import annotations

import pytest
import torch

from robustbench_graph.data import dataset_info
from robustbench_graph.device import has_fast_bf16_matmul
from robustbench_graph.errors import RbgError
from robustbench_graph.graph import label_smoothness
from robustbench_graph.losses import create_loss, parse_loss_options
from robustbench_graph.losses.laplacian import (
    parse_taps,
    regulariser,
    resolve_gamma,
    resolve_grad_dtype,
    smoothness_gap,
)
from robustbench_graph.models import create_model


def test_seventeen_representations_average_sixteen_gaps() -> None:
    sigmas = [torch.tensor(float(i * i)) for i in range(17)]
    expected = sum(abs(sigmas[i] - sigmas[i - 1]) for i in range(1, 17)) / 16
    assert torch.allclose(smoothness_gap(sigmas), expected)


def test_identical_representations_give_zero() -> None:
    rep = torch.rand(20, 8)
    labels = torch.arange(20) % 4
    delta, sigmas = regulariser([rep] * 17, labels, 4)
    assert len(sigmas) == 17
    assert float(delta) == 0.0
    assert float(sigmas[0]) > 0


def test_batch_normalisation_divides_by_b_power() -> None:
    reps = [torch.rand(10, 5), torch.rand(10, 5)]
    labels = torch.arange(10) % 3
    _, raw = regulariser(reps, labels, 3, m=2, normalize="none")
    _, scaled = regulariser(reps, labels, 3, m=2, normalize="batch")
    assert torch.allclose(raw[0] / 10**3, scaled[0])
    assert torch.allclose(raw[1], label_smoothness(reps[1], labels, 3, m=2))


def test_parse_taps_and_gamma_rule() -> None:
    assert parse_taps("all", 3) == [0, 1, 2]
    assert parse_taps("0,-1", 17) == [0, 16]
    for bad in ("0", "x,1", "0,5"):
        with pytest.raises(RbgError):
            parse_taps(bad, 3)
    assert resolve_gamma(None, "none", 3) == 0.01
    assert resolve_gamma(None, "batch", 17) == pytest.approx(10.0)
    assert resolve_gamma(None, "batch", 3) == 1.0
    assert resolve_gamma(0.5, "batch", 17) == 0.5


@pytest.mark.parametrize("options", [{"normalize": "sideways"}, {"m": "0"}, {"gamma": "-1"},
                                     {"taps": "1"}, {"k": "0"}, {"grad_dtype": "float16"},
                                     {"gram_dtype": "auto"}])
def test_invalid_options(options: dict) -> None:
    with pytest.raises(RbgError):
        parse_loss_options("laplacian", options)


@pytest.mark.parametrize("options", [{}, {"normalize": "none", "gamma": "0.001"},
                                     {"k": "5", "m": "1", "taps": "0,2"}])
def test_loss_is_differentiable(options: dict) -> None:
    torch.manual_seed(0)
    info = dataset_info("digits")
    model = create_model("smallcnn", info, width=4, feature_dim=8)
    loss = create_loss("laplacian", options, 10)
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    out = loss(model, x, y)
    assert out.logits.shape == (16, 10)
    assert out.parts["delta"] >= 0
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_grad_dtype_auto_follows_the_hardware() -> None:
    cpu = torch.device("cpu")
    fast = torch.bfloat16 if has_fast_bf16_matmul(cpu) else None
    assert resolve_grad_dtype("auto", cpu) == fast
    assert resolve_grad_dtype("float32", cpu) is None
    assert resolve_grad_dtype("bfloat16", cpu) == torch.bfloat16


def test_bfloat16_gradient_keeps_delta_exact_and_the_gradient_close() -> None:
    """The default on bfloat16 hardware: Delta bit-identical to float32, the regulariser's
    gradient within 1e-2 relative; the bfloat16 forward moves Delta by less than 1e-2."""
    torch.manual_seed(0)
    base = [torch.relu(torch.randn(40, n)) for n in (2048, 1024, 512)]
    labels = torch.arange(40) % 10

    def run(**dtypes: torch.dtype) -> tuple[torch.Tensor, list[torch.Tensor]]:
        reps = [b.clone().requires_grad_() for b in base]
        delta, _ = regulariser(reps, labels, 10, **dtypes)
        return delta.detach(), list(torch.autograd.grad(delta, reps))

    d32, g32 = run()
    d_bwd, g_bwd = run(grad_dtype=torch.bfloat16)
    d_fwd, _ = run(gram_dtype=torch.bfloat16)
    assert torch.equal(d32, d_bwd)
    for a, b in zip(g_bwd, g32, strict=True):
        assert float((a - b).norm() / b.norm()) < 1e-2
    assert float((d_fwd - d32).abs() / d32) < 1e-2
