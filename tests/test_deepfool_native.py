"""The native DeepFool against foolbox 3.3.4's on a quickly trained digits smallcnn."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings

import pytest
import torch

from robustbench_graph.data import dataset_info, load_dataset
from robustbench_graph.models import create_model
from robustbench_graph.perturbations.deepfool import native
from robustbench_graph.perturbations.deepfool.native import deepfool
from robustbench_graph.perturbations.gradients import (
    fast_batchnorm_backward,
    forward_with_split,
    split_layer,
)

from conftest import counted_passes

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import foolbox as fb

RTOL = 1e-4
N_IMAGES = 200


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: this tiny model gains nothing from two, and two threads on a busy
    two-core machine make these tests several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A smallcnn trained 2 epochs of SGD on digits (about 1 s), and test images."""
    torch.manual_seed(0)
    model = create_model("smallcnn", dataset_info("digits"))
    train = load_dataset("digits", True)
    x, y = train.float(), train.labels
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(2):
        for idx in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval().zero_grad(set_to_none=True)
    test = load_dataset("digits", False)
    return model, test.float()[:N_IMAGES], test.labels[:N_IMAGES]


def _norms(adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    delta = (adv - x).flatten(1)
    return delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)


def _foolbox(model, x, y, norm, **kwargs):  # noqa: ANN001, ANN202
    cls = fb.attacks.L2DeepFoolAttack if norm == "l2" else fb.attacks.LinfDeepFoolAttack
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    raw, _clipped, success = cls(**kwargs)(fmodel, x, y, epsilons=None)
    model.zero_grad(set_to_none=True)  # foolbox leaves parameter gradients behind
    return raw, success


CASES = [
    ("l2", dict(steps=50, candidates=10, overshoot=0.02, loss="logits")),
    ("linf", dict(steps=50, candidates=10, overshoot=0.02, loss="logits")),
    ("l2", dict(steps=50, candidates=4, overshoot=0.02, loss="crossentropy")),
    ("linf", dict(steps=50, candidates=None, overshoot=0.1, loss="crossentropy")),
    ("l2", dict(steps=2, candidates=3, overshoot=0.0, loss="logits")),  # runs out of steps
]


@pytest.mark.parametrize(("norm", "kwargs"), CASES)
def test_matches_foolbox(trained, norm, kwargs):
    model, x, y = trained
    ref, ref_success = _foolbox(model, x, y, norm, **kwargs)
    params = {k: v.clone() for k, v in model.state_dict().items()}
    adv = deepfool(model, x, y, norm=norm, **kwargs)

    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert adv.min() >= 0 and adv.max() <= 1
    torch.testing.assert_close(
        _norms(adv, x, norm), _norms(ref, x, norm), rtol=RTOL, atol=1e-6
    )
    with torch.no_grad():
        pred = model(adv).argmax(1)
    success = pred != y
    assert torch.equal(success, ref_success)
    if kwargs["steps"] == 50:
        assert success.float().mean() > 0.95
    # the model is left as it was: same weights, no gradients, still in eval mode
    assert all(p.grad is None for p in model.parameters())
    assert not model.training
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
    # the input-layer hint (backward split at the first convolution) changes nothing
    hinted = deepfool(model, x, y, norm=norm, input_layer=model.input_layer, **kwargs)
    torch.testing.assert_close(
        _norms(hinted, x, norm), _norms(ref, x, norm), rtol=RTOL, atol=1e-6
    )
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_matches_foolbox_on_colour_inputs(norm):
    """3-channel inputs, a smallcnn at initialisation, two inputs given wrong labels."""
    torch.manual_seed(0)
    info = dataclasses.replace(dataset_info("cifar10"), input_shape=(3, 16, 16))
    model = create_model("smallcnn", info, width=8).eval()
    x = torch.rand(32, 3, 16, 16)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 10  # two misclassified inputs
    kwargs = dict(steps=50, candidates=10, overshoot=0.02, loss="logits")
    ref, ref_success = _foolbox(model, x, y, norm, **kwargs)
    adv = deepfool(model, x, y, norm=norm, **kwargs)
    assert adv.is_contiguous()
    torch.testing.assert_close(
        _norms(adv, x, norm), _norms(ref, x, norm), rtol=RTOL, atol=1e-6
    )
    assert torch.equal(adv[:2], x[:2])
    with torch.no_grad():
        assert torch.equal(model(adv).argmax(1) != y, ref_success)
    assert all(p.grad is None for p in model.parameters())
    # The caller's layout is kept: channels-last images come back channels-last, same values.
    adv_cl = deepfool(model, x.contiguous(memory_format=torch.channels_last), y, norm=norm,
                      **kwargs)
    assert adv_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(adv_cl, adv)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_successful_perturbations_change_the_prediction(trained, norm):
    model, x, y = trained
    with torch.no_grad():
        clean = model(x).argmax(1)
    adv = deepfool(model, x, y, norm=norm)
    with torch.no_grad():
        pred = model(adv).argmax(1)
    fooled = pred != y
    correct = clean == y
    assert (~correct).any(), "the test needs some misclassified inputs"
    # already-misclassified inputs come back unchanged (foolbox freezes them at step one)
    assert torch.equal(adv[~correct], x[~correct])
    # every success on a correctly classified input is a real, nonzero change of prediction
    assert ((adv - x).flatten(1).abs().amax(1)[fooled & correct] > 0).all()
    assert (pred[fooled & correct] != clean[fooled & correct]).all()


def test_rejects_bad_arguments(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="norm"):
        deepfool(model, x, y, norm="l1")
    with pytest.raises(ValueError, match="loss"):
        deepfool(model, x, y, loss="hinge")
    with pytest.raises(ValueError, match="candidate"):
        deepfool(model, x, y, candidates=1)
    with pytest.raises(ValueError, match="bounds"):
        deepfool(model, x * 2, y)
    assert deepfool(model, x[:0], y[:0]).shape == (0, *x.shape[1:])


def test_runs_under_no_grad(trained):
    model, x, y = trained
    with torch.no_grad():
        adv = deepfool(model, x[:20], y[:20])
    torch.testing.assert_close(adv, deepfool(model, x[:20], y[:20]))


def test_input_layer_hint_is_used_where_it_pays_and_falls_back_safely(trained):
    model, x, y = trained
    assert split_layer(model.input_layer, x) is (
        model.input_layer if torch.backends.mkldnn.is_available() else None)
    colour = create_model("preactresnet18", dataset_info("cifar10"), width=4).eval()
    assert split_layer(colour.input_layer, torch.rand(2, 3, 32, 32)) is None  # 3 channels
    # a layer that runs twice gives no split point: the plain backward is used
    twice = torch.nn.Sequential(model.input_layer, torch.nn.ReLU())
    logits, hidden = forward_with_split(
        lambda t: model(t) + twice(model.normalize(t)).mean(), x[:4], model.input_layer)
    assert hidden is None and logits.shape == (4, 10)


def _bn_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("preactresnet18", dataset_info("cifar10"), width=4).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return model


def test_batchnorm_backward_shortcut_is_exact():
    model = _bn_model()
    x = torch.rand(8, 3, 32, 32, requires_grad=True)
    plain = model(x)
    (g_plain,) = torch.autograd.grad(plain[:, 3].sum(), x)
    with fast_batchnorm_backward(model):
        fast = model(x)
    (g_fast,) = torch.autograd.grad(fast[:, 3].sum(), x)
    assert torch.equal(fast, plain)
    torch.testing.assert_close(g_fast, g_plain, rtol=1e-5, atol=1e-7)
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks for m in model.modules())
    assert not any("forward" in m.__dict__ for m in model.modules())  # restored on exit
    with torch.no_grad():
        assert torch.equal(model(x), plain)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_matches_foolbox_on_a_batchnorm_resnet(norm, monkeypatch):
    model = _bn_model()
    x = torch.rand(12, 3, 32, 32)  # 24 measured the tolerance below; 12 keep make test short
    with torch.no_grad():
        y = model(x).argmax(1)
    kwargs = dict(steps=50, candidates=10, overshoot=0.02, loss="logits")
    ref, ref_success = _foolbox(model, x, y, norm, **kwargs)
    adv = deepfool(model, x, y, norm=norm, input_layer=model.input_layer, **kwargs)
    # The batch-norm backward shortcut rounds each gradient differently (5e-7 relative); over
    # 50 steps that grows to 1.04e-4 on one image of 24 (contiguous layout, measured on
    # AVX-512 and AVX2 kernels alike). Without the shortcut the norms equal foolbox's.
    torch.testing.assert_close(_norms(adv, x, norm), _norms(ref, x, norm), rtol=2 * RTOL,
                               atol=1e-6)
    with torch.no_grad():
        assert torch.equal(model(adv).argmax(1) != y, ref_success)
    with monkeypatch.context() as patch:
        patch.setattr(native, "fast_batchnorm_backward", lambda _m: contextlib.nullcontext())
        plain = deepfool(model, x, y, norm=norm, **kwargs)
    torch.testing.assert_close(_norms(plain, x, norm), _norms(ref, x, norm), rtol=1e-6,
                               atol=1e-6)


# --- foolbox 1.6.1's schedule (overshoot_schedule="per-step") ---------------------------------


def _deepfool_161(model, x0, label, *, norm, steps=100, subsample=10, factor=1.05,
                  bounds=(0.0, 1.0)):  # noqa: ANN001, ANN202
    """foolbox 1.6.1's ``DeepFoolAttack`` on one image, written out step by step.

    The candidates are the top ``subsample`` classes of the clean logits, fixed; at each step
    only those whose current logit is below the label's are compared, by the linearised
    difference of cross-entropies (each gradient by its own backward pass); the nearest one
    gives the step ``|dl| / (||dg|| + 1e-8)^2 * -dg`` (L2) or ``|dl| / (||dg||_1 + 1e-8) *
    sign(-dg)`` (L-inf), and the point moves by ``factor`` times that step, then is clipped.
    Returns the first misclassified iterate, else the last one.
    """

    def crossentropy(logits, k):  # noqa: ANN001, ANN202
        shifted = logits - logits.max()
        return shifted.exp().sum().log() - shifted[k]

    with torch.no_grad():
        clean = model(x0[None])[0]
    if clean.argmax() != label:
        return x0.clone()
    top = clean.argsort(descending=True)[:subsample].tolist()
    x = x0.clone()
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        out = model(x[None])
        logits = out[0].detach()
        if logits.argmax() != label:
            break

        def ce_gradient(k, x=x, out=out):  # noqa: ANN001, ANN202
            ce = torch.nn.functional.cross_entropy(out, torch.tensor([k]))
            return torch.autograd.grad(ce, x, retain_graph=True)[0]

        residual = [k for k in top if logits[k] < logits[label]]
        if not residual:  # 1.6.1: np.argmin of an empty list
            raise ValueError("no candidate class below the label's")
        g_label = ce_gradient(label)
        best = None
        for k in residual:
            dl = crossentropy(logits, label) - crossentropy(logits, k)  # -ce_k - (-ce_label)
            dg = ce_gradient(k) - g_label
            dg_norm = dg.norm() if norm == "l2" else dg.abs().sum()
            distance = dl.abs() / (dg_norm + 1e-8)
            if best is None or distance < best[0]:  # the first of equal ones, as np.argmin
                best = (distance, dl, dg, dg_norm)
        _, dl, dg, dg_norm = best
        if norm == "l2":
            step = dl.abs() / (dg_norm + 1e-8) ** 2 * -dg
        else:
            step = dl.abs() / (dg_norm + 1e-8) * (-dg).sign()
        x = (x + factor * step).clamp(*bounds)
    return x.detach()


PER_STEP = dict(overshoot_schedule="per-step", overshoot=0.05, steps=100, candidates=10,
                loss="crossentropy")


def _tiny_cnn() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model("smallcnn", dataset_info("mnist"), width=4, feature_dim=16)
    return model.double().eval(), model.input_layer


def _tiny_mlp() -> tuple[torch.nn.Module, None]:
    """16 classes, so that the top-10 candidate subset is a real restriction."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 16))
    return model.double().eval(), None


def _per_step_case(model, norm, input_layer=None):  # noqa: ANN001, ANN202
    """Random images, labelled by the model except two; the native per-step DeepFool and the
    reference on each. In float64: in float32 the two round the cross-entropy differences
    differently, by up to 3e-4 relative on an input whose clean margin is 5e-5."""
    torch.manual_seed(1)
    x = torch.rand(16, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 10  # two misclassified inputs
    adv = deepfool(model, x, y, norm=norm, input_layer=input_layer, **PER_STEP)
    ref = torch.stack([_deepfool_161(model, xi, int(yi), norm=norm)
                       for xi, yi in zip(x, y, strict=True)])
    return x, y, adv, ref


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("make_model", [_tiny_cnn, _tiny_mlp], ids=["cnn", "mlp"])
def test_per_step_matches_foolbox_161_reference(make_model, norm):
    model, input_layer = make_model()
    x, y, adv, ref = _per_step_case(model, norm, input_layer)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert adv.min() >= 0 and adv.max() <= 1
    torch.testing.assert_close(_norms(adv, x, norm), _norms(ref, x, norm), rtol=1e-10,
                               atol=1e-12)
    with torch.no_grad():
        success, ref_success = model(adv).argmax(1) != y, model(ref).argmax(1) != y
    assert torch.equal(success, ref_success) and success[2:].all()
    assert torch.equal(adv[:2], x[:2])  # misclassified inputs come back unchanged
    assert all(p.grad is None for p in model.parameters())
    # foolbox 3.3.4's schedule, same parameters, gives other perturbations (its 1e-4 alone
    # makes them 0.3% larger or more here)
    total = deepfool(model, x, y, norm=norm, **{**PER_STEP, "overshoot_schedule": "total"})
    assert not torch.allclose(_norms(total, x, norm)[2:], _norms(adv, x, norm)[2:], rtol=1e-3)


def test_per_step_stalls_where_clipping_cuts_every_step():
    """A linear 2-class model whose boundary the step reaches through four coordinates of
    which three sit at the lower bound: clipping keeps a quarter of every step, so 1.6.1's
    iteration, with no 1e-4 added, closes only 1.05 / 4 of the gap per step and never crosses
    (the gap after 100 steps is 0.3 * 0.7375^100), while foolbox 3.3.4's 1e-4 gets across."""
    model = torch.nn.Linear(4, 2).double().eval()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 0, 0, 0], [-1, -1, -1, 1]]))
        model.bias.copy_(torch.tensor([0.0, -0.5]))
    x = torch.tensor([[0.0, 0, 0, 0.2]], dtype=torch.float64)
    y = torch.tensor([0])
    adv = deepfool(model, x, y, norm="l2", **PER_STEP)
    gap = 0.3 * (1 - 1.05 / 4) ** 100
    torch.testing.assert_close(adv, torch.tensor([[0.0, 0, 0, 0.5 - gap]], dtype=torch.float64),
                               rtol=0, atol=1e-15)
    torch.testing.assert_close(adv, _deepfool_161(model, x[0], 0, norm="l2")[None], rtol=0,
                               atol=1e-15)
    with torch.no_grad():
        assert model(adv).argmax(1).item() == 0
        total = deepfool(model, x, y, norm="l2", **{**PER_STEP, "overshoot_schedule": "total"})
        assert model(total).argmax(1).item() == 1


class _TwinOutput(torch.nn.Module):
    """Appends a copy of logit ``c``: that class ties, bit for bit, with ``c`` everywhere."""

    def __init__(self, model: torch.nn.Module, c: int) -> None:
        super().__init__()
        self.model, self.c = model, c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model(x)
        return torch.cat([z, z[:, self.c:self.c + 1]], dim=1)


def test_per_step_skips_tied_candidates_as_foolbox_161():
    """A class tied with the label is no candidate in foolbox 1.6.1 (its logit is not below
    the label's); foolbox 3.3.4's rule steps towards it by zero and never gets anywhere."""
    mlp, _ = _tiny_mlp()
    torch.manual_seed(1)
    with torch.no_grad():
        c = int(mlp(torch.rand(16, 1, 28, 28, dtype=torch.float64)).argmax(1).mode().values)
    model = _TwinOutput(mlp, c).eval()
    x, y, adv, ref = _per_step_case(model, "l2")
    tied = y == c  # argmax picks c, the first of the two
    assert tied[2:].sum() >= 2, "the test needs inputs predicted as the twinned class"
    torch.testing.assert_close(_norms(adv, x, "l2"), _norms(ref, x, "l2"), rtol=1e-10,
                               atol=1e-12)
    with torch.no_grad():
        success, ref_success = model(adv).argmax(1) != y, model(ref).argmax(1) != y
    assert torch.equal(success, ref_success) and success[2:].all()
    total = deepfool(model, x, y, norm="l2", **{**PER_STEP, "overshoot_schedule": "total"})
    assert torch.equal(total[tied], x[tied])


def test_overshoot_schedule_is_checked_and_total_is_the_default():
    model, _ = _tiny_mlp()
    torch.manual_seed(1)
    x = torch.rand(8, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    with pytest.raises(ValueError, match="overshoot_schedule"):
        deepfool(model, x, y, overshoot_schedule="per_step")
    with pytest.raises(ValueError, match="overshoot_schedule"):
        deepfool(model, x[:0], y[:0], overshoot_schedule="")
    assert torch.equal(deepfool(model, x, y, overshoot_schedule="total"), deepfool(model, x, y))


def test_passes_count_what_a_counted_run_does(digits_run):
    """One step on correctly classified images is counted exactly; a run to the end stays
    within the bound (each image stops once fooled: the declared count is a typical one)."""
    from robustbench_graph import load_run
    from robustbench_graph.perturbations import family_class
    from robustbench_graph.perturbations.deepfool import TYPICAL_STEPS

    def family(**raw):  # noqa: ANN003, ANN202
        cls = family_class("deepfool")
        return cls(cls.resolve({k: str(v) for k, v in raw.items()}, "grey"))

    run = load_run(digits_run)
    test = load_dataset("digits", False)
    with torch.no_grad():
        right = torch.nonzero(run.model(test.float()).argmax(1) == test.labels).flatten()
    ok = test.subset(right[:60])
    one = family(steps=1, samples=60, norms="l2,linf")
    assert counted_passes(one, run, ok) == one.passes(60) == (2 * 60 * 3, 2 * 60 * 9)
    full = family(samples=100)
    counted = counted_passes(full, run, test.subset(torch.arange(100)))
    most = full.passes_at_most(100)
    assert full.passes(100) == (100 * (TYPICAL_STEPS + 3), 100 * TYPICAL_STEPS * 9)
    assert most == (100 * 52, 100 * 50 * 9)
    assert counted[0] <= most[0] and counted[1] <= most[1]
    assert full.passes(100)[1] < most[1] / 5  # the bound is far from what a run takes
