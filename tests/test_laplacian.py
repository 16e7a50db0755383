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
    assert resolve_gamma(None, "none", 10.0) == 0.01
    assert resolve_gamma(None, "batch", 10.0) == 10.0
    assert resolve_gamma(None, "batch", 1.0) == 1.0
    assert resolve_gamma(0.5, "batch", 10.0) == 0.5


def test_default_gamma_is_declared_by_the_model_not_counted_from_its_taps() -> None:
    """resnet18 has 17 ReLU taps like PreActResNet18, but only the latter is the paper's
    calibration (gamma 10 on the batch scale)."""
    info = dataset_info("cifar10")
    preact = create_model("preactresnet18", info, width=4)
    resnet = create_model("resnet18", info, width=4)
    assert len(preact.relu_taps) == len(resnet.relu_taps) == 17
    assert preact.laplacian_gamma == 10.0
    assert resnet.laplacian_gamma == 1.0
    assert create_model("smallcnn", info).laplacian_gamma == 1.0


def test_defaults_are_exact_and_the_same_on_every_machine() -> None:
    """Exact float32 Gram form by default; the hardware-dependent choices are opt-in and the
    run records what they resolved to."""
    defaults = parse_loss_options("laplacian", {})
    assert (defaults.form, defaults.grad_dtype, defaults.gram_dtype) == ("gram", "float32",
                                                                         "float32")
    cpu = torch.device("cpu")
    loss = create_loss("laplacian", {}, 10)
    assert loss.numerics(cpu, 100) == {"form": "gram", "gram_dtype": "float32",
                                       "grad_dtype": "float32"}
    auto = create_loss("laplacian", {"grad_dtype": "auto"}, 10).numerics(cpu, 100)
    assert auto["grad_dtype"] == ("bfloat16" if has_fast_bf16_matmul(cpu) else "float32")
    low = create_loss("laplacian", {"form": "lowrank"}, 10).numerics(cpu, 100)
    assert low["form"] == "lowrank"


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
    """grad_dtype=bfloat16 (opt-in): Delta bit-identical to float32, the regulariser's
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
