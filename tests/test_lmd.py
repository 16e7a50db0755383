"""LMD (METHODS.md sections 4 and 8, tests 8-9), the class-centre memory, and checks shared
by the whole margin family of losses (issue 6)."""

from __future__ import annotations

import io

import pytest
import torch
from safetensors.torch import load, save

from robustbench_graph import load_run
from robustbench_graph.config import TrainConfig
from robustbench_graph.data import dataset_info
from robustbench_graph.losses import create_loss
from robustbench_graph.losses.lmd import ClassCentreMemory, margin, signed_distances
from robustbench_graph.models import create_model
from robustbench_graph.train import plan_runs, train_run

from conftest import cli

FAMILY = ["lmd", "lmd-noise", "noisy", "both", "stability", "sp", "sp-focal"]


def tiny_model(dtype: torch.dtype = torch.float32):
    torch.manual_seed(0)
    return create_model("smallcnn", dataset_info("digits"), width=4, feature_dim=16).to(dtype)


def batch(labels: list[int], dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(1)
    return torch.rand(len(labels), 1, 8, 8, generator=gen, dtype=dtype), torch.tensor(labels)


def test_prop_4_1_margin_on_momentum_centres_has_1_minus_gamma_of_the_gradient():
    model = tiny_model(torch.float64)
    x, y = batch([0, 0, 1, 2, 2, 2, 5, 7, 7], torch.float64)
    memory = ClassCentreMemory(10, momentum=0.99)
    memory.update(model.features(x), y)  # first occurrence: the stored centre is mu itself
    classes, _, means, centres = memory.update(model.features(x), y)
    assert torch.allclose(centres, means)  # same point, so the same hinge and argmin
    w, b = model.head.weight, model.head.bias
    theta = [p for n, p in model.named_parameters() if not n.startswith("head.")]
    naive = margin(signed_distances(means, classes, w, b), 50.0)
    moment = margin(signed_distances(centres, classes, w, b), 50.0)
    g_naive = torch.autograd.grad(naive, theta, retain_graph=True)
    g_moment = torch.autograd.grad(moment, theta, retain_graph=True)
    assert sum(float(g.abs().sum()) for g in g_naive) > 0
    for gn, gm in zip(g_naive, g_moment, strict=True):
        torch.testing.assert_close(gm, 0.01 * gn, rtol=1e-9, atol=1e-12)
    # the head's gradient is not scaled: W enters the margin directly
    gw_naive, gw_moment = (torch.autograd.grad(m, w, retain_graph=True)[0]
                           for m in (naive, moment))
    torch.testing.assert_close(gw_moment, gw_naive)


def test_margin_sign_is_positive_for_correctly_classified_centres():
    gen = torch.Generator().manual_seed(0)
    w, b = torch.randn(6, 5, generator=gen), torch.randn(6, generator=gen)
    points = torch.randn(200, 5, generator=gen) * 3
    classes = torch.randint(0, 6, (200,), generator=gen)
    d = signed_distances(points, classes, w, b)
    logits = points @ w.T + b
    correct = logits.argmax(1) == classes
    assert 0 < int(correct.sum()) < 200
    assert bool((d[correct] > 0).all())
    off = classes[:, None] != torch.arange(6)
    own = logits.gather(1, classes[:, None])
    assert torch.equal((d > 0)[off], (own > logits)[off])
    assert bool(torch.isinf(d[~off]).all())


@pytest.mark.parametrize(("x", "zero"), [(3.0, True), (4.5, True), (2.999, False), (-1.0, False)])
def test_margin_is_zero_iff_every_centre_is_delta_dist_away(x, zero):
    # two classes split by the plane x = 0: the signed distance of (x, y) in class 0 is x
    w, b = torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.zeros(2)
    points, classes = torch.tensor([[x, 0.7], [-5.0, 2.0]]), torch.tensor([0, 1])
    d = signed_distances(points, classes, w, b)
    assert d[0, 1] == pytest.approx(x) and d[1, 0] == pytest.approx(5.0)
    assert (float(margin(d, 3.0)) == 0.0) is zero


def test_first_occurrence_copies_the_batch_mean_then_momentum():
    memory = ClassCentreMemory(4, momentum=0.9)
    f1, y1 = torch.randn(6, 3, requires_grad=True), torch.tensor([0, 0, 2, 2, 2, 0])
    classes, inverse, means, centres = memory.update(f1, y1)
    assert classes.tolist() == [0, 2] and torch.equal(classes[inverse], y1)
    torch.testing.assert_close(means[0], f1[y1 == 0].mean(0))
    torch.testing.assert_close(centres, means)
    torch.testing.assert_close(memory.centres[[0, 2]], means.detach())
    assert memory.initialised.tolist() == [True, False, True, False]
    assert not memory.centres.requires_grad
    f2, y2 = torch.randn(3, 3), torch.tensor([2, 3, 3])
    _, _, means2, centres2 = memory.update(f2, y2)
    torch.testing.assert_close(centres2[0], 0.1 * means2[0] + 0.9 * means[1].detach())
    torch.testing.assert_close(centres2[1], means2[1])  # class 3: first occurrence


def test_centre_memory_survives_state_dict_round_trips():
    loss = create_loss("lmd", {}, 10)
    model = tiny_model()
    x, y = batch([1, 1, 3, 4])
    loss(model, x, y)
    state = loss.state_dict()
    assert set(state) == {"memory.centres", "memory.initialised"}
    for restored in (state, torch.load(io.BytesIO(_pt(state)), weights_only=True),
                     load(save({k: v.contiguous() for k, v in state.items()}))):
        fresh = create_loss("lmd", {}, 10)
        fresh.load_state_dict(restored)
        assert torch.equal(fresh.memory.centres, loss.memory.centres)
        assert torch.equal(fresh.memory.initialised, loss.memory.initialised)
    # the resumed loss continues the memory exactly like the original
    x2, y2 = batch([1, 4, 4, 9])
    a, b = loss(model, x2, y2), fresh(model, x2, y2)
    assert torch.equal(a.loss, b.loss)
    assert torch.equal(loss.memory.centres, fresh.memory.centres)


def _pt(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize("labels", [[0, 0, 3, 3, 3, 8], [6, 6, 6, 6]], ids=["missing", "single"])
def test_family_losses_and_gradients_are_finite(name, labels):
    model = tiny_model()
    loss = create_loss(name, {}, 10)
    x, y = batch(labels)
    for _ in range(2):  # second step: the centre memory is initialised
        model.zero_grad()
        out = loss(model, x, y)
        assert out.logits.shape == (len(labels), 10)
        assert torch.isfinite(out.loss) and out.loss.ndim == 0
        out.loss.backward()
        for p in model.parameters():
            assert p.grad is not None and bool(torch.isfinite(p.grad).all())


def test_lmd_rejects_a_nonlinear_head():
    model = tiny_model()
    model.head = torch.nn.Sequential(model.head)
    with pytest.raises(Exception, match="linear final layer"):
        create_loss("lmd", {}, 10)(model, *batch([0, 1]))


@pytest.mark.parametrize(("option", "message"), [("momentum=1", "momentum"),
                                                 ("delta_dist=-1", "delta_dist")])
def test_lmd_options_are_validated(option, message, tmp_path):
    result = cli("train", "--dataset", "digits", "--loss", "lmd", "-o", option,
                 "--out", tmp_path)
    assert result.exit_code == 1 and message in result.output


def test_lmd_trains_end_to_end_and_saves_its_centres(tmp_path):
    result = cli("train", "--dataset", "digits", "--loss", "lmd", "--epochs", "1",
                 "--seeds", "0", "--width", "8",
                 "--feature-dim", "16", "--out", tmp_path, "--device", "cpu")
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert load_run(run_dir).method == "lmd"
    state = load((run_dir / "loss_state.safetensors").read_bytes())
    assert bool(state["memory.initialised"].all())
    assert state["memory.centres"].shape == (10, 16)


@pytest.mark.slow
def test_interrupted_lmd_run_resumes_with_its_centres(tmp_path):
    cfg = TrainConfig(dataset="digits", epochs=2, loss="lmd", feature_dim=16, width=8)
    (ref,) = plan_runs(cfg, [0], tmp_path / "ref")
    train_run(ref, device=torch.device("cpu"))
    (cut,) = plan_runs(cfg, [0], tmp_path / "cut")

    def stop_in_epoch_2(p):  # noqa: ANN001, ANN202
        if p.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cut, device=torch.device("cpu"), on_progress=stop_in_epoch_2)
    assert train_run(cut, device=torch.device("cpu")).status == "resumed"
    for name in ("model.safetensors", "loss_state.safetensors"):
        a, b = (load((r.run_dir / name).read_bytes()) for r in (ref, cut))
        assert all(torch.equal(a[k], b[k]) for k in a), name
