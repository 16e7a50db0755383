"""Graph core: METHODS.md section 8, identity 1 (and the k-NN / gradient checks)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustbench_graph.errors import RbgError
from robustbench_graph.graph import (
    cosine_similarity,
    gram_matrix,
    knn_sparsify,
    label_signals,
    label_smoothness,
    label_smoothness_per_layer,
    laplacian,
    signal_smoothness,
    similarity,
)


def _random_graph(b: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(b, b, generator=gen, dtype=torch.float64)
    return (a + a.T) / 2


@pytest.mark.parametrize("seed", range(5))
def test_trace_equals_inter_class_edge_sum(seed: int) -> None:
    b, c = 12, 4
    adj = _random_graph(b, seed)
    labels = torch.randint(0, c, (b,), generator=torch.Generator().manual_seed(seed))
    s = label_signals(labels, c, adj.dtype)
    inter = labels[:, None] != labels[None, :]
    expected = adj[inter].sum()
    assert torch.allclose(torch.trace(s.T @ laplacian(adj) @ s), expected)
    assert torch.allclose(signal_smoothness(adj, s, 1), expected)


@pytest.mark.parametrize("seed", range(3))
def test_m2_is_frobenius_norm_of_ls(seed: int) -> None:
    adj = _random_graph(10, seed)
    s = label_signals(torch.arange(10) % 3, 3, adj.dtype)
    lap = laplacian(adj)
    expected = torch.linalg.matrix_norm(lap @ s) ** 2
    assert torch.allclose(torch.trace(s.T @ lap @ lap @ s), expected)
    assert torch.allclose(signal_smoothness(adj, s, 2), expected)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_powers_match_dense_matrix_power(m: int) -> None:
    adj = _random_graph(9, m)
    s = label_signals(torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1]), 3, adj.dtype)
    dense = torch.trace(s.T @ torch.linalg.matrix_power(laplacian(adj), m) @ s)
    assert torch.allclose(signal_smoothness(adj, s, m), dense)


def test_self_loops_do_not_change_laplacian() -> None:
    adj = _random_graph(8, 0)
    no_loops = adj - torch.diag(adj.diagonal())
    assert torch.allclose(laplacian(adj), laplacian(no_loops))
    s = label_signals(torch.arange(8) % 2, 2, adj.dtype)
    assert torch.allclose(signal_smoothness(adj, s, 2), signal_smoothness(no_loops, s, 2))


def test_cosine_matches_normalize_and_handles_zero_rows() -> None:
    x = torch.randn(6, 3, 4, 4, dtype=torch.float64)
    x[2] = 0
    flat = F.normalize(x.flatten(1), dim=1)
    assert torch.allclose(cosine_similarity(x), flat @ flat.T)
    assert torch.all(cosine_similarity(x)[2] == 0)
    assert similarity(x, "cosine_clamped").min() >= 0


@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_is_symmetric_and_excludes_self(k: int) -> None:
    sim = cosine_similarity(torch.rand(10, 7, dtype=torch.float64))
    adj = knn_sparsify(sim, k)
    assert torch.equal(adj, adj.T)
    assert torch.all(adj.diagonal() == 0)
    kept = (adj != 0).sum(1)
    assert torch.all(kept >= k)
    off = sim.clone().fill_diagonal_(-1)
    top = off.topk(k, dim=1).indices
    assert torch.all(adj.gather(1, top) == sim.gather(1, top))


def test_knn_full_graph_and_bad_k() -> None:
    sim = cosine_similarity(torch.rand(5, 3))
    assert torch.equal(knn_sparsify(sim, None), sim)
    assert torch.equal(knn_sparsify(sim, 4), sim)
    with pytest.raises(RbgError):
        knn_sparsify(sim, 0)


@pytest.mark.parametrize("m,k", [(1, None), (2, None), (3, None), (2, 3)])
def test_label_smoothness_gradcheck(m: int, k: int | None) -> None:
    x = torch.rand(6, 2, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 1])
    assert torch.autograd.gradcheck(lambda f: label_smoothness(f, labels, 3, m=m, k=k), (x,))


def test_label_smoothness_matches_dense_cosine_graph() -> None:
    x = torch.rand(8, 5, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 0, 1])
    u = F.normalize(x, dim=1)
    lap = laplacian(u @ u.T)
    s = label_signals(labels, 3, x.dtype)
    for m in (1, 2, 3):
        dense = torch.trace(s.T @ torch.linalg.matrix_power(lap, m) @ s)
        assert torch.allclose(label_smoothness(x, labels, 3, m=m), dense)


def test_invalid_power() -> None:
    with pytest.raises(RbgError):
        label_smoothness(torch.rand(3, 2), torch.tensor([0, 1, 0]), 2, m=0)


@pytest.mark.parametrize("m,k", [(1, None), (2, None), (3, None), (2, 3)])
def test_per_layer_smoothness_equals_one_graph_at_a_time(m: int, k: int | None) -> None:
    torch.manual_seed(0)
    reps = [torch.rand(8, 2, 3, dtype=torch.float64), torch.rand(8, 5, dtype=torch.float64),
            torch.rand(8, 4, dtype=torch.float64)]
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    batched = label_smoothness_per_layer(reps, labels, 3, m=m, k=k)
    one_by_one = torch.stack([label_smoothness(r, labels, 3, m=m, k=k) for r in reps])
    assert torch.allclose(batched, one_by_one)
    x = [r.clone().requires_grad_() for r in reps]
    assert torch.autograd.gradcheck(
        lambda *f: label_smoothness_per_layer(f, labels, 3, m=m, k=k), tuple(x))


def test_gram_precisions_round_only_what_they_say() -> None:
    """bfloat16 backward: the forward G is bit-identical to float32's and the gradient is
    within 1e-2 relative; bfloat16 forward: G within 1e-2 relative. Against float64."""
    torch.manual_seed(0)
    feats = torch.relu(torch.randn(50, 4096))
    weight = torch.randn(50, 50)

    def run(**dtypes: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        x = feats.clone().requires_grad_()
        gram = gram_matrix(x, **dtypes)
        (gram * weight).sum().backward()
        return gram.detach(), x.grad

    exact = feats.double()
    ref_gram = exact @ exact.T
    ref_grad = (weight + weight.T).double() @ exact
    g32, d32 = run()
    g_bwd, d_bwd = run(grad_dtype=torch.bfloat16)
    g_fwd, _ = run(gram_dtype=torch.bfloat16)
    assert g32.dtype == g_bwd.dtype == g_fwd.dtype == torch.float32
    assert torch.equal(g32, g_bwd)
    assert torch.allclose(g32.double(), ref_gram, rtol=1e-5)
    assert torch.allclose(d32.double(), ref_grad, rtol=1e-4, atol=1e-3)
    rel = lambda a, b: float((a.double() - b).norm() / b.norm())  # noqa: E731
    assert 1e-6 < rel(d_bwd, ref_grad) < 1e-2
    assert 1e-6 < rel(g_fwd, ref_gram) < 1e-2


def test_gram_under_autocast_is_float32_of_the_low_precision_features() -> None:
    feats = torch.rand(6, 40).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(feats)
    assert gram.dtype == torch.float32
    assert torch.equal(gram, gram_matrix(feats.float()))


def test_channels_last_features_give_the_same_gram_and_gradient_layout() -> None:
    torch.manual_seed(0)
    feats = torch.relu(torch.randn(6, 4, 5, 5, dtype=torch.float64))
    weight = torch.randn(6, 6, dtype=torch.float64)
    grads = []
    for layout in (torch.contiguous_format, torch.channels_last):
        x = feats.clone(memory_format=layout).requires_grad_()
        gram = gram_matrix(x)
        (gram * weight).sum().backward()
        assert x.grad.is_contiguous(memory_format=layout)
        grads.append((gram.detach(), x.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])
    x = feats.clone(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradcheck(lambda f: label_smoothness(f, torch.arange(6) % 3, 3, m=2),
                                    (x,))
