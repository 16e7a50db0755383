"""Randomized smoothing (Cohen et al. 2019): closed-form checks on a linear classifier, the
Clopper-Pearson bound, abstention, batch-size independence, an independent per-image
reference on a trained run, and certified <= empirical robust accuracy through the CLI."""

import math
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import beta, binom, binomtest, norm
from torch import nn

from robustbench_graph.config import ImageSubset, stable_seed
from robustbench_graph.data import DatasetInfo, ImageData
from robustbench_graph.errors import RbgError
from robustbench_graph.perturbations import EvalContext, family_class
from robustbench_graph.perturbations import smoothing_stats as stats
from robustbench_graph.perturbations.smoothing import BLOCK, class_counts

from conftest import cli

CPU = torch.device("cpu")
TOY = DatasetInfo("linear-toy", 2, (1, 4, 4), (0.5,), (0.25,), False, False)
SIGMA = 0.25


class Linear(nn.Module):
    """f(x) = 1 if w.x + b > 0 else 0 with w = 1/4 everywhere (||w|| = 1) and b = -2: on a
    constant image of value c, the margin is 4c - 2, the smoothed classifier's true radius
    |4c - 2| and p_A = Phi(|4c - 2| / sigma)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1).sum(1) / 4 - 2
        return torch.stack([-z, z], dim=1)


def _toy(levels, labels=None):
    images = torch.tensor(levels, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4)
    truth = torch.tensor([int(v / 255 > 0.5) for v in levels])
    return ImageData(images.contiguous(), truth if labels is None else torch.tensor(labels),
                     255.0, TOY)


def _true(levels):
    margin = np.abs(4 * np.asarray(levels) / 255 - 2)
    return margin, norm.cdf(margin / SIGMA)


def _family(**raw):
    cls = family_class("smoothing")
    return cls(cls.resolve({k: str(v) for k, v in raw.items()}, "grey"))


def _certify(family, ctx):
    """Measure every cell; returns ({radius: {metric: value}}, the per-image table)."""
    out = {}
    for cell in family.cells(ImageSubset()):
        out[cell.param_value] = {r.metric: r.value for r in family.measure(cell, ctx)}
    (table,) = ctx.kept.values()
    return out, table


def test_clopper_pearson_lower_bound_by_hand():
    k, n, alpha = np.array([0, 1, 37, 99, 100]), 100, 0.001
    got = stats.clopper_pearson_lower(k, n, alpha)
    assert got[0] == 0.0
    assert got[1:] == pytest.approx([beta.ppf(alpha, j, n - j + 1) for j in k[1:]], rel=1e-12)
    assert got[-1] == pytest.approx(alpha ** (1 / n), rel=1e-12)  # Beta(n, 1): p^n = alpha
    for j, p in zip(k[1:], got[1:], strict=True):  # the exact tail: P(Bin(n, p) >= k) = alpha
        assert binom.sf(j - 1, n, p) == pytest.approx(alpha, rel=1e-6)
    assert stats.radius_cap(0.25, 1000, 0.001) == pytest.approx(
        0.25 * norm.ppf(0.001 ** (1 / 1000)))
    assert stats.min_draws(0.001) == 10 and stats.too_few_draws(10, 0.001) is None
    assert "use n >= 10" in stats.too_few_draws(9, 0.001)


def test_linear_classifier_radius_approaches_the_true_one_from_below():
    levels = [150, 160, 170, 180, 100, 90]  # true radii 0.35 .. 0.67
    margin, p_a = _true(levels)
    ctx = EvalContext(Linear(), _toy(levels), CPU, "closed-form", batch_size=50)
    n = 20000
    counts = class_counts(lambda z: Linear()(z).argmax(1), ctx.images, 2, n, SIGMA,
                          lambda row, block: stable_seed("direct", row, block), 4096).numpy()
    truth = ctx.labels.numpy()
    p_hat = counts[np.arange(len(levels)), truth] / n
    assert (np.abs(p_hat - p_a) <= 4.5 * np.sqrt(p_a * (1 - p_a) / n)).all()  # binomial sd
    radii = {}
    for draws in (1000, n):
        family = _family(n=draws, n0=100, alpha=0.001, sigma=SIGMA, radius="0,0.25",
                         samples=len(levels))
        ctx.kept.clear()
        _, table = _certify(family, ctx)
        assert list(table.prediction) == list(truth)
        assert (table.p_lower <= p_a).all() and (table.radius <= margin).all()  # sound
        # and close: at least the bound of a count 4.5 binomial sd below its expectation
        low = np.floor(draws * p_a - 4.5 * np.sqrt(draws * p_a * (1 - p_a)))
        assert (table.p_lower >= beta.ppf(0.001, low, draws - low + 1)).all()
        radii[draws] = table.radius.to_numpy()
    assert (radii[1000] < radii[n]).all() and (margin - radii[n] < 0.05).all()


def test_linear_classifier_bound_fails_at_most_alpha_of_the_time():
    level, alpha, images = 160, 0.1, 400  # p_A = Phi(0.51 / 0.25) = 0.979
    margin, _ = _true([level])
    ctx = EvalContext(Linear(), _toy([level] * images), CPU, "soundness", batch_size=100)
    _, table = _certify(_family(n=40, n0=10, alpha=alpha, sigma=SIGMA, radius="0",
                                samples=images), ctx)
    exceed = float((table.radius > margin[0]).mean())  # each image its own seeds
    assert exceed <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / images)
    assert (table.radius > 0).mean() > 0.5  # and it does certify


def test_abstains_on_the_boundary_and_when_n_is_too_small():
    levels = [127, 128, 200]  # margin 4c - 2 = -0.008, +0.008: p_A ~ 1/2; then 1.14
    ctx = EvalContext(Linear(), _toy(levels), CPU, "abstain", batch_size=50)
    result, table = _certify(_family(n=2000, n0=100, alpha=0.001, radius="0", samples=3), ctx)
    assert list(table.prediction[:2]) == [-1, -1] and list(table.smoothed_prediction[:2]) == [
        -1, -1]
    assert table.prediction[2] == 1 and table.radius[2] > 0
    assert result[0.0]["abstain_rate"] == pytest.approx(2 / 3)
    small = _family(n=5, n0=5, alpha=0.001, radius="0", samples=3)
    ctx = EvalContext(Linear(), _toy(levels), CPU, "abstain", batch_size=50)
    with pytest.warns(RuntimeWarning, match=r"n = 5 draws cannot certify any image"):
        result, table = _certify(small, ctx)
    assert (table.prediction == -1).all() and result[0.0]["certified_accuracy"] == 0.0
    prediction, p = stats.predict(np.array([[50, 50, 0], [90, 10, 0]]), 0.001)
    assert list(prediction) == [-1, 0] and p[1] == binomtest(90, 100, 0.5).pvalue


@pytest.mark.parametrize("raw", [{"sigma": 0}, {"sigma": -1}, {"n0": 0}, {"n": 0},
                                 {"alpha": 0}, {"alpha": 1}, {"radius": "-0.1"},
                                 {"batch": 0}, {"subset": "odd"}])
def test_bad_settings_are_one_line(raw):
    with pytest.raises(RbgError) as err:
        _family(**raw)
    message = str(err.value)
    assert "\n" not in message and ("smoothing" in message or "subset" in message), message


@pytest.fixture(scope="module")
def digits(digits_run):
    from robustbench_graph.data import load_dataset
    from robustbench_graph.rundir.runs import load_run

    loaded = load_run(digits_run, CPU)
    test = load_dataset("digits", False, split_seed=loaded.train_config.split_seed)
    return loaded, test


def test_numbers_do_not_depend_on_batch_size_or_image_choice(digits):
    loaded, test = digits
    tables = []
    for batch, samples in ((1000, 8), (7, 8), (64, 4)):
        ctx = EvalContext(loaded.model, test, CPU, loaded.name, batch_size=batch)
        _, table = _certify(_family(n=40, n0=10, batch=batch, samples=samples,
                                    subset="first", radius="0"), ctx)
        tables.append(table.set_index("image"))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    pd.testing.assert_frame_equal(tables[0].loc[tables[2].index], tables[2])


def _reference(model, x, label, run, index, sigma, n0, n, alpha, classes):
    """Cohen's CERTIFY and PREDICT for one image, from the pseudocode, with rbg's noise."""
    def sample(phase, draws):
        counts = Counter()
        for block, start in enumerate(range(0, draws, BLOCK)):
            gen = torch.Generator().manual_seed(stable_seed(run, "smoothing", phase, index,
                                                            block))
            eps = torch.randn((min(BLOCK, draws - start), *x.shape), generator=gen)
            with torch.no_grad():
                counts.update(model(x + sigma * eps).argmax(1).tolist())
        return [counts[c] for c in range(classes)]

    c_a = int(np.argmax(sample("select", n0)))
    n_a = sample("estimate", n)[c_a]
    p_lower = beta.ppf(alpha, n_a, n - n_a + 1) if n_a else 0.0
    certified = (c_a, sigma * norm.ppf(p_lower)) if p_lower > 0.5 else (-1, 0.0)
    top = sorted(enumerate(sample("predict", n)), key=lambda t: -t[1])
    (a, count_a), (_, count_b) = top[0], top[1]
    predicted = a if binomtest(count_a, count_a + count_b, 0.5).pvalue <= alpha else -1
    return certified, predicted


def test_matches_a_per_image_reference_of_the_pseudocode(digits):
    loaded, test = digits
    ctx = EvalContext(loaded.model, test, CPU, loaded.name, batch_size=200)
    family = _family(n=300, n0=30, samples=12, sigma=0.5, alpha=0.01, radius="0")
    _, table = _certify(family, ctx)
    assert (table.prediction == -1).any() or (table.radius > 0).all()
    for row in table.itertuples():
        x = test.float(slice(int(row.image), int(row.image) + 1))[0]
        (c, radius), predicted = _reference(loaded.model, x, row.label, loaded.name,
                                            int(row.image), 0.5, 30, 300, 0.01, 10)
        assert (row.prediction, row.smoothed_prediction) == (c, predicted)
        assert row.radius == pytest.approx(radius, rel=1e-9, abs=1e-12)


def test_rbg_attack_and_report_certified_never_above_deepfool(digits_run, tmp_path):
    run = tmp_path / "runs" / "run"
    shutil.copytree(digits_run, run)
    result = cli("attack", "--runs", run, "--suite", "smoothing,deepfool", "--device", "cpu",
                 "-p", "smoothing.n=300", "-p", "smoothing.n0=30", "-p", "smoothing.samples=60",
                 "-p", "smoothing.radius=0,0.1,0.2,0.3", "-p", "deepfool.samples=60")
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(run / "results.csv")
    curve = rows[rows.metric == "certified_accuracy"].sort_values("param_value")
    assert list(curve.param_value) == [0, 0.1, 0.2, 0.3]
    assert list(curve.value) == sorted(curve.value, reverse=True) and curve.value.iloc[0] > 0.5
    assert set(rows[rows.perturbation == "smoothing"].metric) == {
        "certified_accuracy", "acr", "abstain_rate", "smoothed_accuracy"}
    (smooth,) = (run / "per_image").glob("smoothing-*.csv")
    (fool,) = (run / "per_image").glob("deepfool-*.csv")
    s, d = pd.read_csv(smooth).set_index("image"), pd.read_csv(fool).set_index("image")
    assert list(s.index) == list(d.index)  # the same 60 images
    grid = np.linspace(0, max(s.certified_radius.max(), 1e-3), 50)
    certified = [(s.certified_radius >= r).mean() if r > 0 else (s.certified_radius > 0).mean()
                 for r in grid]
    empirical = [(d.distance > r).mean() for r in grid]
    assert all(e >= c for e, c in zip(empirical, certified, strict=True)), (empirical,
                                                                           certified)
    out = tmp_path / "report"
    result = cli("report", "--runs", tmp_path / "runs", "--out", out)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (out / "plots").iterdir())
    assert any("smoothing-certified-accuracy" in n for n in names), names


class CountingModel(nn.Module):
    """Wraps a model and counts the images (batch rows) of every forward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows, self.calls = model, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        self.calls += 1
        return self.model(x)


def test_declared_passes_are_the_counted_forward_rows(digits):
    loaded, test = digits
    for raw in ({"n": 40, "n0": 10, "samples": 8, "batch": 64},
                {"n": 1500, "n0": 7, "samples": 3, "batch": 1000, "subset": "first"}):
        counting = CountingModel(loaded.model)
        ctx = EvalContext(counting, test, CPU, loaded.name, batch_size=50)
        family = _family(radius="0,0.1,0.2", **raw)  # three cells, one certification
        _certify(family, ctx)
        images = len(ImageSubset(raw["samples"], raw.get("subset", "spaced")).indices(len(test)))
        assert counting.rows == images * (raw["n0"] + 2 * raw["n"]) + 1  # + the class probe
        assert family.passes(len(test)) == (counting.rows, 0)
        assert family.passes(len(test)) > (family.cell_count() * images, 0)  # above the default


def test_importing_the_family_imports_no_torch():
    code = ("import sys, robustbench_graph.perturbations.smoothing, "
            "robustbench_graph.perturbations.smoothing_stats; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "False", out.stderr
