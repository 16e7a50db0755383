"""Each perturbation against an independent reference (METHODS.md sections 1 and 8)."""

import math

import pytest
import torch
from torch import nn

from robustbench_graph import load_run
from robustbench_graph.config import ImageSubset
from robustbench_graph.data import DatasetInfo, ImageData
from robustbench_graph.models import create_model
from robustbench_graph.perturbations import EvalContext, family_class
from robustbench_graph.perturbations.dropout import seeded_dropout
from robustbench_graph.perturbations.fgsm import fgsm
from robustbench_graph.perturbations.gaussian import noise_std_for_snr, snr_db
from robustbench_graph.perturbations.quantize import power_of_two_scale, quantized_copy

from conftest import RecordingModel

CPU = torch.device("cpu")
INFO = DatasetInfo("toy", 10, (3, 8, 8), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), False, False)


def _toy_context(n=64, lo=0.25, hi=0.75, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = lo + (hi - lo) * torch.rand(n, 3, 8, 8, generator=gen)
    data = ImageData((images * 255).round().to(torch.uint8),
                     torch.randint(0, 10, (n,), generator=gen), 255.0, INFO)
    torch.manual_seed(seed)
    model = create_model("smallcnn", INFO, width=4).eval()
    return EvalContext(model, data, CPU, "toy-run", batch_size=16)


def _family(name, value=None, **settings):
    """A family with ``settings`` (unvalidated: the step itself is under test) whose sweep is
    the one ``value``."""
    cls = family_class(name)
    if value is not None:
        settings[cls.sweep_fields()[0]] = (value,)
    return cls(cls.Settings(**settings))


def _measure(name, value, ctx, **settings):
    family = _family(name, value, **settings)
    (cell,) = family.cells(ImageSubset())
    return family.measure(cell, ctx)


def _values(rows, metric):
    return [r.value for r in rows if r.metric == metric]


# --- Gaussian -----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["gaussian", "gaussian-iid"])
@pytest.mark.parametrize("target", [5.0, 15.0, 20.0])
def test_gaussian_hits_target_mean_snr(mode, target):
    ctx = _toy_context(n=256)
    rows = _measure(mode, target, ctx, draws=40)
    realised = _values(rows, "snr_db")
    assert len(realised) == 40
    assert abs(sum(realised) / len(realised) - target) < 0.05


def test_noise_std_formula_matches_definition():
    x = torch.rand(100, 3, 32, 32)
    sigma = noise_std_for_snr(x, 14.0)
    mean_log = (20 * torch.log10(x.double().flatten(1).norm(dim=1))).mean()
    assert math.isclose(float(mean_log - 20 * math.log10(sigma * math.sqrt(3072))), 14.0,
                        abs_tol=1e-9)


def test_shared_mode_uses_one_pattern_per_draw():
    ctx = _toy_context(n=48)
    rec = RecordingModel(ctx.model)
    ctx.model = rec
    _measure("gaussian", 30.0, ctx, draws=2)
    clean = ctx.data.float()
    per_draw = torch.cat(rec.seen).view(2, 48, 3, 8, 8) - clean  # 3 batches of 16 per draw
    for d in range(2):
        assert torch.allclose(per_draw[d], per_draw[d][:1].expand_as(per_draw[d]), atol=1e-6)
    assert not torch.allclose(per_draw[0], per_draw[1])
    rec.seen.clear()
    _measure("gaussian-iid", 30.0, ctx, draws=1)
    iid = torch.cat(rec.seen) - clean
    assert not torch.allclose(iid[0], iid[1])


def test_gaussian_strength_zero_is_identity():
    ctx = _toy_context()
    assert noise_std_for_snr(ctx.data.float(), math.inf) == 0.0
    clean = _values(_measure("clean", None, ctx), "accuracy")[0]
    noisy = _measure("gaussian", math.inf, ctx, draws=3)
    assert _values(noisy, "accuracy") == [clean] * 3


# --- FGSM ---------------------------------------------------------------------------------
@pytest.mark.parametrize("target", [15.0, 33.0])
def test_fgsm_realised_snr_per_image_equals_target(target):
    ctx = _toy_context(n=32)
    x, y = next(ctx.batches())
    adv = fgsm(ctx.model, x, y, snr=target).clamp(0, 1)
    assert 0 < adv.min() and adv.max() < 1  # nothing clipped with these images
    assert torch.allclose(snr_db(x, adv - x).double(), torch.full((16,), target,
                          dtype=torch.float64), atol=1e-3)
    u = ctx.model.normalize(x)
    adv_u = fgsm(ctx.model.forward_normalized, u, y, snr=target)
    assert torch.allclose(snr_db(u, adv_u - u).double(), torch.full((16,), target,
                          dtype=torch.float64), atol=1e-3)


def test_fgsm_direction_is_the_sign_of_the_loss_gradient():
    torch.manual_seed(1)
    weight = torch.randn(10, 12)
    linear = lambda u: u.flatten(1) @ weight.T  # noqa: E731
    u = torch.rand(5, 12)
    y = torch.tensor([0, 1, 2, 3, 4])
    adv = fgsm(linear, u, y, linf=0.01)
    # hand gradient of the summed cross-entropy of a linear model: W^T (softmax - onehot)
    p = torch.softmax(linear(u), dim=1)
    grad = (p - torch.nn.functional.one_hot(y, 10).float()) @ weight
    assert torch.allclose(adv - u, 0.01 * grad.sign(), atol=1e-7)
    loss = lambda v: torch.nn.functional.cross_entropy(linear(v), y)  # noqa: E731
    assert loss(adv) > loss(u)


def test_fgsm_before_clips_and_after_does_not():
    ctx = _toy_context(n=16, lo=0.0, hi=1.0)
    x, y = next(ctx.batches())
    before = fgsm(ctx.model, x, y, snr=10.0).clamp(0, 1)
    assert before.min() >= 0 and before.max() <= 1
    u = ctx.model.normalize(x)
    after = fgsm(ctx.model.forward_normalized, u, y, snr=10.0)
    pixels = after * ctx.model.normalize.std + ctx.model.normalize.mean
    assert pixels.min() < 0 or pixels.max() > 1  # unclipped, outside the pixel range
    rows_b = _measure("fgsm-before-norm", 10.0, ctx)
    rows_a = _measure("fgsm-after-norm", 10.0, ctx)
    assert _values(rows_b, "snr_db") != _values(rows_a, "snr_db")


# --- Dropout ------------------------------------------------------------------------------
def test_dropout_p0_is_clean_accuracy_exactly():
    ctx = _toy_context()
    clean = _values(_measure("clean", None, ctx), "accuracy")[0]
    rows = _measure("dropout", 0.0, ctx, repeats=3)
    assert _values(rows, "accuracy") == [clean] * 3


def test_dropout_repeats_differ_and_reproduce():
    ctx = _toy_context(n=128)
    first = _values(_measure("dropout", 0.4, ctx, repeats=5), "accuracy")
    again = _values(_measure("dropout", 0.4, ctx, repeats=5), "accuracy")
    assert first == again and len(set(first)) > 1


def test_seeded_dropout_is_inverted_dropout():
    gen = torch.Generator().manual_seed(0)
    t = torch.ones(200_000)
    out = seeded_dropout(0.25, gen)(t)
    values = out.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and math.isclose(values[1], 1 / 0.75,
                                                                  rel_tol=1e-6)
    assert abs(float((out == 0).float().mean()) - 0.25) < 0.01


# --- Quantisation -------------------------------------------------------------------------
def test_quantized_weights_are_scaled_integers_in_range():
    ctx = _toy_context()
    before = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    q, clamped, total = quantized_copy(ctx.model, 5)
    for (name, w), (_, wq) in zip(ctx.model.named_modules(), q.named_modules(), strict=True):
        if isinstance(w, nn.Conv2d | nn.Linear):
            v = power_of_two_scale(w.weight, 5)
            levels = wq.weight.double() * v
            assert torch.equal(levels, levels.round()), name
            assert levels.abs().max() <= 15
            small = w.weight.abs() < 1 / v
            assert (wq.weight[small] == 0).all()
            assert torch.equal(wq.bias, w.bias)
            peak = float(w.weight.detach().abs().max())
            assert 8 <= peak * v < 16 or peak >= 1  # M 2^(n-1) in [0.5, 1)
    assert clamped == 0 and total > 0
    after = ctx.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_32_bit_budget_changes_nothing_measurable():
    ctx = _toy_context()
    clean = _values(_measure("clean", None, ctx), "accuracy")
    rows = _measure("quantize", 32.0, ctx)
    assert _values(rows, "accuracy") == clean
    q, _, _ = quantized_copy(ctx.model, 32)
    for a, b in zip(ctx.model.parameters(), q.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-8)  # truncation error below 2^-27


def test_power_of_two_scale_examples():
    assert power_of_two_scale(torch.tensor([0.3]), 5) == 2.0**5  # n=2: 0.3*4 >= 1
    assert power_of_two_scale(torch.tensor([0.5]), 5) == 2.0**4  # n=1
    assert power_of_two_scale(torch.tensor([2.0]), 5) == 2.0**3  # M >= 1: n=0


# --- DeepFool -----------------------------------------------------------------------------
def test_deepfool_foolbox_backend_equals_foolbox_called_directly(digits_run):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import foolbox as fb
    from robustbench_graph import load_dataset
    from robustbench_graph.perturbations.deepfool import foolbox_deepfool

    run = load_run(digits_run)
    test = load_dataset("digits", False)
    x, y = test.float(slice(0, 40)), test.labels[:40]
    ours = foolbox_deepfool(run.model, x, y, norm="l2", steps=50, candidates=10,
                            overshoot=0.02, loss="logits")
    attack = fb.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02)
    direct, _, _ = attack(fb.PyTorchModel(run.model, bounds=(0, 1)), x, y, epsilons=None)
    assert torch.equal(ours, direct)
    with torch.no_grad():
        fooled = run.model(ours).argmax(1) != y
        correct = run.model(x).argmax(1) == y
    moved = (ours - x).flatten(1).norm(dim=1) > 0
    assert fooled[correct & moved].all()  # every successful perturbation changes the label


@pytest.mark.parametrize("backend", ["foolbox", "native"])
def test_deepfool_metrics(digits_run, backend):
    if backend == "native":
        pytest.importorskip("robustbench_graph.perturbations.deepfool.native")
    run = load_run(digits_run)
    from robustbench_graph import load_dataset

    ctx = EvalContext(run.model, load_dataset("digits", False), CPU, run.name)
    rows = {r.metric: r for r in _measure("deepfool", None, ctx, samples=60, backend=backend)}
    assert rows["success_rate"].value > 0.9
    assert 0 < rows["median_l2"].value and 0 < rows["mean_l2"].value < 10
    per_dim = rows["mean_l2_per_dim"]
    expected = rows["mean_l2"].value * rows["mean_l2"].n / 64 / per_dim.n
    assert math.isclose(per_dim.value, expected, rel_tol=1e-9)


def test_deepfool_linf_cell(digits_run):
    pytest.importorskip("robustbench_graph.perturbations.deepfool.native")
    run = load_run(digits_run)
    from robustbench_graph import load_dataset

    ctx = EvalContext(run.model, load_dataset("digits", False), CPU, run.name)
    family = _family("deepfool", samples=30, norms=("l2", "linf"))
    cells = family.cells(ImageSubset())
    assert [c.param_value for c in cells] == [2.0, math.inf]
    rows = {r.metric: r for r in family.measure(cells[1], ctx)}
    assert set(rows) == {"mean_linf", "median_linf", "success_rate"}
    assert 0 < rows["median_linf"].value < 1


# --- Progress and per-image hooks -----------------------------------------------------------
def test_progress_reports_every_batch_of_every_repeat():
    ctx = _toy_context(n=64)  # 4 batches of 16
    calls = []
    ctx.progress = lambda done, total: calls.append((done, total))
    _measure("dropout", 0.25, ctx, repeats=3)
    assert calls == [(i, 12) for i in range(1, 13)]
    calls.clear()
    _measure("pgd", 0.01, ctx, steps=2)
    assert calls == [(i, 4) for i in range(1, 5)]


def test_deepfool_keeps_each_images_minimal_distance(digits_run):
    """distance: 0 where misclassified when clean, inf where the attack failed, else the
    norm of the successful perturbation, so robust accuracy at eps is mean(distance > eps)."""
    pytest.importorskip("robustbench_graph.perturbations.deepfool.native")
    from robustbench_graph import load_dataset

    run = load_run(digits_run)
    test = load_dataset("digits", False)
    chosen = torch.arange(0, len(test), 3)  # as under --samples: a subset of the test split
    ctx = EvalContext(run.model, test.subset(chosen), CPU, run.name, batch_size=16,
                      test_indices=chosen)
    calls = []
    ctx.progress = lambda done, total: calls.append((done, total))
    family = _family("deepfool", samples=40, steps=1)  # 1 step: many attacks fail
    (cell,) = family.cells(ImageSubset())
    rows = {r.metric: r for r in family.measure(cell, ctx)}
    assert calls == [(1, 3), (2, 3), (3, 3)]
    kept = ctx.kept[cell.key]
    rows_in_subset = ImageSubset(40, "spaced").indices(len(chosen))
    assert kept["image"].tolist() == chosen[rows_in_subset].tolist()  # test-split indices
    x, y = test.float(kept["image"].tolist()), test.labels[kept["image"].tolist()]
    assert kept["label"].tolist() == y.tolist()
    with torch.no_grad():
        clean_acc = float((run.model(x).argmax(1) == y).double().mean())
    distance = torch.tensor(kept["distance"].to_numpy())
    assert float((distance > 0).double().mean()) == pytest.approx(clean_acc, abs=1e-12)
    finite = distance[(distance > 0) & distance.isfinite()]
    ok = rows["success_rate"]
    assert len(finite) == round(ok.value * ok.n) == rows["mean_l2"].n
    assert (distance == math.inf).sum() > 0  # the curve keeps failed attacks as robust
    assert float(finite.mean()) == pytest.approx(rows["mean_l2"].value, rel=1e-9)


def test_per_image_file_round_trip(tmp_path):
    import pandas as pd

    from robustbench_graph.rundir.per_image import per_image_path, read_per_image, write_per_image

    table = pd.DataFrame({"image": [0, 10, 20], "label": [3, 1, 4],
                          "distance": [0.0, 0.1234567891, math.inf]})
    path = per_image_path(tmp_path, "deepfool", "norm", 2.0, "abc123abc123")
    assert path == tmp_path / "per_image" / "deepfool-norm=2-abc123abc123.csv"
    assert read_per_image(tmp_path, "deepfool", "norm", 2.0, "abc123abc123") is None
    write_per_image(path, table)
    back = read_per_image(tmp_path, "deepfool", "norm", 2.0, "abc123abc123")
    assert back["image"].tolist() == [0, 10, 20] and back["label"].tolist() == [3, 1, 4]
    assert back["distance"].tolist() == pytest.approx([0.0, 0.1234567891, math.inf])
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    path.write_text("a,b\n1,2\n")
    assert read_per_image(tmp_path, "deepfool", "norm", 2.0, "abc123abc123") is None


def test_dropout_passes_count_a_forward_per_image_rate_and_repeat():
    """A counted run makes the forwards declared; the masks are priced as a third more."""
    ctx = _toy_context(n=40)
    family = _family("dropout", p=(0.25, 0.5), repeats=3)
    rows = []
    handle = ctx.model.head.register_forward_hook(lambda _m, _i, out: rows.append(len(out)))
    try:
        for cell in family.cells(ImageSubset()):
            family.measure(cell, ctx)
    finally:
        handle.remove()
    forward = 40 * 2 * 3
    assert sum(rows) == forward
    assert family.passes(40) == (forward + forward // 3, 0)
