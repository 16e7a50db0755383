"""PGD against hand-computed steps and against foolbox 3's LinfPGD / L2PGD."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_graph import load_dataset, load_run
from robustbench_graph.config import ImageSubset
from robustbench_graph.errors import RbgError
from robustbench_graph.perturbations import EvalContext, family_class
from robustbench_graph.perturbations.pgd import pgd, random_start

CPU = torch.device("cpu")


def _linear(seed=0, dim=12, classes=5):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(dim, classes))
    return model.eval()


def _family(**settings):
    cls = family_class("pgd")
    return cls(cls.resolve({k: str(v) for k, v in settings.items()}, "grey"))


def _digits(n=200):
    test = load_dataset("digits", False)
    return test.float(slice(0, n)), test.labels[:n]


def test_one_linf_step_is_the_clipped_sign_of_the_hand_gradient():
    model = _linear()
    x = torch.rand(6, 12) * 0.5 + 0.25
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    adv = pgd(model, x, y, norm="linf", eps=0.1, step_size=0.03, steps=1, early_stop=False)
    weight = model[1].weight.detach()
    p = torch.softmax(model(x), dim=1).detach()
    grad = (p - F.one_hot(y, 5).float()) @ weight  # d sum CE / dx of a linear model
    assert torch.allclose(adv, (x + 0.03 * grad.sign()).clamp(0, 1), atol=1e-7)


def test_one_l2_step_follows_the_normalised_gradient_and_projects():
    model = _linear(1)
    x = torch.rand(4, 12) * 0.2 + 0.4
    y = torch.tensor([0, 1, 2, 3])
    adv = pgd(model, x, y, norm="l2", eps=0.05, step_size=0.2, steps=1, early_stop=False)
    weight = model[1].weight.detach()
    p = torch.softmax(model(x), dim=1).detach()
    grad = (p - F.one_hot(y, 5).float()) @ weight
    step = 0.2 * grad / grad.norm(dim=1, keepdim=True)
    expected = x + step * (0.05 / step.norm(dim=1, keepdim=True))  # projected back to eps
    assert torch.allclose(adv, expected.clamp(0, 1), atol=1e-6)
    assert torch.allclose((adv - x).norm(dim=1), torch.full((4,), 0.05), atol=1e-6)


def _plain_pgd(model, x0, y, norm, eps, step, steps, early_stop):
    """PGD written plainly: every step gathers the stepping images and scatters them back."""
    x, active = x0.clone(), torch.arange(len(x0))
    for _ in range(steps):
        xa = x[active].requires_grad_(True)
        logits = model(xa)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y[active], reduction="sum"), xa)
        xa = xa.detach()
        if early_stop:
            keep = logits.argmax(1) == y[active]
            active, xa, grad = active[keep], xa[keep], grad[keep]
        origin = x0[active]
        if norm == "linf":
            xa = origin + (xa + step * grad.sign() - origin).clamp(-eps, eps)
        else:
            g = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1)
            delta = xa + step * grad / g - origin
            xa = origin + delta * (eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)
                                   .view(-1, 1)).clamp(max=1.0)
        x[active] = xa.clamp(0.0, 1.0)
    return x


@pytest.mark.parametrize("norm,eps,step", [("linf", 0.3, 0.1), ("l2", 0.8, 0.3)])
@pytest.mark.parametrize("early_stop", [True, False])
def test_whole_batch_steps_equal_the_plain_gather_scatter_loop(norm, eps, step, early_stop):
    # Large budgets: some images are fooled after a step or two and others never, so the
    # early-stop run goes from whole-batch steps to gathered ones.
    model = _linear(2)
    x = torch.rand(40, 12)
    y = model(x).argmax(1).detach()
    ours = pgd(model, x, y, norm=norm, eps=eps, step_size=step, steps=6, early_stop=early_stop)
    ref = _plain_pgd(model, x, y, norm, eps, step, 6, early_stop)
    assert torch.equal(ours, ref)
    with torch.no_grad():
        fooled = (model(ours).argmax(1) != y).float().mean()
    assert 0.0 < fooled < 1.0  # both paths were taken


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_iterates_stay_in_the_ball_and_the_box(digits_run, norm):
    model = load_run(digits_run).model
    x, y = _digits(64)
    eps = 0.1 if norm == "linf" else 1.0
    gen = torch.Generator().manual_seed(0)
    start = random_start(x, norm, eps, gen)
    for s in (start, None):
        adv = pgd(model, x, y, norm=norm, eps=eps, step_size=eps / 4, steps=10, start=s)
        dist = (adv - x).flatten(1).norm(p=math.inf if norm == "linf" else 2, dim=1)
        assert (dist <= eps + 1e-6).all() and adv.min() >= 0 and adv.max() <= 1


@pytest.mark.parametrize(("norm", "eps", "step"), [("linf", 0.05, 0.01), ("l2", 1.0, 0.25)])
def test_agrees_with_foolbox_3(digits_run, norm, eps, step):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import foolbox as fb
    model = load_run(digits_run).model
    x, y = _digits()
    cls = fb.attacks.LinfPGD if norm == "linf" else fb.attacks.L2PGD
    attack = cls(abs_stepsize=step, steps=10, random_start=False)
    raw, _, fooled_fb = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=eps)
    ours = pgd(model, x, y, norm=norm, eps=eps, step_size=step, steps=10, early_stop=False)
    assert torch.allclose(ours, raw, atol=1e-3)  # float rounding over the iterations
    with torch.no_grad():
        fooled = model(ours).argmax(1) != y
        early = pgd(model, x, y, norm=norm, eps=eps, step_size=step, steps=10)
        fooled_early = model(early).argmax(1) != y
    assert torch.equal(fooled, fooled_fb)
    assert 0 < int(fooled.sum()) < len(y)  # the budget separates the images
    assert int((fooled_early != fooled).sum()) <= 1


def test_family_cells_accuracy_falls_with_eps_and_restarts_only_help_the_attack(digits_run):
    run = load_run(digits_run)
    test = load_dataset("digits", False)
    ctx = EvalContext(run.model, test, CPU, run.name, batch_size=100)
    family = _family(eps="0.02,0.1", steps=5)
    cells = family.cells(ImageSubset())
    assert [(c.param, c.param_value) for c in cells] == [("eps", 0.02), ("eps", 0.1)]
    acc = [family.measure(c, ctx)[0].value for c in cells]
    clean = family_class("clean")().measure(family_class("clean")().cells(ImageSubset())[0], ctx)
    assert clean[0].value >= acc[0] > acc[1]
    x, y = test.float(), test.labels
    with torch.no_grad():
        direct = pgd(run.model, x, y, norm="linf", eps=0.1, step_size=0.02, steps=5)
        assert math.isclose(acc[1], float((run.model(direct).argmax(1) == y).double().mean()))
    random = _family(eps="0.1", steps=5, random_start="true", restarts=3)
    (cell,) = random.cells(ImageSubset())
    worst = random.measure(cell, ctx)[0].value
    single = _family(eps="0.1", steps=5, random_start="true").measure(cell, ctx)[0].value
    assert worst <= single and worst == random.measure(cell, ctx)[0].value


def test_lapnet_default_on_colour_images_and_bad_settings():
    colour = family_class("pgd").resolve({}, "colour")
    assert (colour.norm, colour.eps, colour.steps, colour.random_start) == ("linf", (0.01,),
                                                                            20, False)
    assert colour.step_size is None  # eps / 5 = LapNet's 0.002
    for raw, message in [({"norm": "l1"}, "unknown PGD norm"), ({"eps": "2"}, "out of range"),
                         ({"steps": "0"}, "steps must be"), ({"restarts": "0"}, "restarts"),
                         ({"step_size": "-1"}, "step_size must be positive")]:
        with pytest.raises(RbgError, match=message):
            family_class("pgd").resolve(raw, "grey")
