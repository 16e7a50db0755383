"""The low-rank smoothness form against the Gram form and an explicitly built dense graph."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustbench_graph.errors import RbgError
from robustbench_graph.graph import label_smoothness_per_layer, laplacian
from robustbench_graph.graph.lowrank import (
    cosine_graph_products,
    lowrank_label_smoothness_per_layer,
    prefer_lowrank,
)
from robustbench_graph.losses import create_loss
from robustbench_graph.losses.laplacian import regulariser


def _representations(b: int = 12, zero_row: bool = True) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    reps = [torch.rand(b, 3, 4, 4, generator=gen, dtype=torch.float64),
            torch.randn(b, 7, generator=gen, dtype=torch.float64).relu(),
            torch.rand(b, 2, 3, 3, generator=gen, dtype=torch.float64)
            .to(memory_format=torch.channels_last)]
    if zero_row:
        reps[1][3] = 0.0  # an all-zero representation: similarity 0 to everything
    return reps


def _sigmas_and_grads(fn, reps):  # noqa: ANN001, ANN202
    leaves = [r.clone().requires_grad_() for r in reps]
    sigmas = fn(leaves)
    weights = torch.arange(1.0, len(leaves) + 1, dtype=sigmas.dtype)
    return sigmas.detach(), torch.autograd.grad((sigmas * weights).sum(), leaves)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_lowrank_equals_gram_form_values_and_gradients(m: int) -> None:
    reps, labels = _representations(), torch.arange(12) % 4
    gram, g_gram = _sigmas_and_grads(
        lambda r: label_smoothness_per_layer(r, labels, 4, m=m), reps)
    low, g_low = _sigmas_and_grads(
        lambda r: lowrank_label_smoothness_per_layer(r, labels, 4, m=m), reps)
    assert torch.allclose(low, gram, rtol=1e-12, atol=0)
    for a, b in zip(g_low, g_gram, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    # gradients keep each input's layout (channels-last stays channels-last)
    assert g_low[2].is_contiguous(memory_format=torch.channels_last)
    assert g_low[0].is_contiguous()


def test_matches_hand_built_dense_graph() -> None:
    """sigma = |L S|_F^2 with A built entry by entry as cosines (METHODS.md section 3.1)."""
    reps, labels = _representations(zero_row=False), torch.tensor([0, 1, 2] * 4)
    s = F.one_hot(labels, 3).double()
    expected = []
    for r in reps:
        rows = r.reshape(12, -1)
        adj = torch.tensor([[float(rows[i] @ rows[j] / (rows[i].norm() * rows[j].norm()))
                             for j in range(12)] for i in range(12)], dtype=torch.float64)
        expected.append(torch.linalg.matrix_norm(laplacian(adj) @ s) ** 2)
    got = lowrank_label_smoothness_per_layer(reps, labels, 3, m=2)
    assert torch.allclose(got, torch.stack(expected), rtol=1e-12)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_gradcheck(m: int) -> None:
    reps = [r[:6].clone().requires_grad_() for r in _representations(zero_row=False)]
    labels = torch.tensor([0, 1, 2, 0, 1, 1])
    assert torch.autograd.gradcheck(
        lambda *f: lowrank_label_smoothness_per_layer(f, labels, 3, m=m), tuple(reps))


def test_product_gradient_with_respect_to_signals() -> None:
    reps = _representations(zero_row=False)
    signals = torch.randn(3, 12, 5, dtype=torch.float64, requires_grad=True)
    out = cosine_graph_products(reps, signals)
    dense = torch.stack([F.normalize(r.reshape(12, -1)) @ F.normalize(r.reshape(12, -1)).T
                         for r in reps])
    assert torch.allclose(out, dense @ signals)
    (grad,) = torch.autograd.grad(out.square().sum(), signals)
    (expected,) = torch.autograd.grad((dense @ signals).square().sum(), signals)
    assert torch.allclose(grad, expected)


def test_low_precision_features_give_float32_sigma_and_matching_gradient_dtype() -> None:
    base = [r.float() for r in _representations(zero_row=False)]
    labels = torch.arange(12) % 4
    low = [r.to(torch.bfloat16).requires_grad_() for r in base]
    sigmas = lowrank_label_smoothness_per_layer(low, labels, 4, m=2)
    assert sigmas.dtype == torch.float32
    grads = torch.autograd.grad(sigmas.sum(), low)
    exact = [r.to(torch.bfloat16).float().requires_grad_() for r in base]
    reference = lowrank_label_smoothness_per_layer(exact, labels, 4, m=2)
    expected = torch.autograd.grad(reference.sum(), exact)
    assert torch.equal(sigmas, reference)  # bfloat16 inputs are computed in float32
    for g, e in zip(grads, expected, strict=True):
        assert g.dtype == torch.bfloat16
        assert float((g.float() - e).norm() / e.norm()) < 1e-2


def test_features_without_gradient_get_none() -> None:
    reps = _representations(zero_row=False)
    needs = reps[1].clone().requires_grad_()
    sigmas = lowrank_label_smoothness_per_layer([reps[0], needs, reps[2]], torch.arange(12) % 4,
                                                4, m=2)
    (grad,) = torch.autograd.grad(sigmas.sum(), [needs])
    assert grad.shape == needs.shape


def test_prefer_lowrank_rule() -> None:
    assert not prefer_lowrank(100, 10, 2, None)  # LapNet's b = 100: the Gram form
    assert prefer_lowrank(128, 10, 2, None)
    assert not prefer_lowrank(128, 10, 2, None, gram_backward_bf16=True)
    assert prefer_lowrank(256, 10, 2, None, gram_backward_bf16=True)
    assert not prefer_lowrank(256, 10, 2, 10)  # k-NN graphs need the b x b matrix
    assert prefer_lowrank(256, 10, 2, 255)  # k >= b - 1 is the dense graph
    assert not prefer_lowrank(256, 100, 2, None)  # C + 1 = 101 signals: Gram
    assert not prefer_lowrank(128, 10, 3, None)  # m = 3 applies A twice
    assert not prefer_lowrank(1024, 10, 2, None, device_type="cuda")  # not measured there


def test_regulariser_forms_agree_in_float32() -> None:
    torch.manual_seed(0)
    base = [torch.relu(torch.randn(40, n)) for n in (2048, 512, 64)]
    labels = torch.arange(40) % 10

    def run(form: str) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        reps = [b.clone().requires_grad_() for b in base]
        delta, sigmas = regulariser(reps, labels, 10, form=form, grad_dtype=None)
        # (the middle tap of a monotone sigma gets no gradient from Delta: weight the sigmas)
        weighted = (sigmas * torch.tensor([1.0, 2.0, 3.0])).sum()
        grads = list(torch.autograd.grad(weighted, reps))
        return delta.detach(), sigmas.detach(), grads

    d_gram, s_gram, g_gram = run("gram")
    d_low, s_low, g_low = run("lowrank")
    assert torch.allclose(s_low, s_gram, rtol=1e-5)
    # Delta is a difference of sigmas: compare it on the sigmas' scale
    assert float((d_low - d_gram).abs()) < 1e-5 * float(s_gram.abs().max())
    for a, b in zip(g_low, g_gram, strict=True):
        assert float((a - b).norm() / b.norm()) < 1e-3
    with pytest.raises(RbgError, match="dense graph"):
        regulariser(base, labels, 10, k=5, form="lowrank")


def test_regulariser_auto_form_follows_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from robustbench_graph.losses import laplacian

    calls: list[int] = []
    real = laplacian.lowrank_label_smoothness_per_layer

    def spy(reps, labels, num_classes, *, m):  # noqa: ANN001, ANN202
        calls.append(labels.shape[0])
        return real(reps, labels, num_classes, m=m)

    monkeypatch.setattr(laplacian, "lowrank_label_smoothness_per_layer", spy)
    for b in (100, 128):
        reps = [torch.rand(b, 8), torch.rand(b, 4)]
        regulariser(reps, torch.arange(b) % 10, 10, form="auto")  # exact Gram bwd: from 128
        regulariser(reps, torch.arange(b) % 10, 10, form="auto", gram_dtype=torch.bfloat16)
        regulariser(reps, torch.arange(b) % 10, 10, form="auto", grad_dtype=torch.bfloat16)
    assert calls == [128]


def test_loss_options_validate_form() -> None:
    with pytest.raises(RbgError, match="form must be one of"):
        create_loss("laplacian", {"form": "sparse"}, 10)
    with pytest.raises(RbgError, match="set k to none"):
        create_loss("laplacian", {"form": "lowrank", "k": 5}, 10)
    with pytest.raises(RbgError, match="exact float32"):
        create_loss("laplacian", {"form": "lowrank", "grad_dtype": "bfloat16"}, 10)
    assert create_loss("laplacian", {"form": "lowrank"}, 10).options.form == "lowrank"
