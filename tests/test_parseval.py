"""Parseval training: METHODS.md section 8, identity 3, and the architecture changes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from robustbench_graph.data import dataset_info, load_dataset
from robustbench_graph.models import create_model
from robustbench_graph.models.parseval import (
    make_parseval,
    orthogonality_error,
    retract_,
    retract_matrix_,
)


def test_retraction_reduces_orthogonality_error() -> None:
    gen = torch.Generator().manual_seed(0)
    for shape in ((8, 20), (20, 8), (10, 10)):
        w = torch.randn(*shape, generator=gen, dtype=torch.float64)
        w /= torch.linalg.matrix_norm(w, ord=2) * 1.1  # ||W|| < 1
        errors = [orthogonality_error(w)]
        for _ in range(100):
            retract_matrix_(w, 0.1)
            errors.append(orthogonality_error(w))
        assert all(b < a for a, b in zip(errors[:30], errors[1:30], strict=False))
        assert errors[-1] < 0.1 * errors[0]


def test_retract_touches_only_matrices() -> None:
    model = create_model("preactresnet18", dataset_info("digits"), width=4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    retract_(model, 0.01)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) == (p.ndim == 1), name


def test_make_parseval_preactresnet_defaults() -> None:
    info = dataset_info("digits")
    torch.manual_seed(0)
    plain = create_model("preactresnet18", info, width=4)
    torch.manual_seed(0)
    par = make_parseval(create_model("preactresnet18", info, width=4))
    assert par.parseval_renorm is True
    assert list(par.state_dict()) == list(plain.state_dict())
    assert all(b.residual_weight == 0.5 for b in par.blocks)
    x = torch.rand(2, 1, 8, 8)
    stem = plain.stem(plain.normalize(x))
    assert torch.allclose(par.stem(par.normalize(x)), stem / math.sqrt(19), atol=1e-6)
    assert make_parseval(par) is par  # idempotent: hooks are not stacked
    assert torch.allclose(par.stem(par.normalize(x)), stem / math.sqrt(19), atol=1e-6)


def test_make_parseval_smallcnn_keeps_convolutions() -> None:
    info = dataset_info("digits")
    torch.manual_seed(0)
    plain = create_model("smallcnn", info)
    torch.manual_seed(0)
    par = make_parseval(create_model("smallcnn", info))
    assert par.parseval_renorm is False
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(par(x), plain(x))
    forced = make_parseval(create_model("smallcnn", info), renorm=True)
    forced.load_state_dict(plain.state_dict())
    conv = forced.block1[0]
    expected = (plain.block1[0](x) - conv.bias.view(1, -1, 1, 1)) / math.sqrt(19)
    assert torch.allclose(conv(x), expected + conv.bias.view(1, -1, 1, 1), atol=1e-6)


def _train(parseval: bool, steps: int = 30) -> torch.nn.Module:
    data = load_dataset("digits", True)
    torch.manual_seed(0)
    model = create_model("smallcnn", data.info, width=8, feature_dim=32)
    if parseval:
        make_parseval(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(data), (100,), generator=gen)
        loss = F.cross_entropy(model(data.float(idx)), data.labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if parseval:
            retract_(model, 0.01)
    return model


def test_parseval_network_stays_close_to_orthogonal() -> None:
    par, plain = _train(True), _train(False)
    plain_params = dict(plain.named_parameters())
    for name, p in par.named_parameters():
        if p.ndim > 1:
            assert orthogonality_error(p) < orthogonality_error(plain_params[name]), name
            top = torch.linalg.matrix_norm(p.detach().flatten(1), ord=2)
            assert top < 1.6, (name, float(top))
