"""The local-Lipschitz curve: its ratio against hand computations and a plain loop, zero for a
constant model, monotone after the running max, reproducible by seed, the same whichever of
its cells are cached; rbg attack measures it on training images and rbg report draws it."""

import math
import shutil

import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_graph.config import ImageSubset, stable_seed
from robustbench_graph.data import DatasetInfo, ImageData
from robustbench_graph.errors import RbgError
from robustbench_graph.perturbations import EvalContext, family_class
from robustbench_graph.perturbations.lipschitz import (
    DEFAULT_RADII,
    alpha_curve,
    ratios,
    scaled_noise,
)

from conftest import cli

CPU = torch.device("cpu")
INFO = DatasetInfo("toy", 3, (1, 4, 4), (0.5,), (0.25,), False, False)


class Linear(nn.Module):
    """Logits W x (flattened), no normalisation: f on [0, 1] inputs."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T


def _images(n=12, seed=0):
    # Values in [0.2, 0.8]: small noise is never clipped.
    gen = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand((n, *INFO.input_shape), generator=gen)


def _seed(base=0):
    return lambda radius, draw, block: stable_seed(base, f"{radius:.10g}", draw, block)


def _family(**raw):
    cls = family_class("lipschitz")
    return cls(cls.resolve({k: str(v) for k, v in raw.items()}, "grey"))


def test_default_grid_is_lapnets_30_radii():
    assert len(DEFAULT_RADII) == 30
    assert DEFAULT_RADII[0] == pytest.approx(1.75 / 30) and DEFAULT_RADII[-1] == 1.75
    cells = _family().cells(ImageSubset())
    assert [c.param_value for c in cells] == list(DEFAULT_RADII)
    assert all(c.settings["grid"] == list(DEFAULT_RADII) for c in cells)
    # The running max depends on the grid: another grid is another cell fingerprint.
    other = _family(radius="0.5,1.75").cells(ImageSubset())
    assert other[-1].key == cells[-1].key and other[-1].fingerprint != cells[-1].fingerprint


def test_noise_has_the_radius_as_l2_norm_and_uniform_entries():
    noise = scaled_noise(50, (1, 4, 4), 0.3, torch.Generator().manual_seed(1), CPU)
    assert torch.allclose(noise.flatten(1).norm(dim=1), torch.full((50,), 0.3))
    assert len({tuple(v.sign().flatten().tolist()) for v in noise}) == 50  # distinct draws


def test_ratio_of_a_linear_softmax_matches_a_hand_computation():
    torch.manual_seed(0)
    weight = torch.randn(3, 16)
    model = Linear(weight)
    x = _images(5)
    noise = scaled_noise(5, (1, 4, 4), 1e-3, torch.Generator().manual_seed(2), CPU)
    clean = torch.softmax(model(x), dim=1).detach()
    got = ratios(model, x, clean, noise)
    for i in range(5):
        # First order: the softmax Jacobian (diag(p) - p p^T) W along the displacement.
        p = clean[i].double()
        jac = (torch.diag(p) - torch.outer(p, p)) @ weight.double()
        n = noise[i].flatten().double()
        expected = float((jac @ n).norm() / n.norm())
        assert got[i].item() == pytest.approx(expected, rel=1e-2)


def test_a_model_with_constant_softmax_has_alpha_zero():
    model = Linear(torch.zeros(3, 16))
    curve = alpha_curve(model, _images(), (0.1, 0.5), 4, _seed())
    assert all(p.raw == 0.0 and p.alpha == 0.0 for p in curve.values())


def test_vectorised_curve_matches_a_plain_loop():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    x = _images(7)
    x[0] = 1.0  # a saturated image: positive noise entries are clipped away
    radii, draws, seed = (0.4, 0.1, 1.0), 3, _seed(7)
    curve = alpha_curve(model, x, radii, draws, seed, batch_size=3)
    best = -math.inf
    for r in sorted(radii):
        top = -math.inf
        for d in range(draws):
            noise = scaled_noise(len(x), (1, 4, 4), r,
                                 torch.Generator().manual_seed(seed(r, d, 0)), CPU)
            for i in range(len(x)):
                with torch.no_grad():
                    moved = (x[i] + noise[i]).clamp(0, 1)
                    move = float((moved - x[i]).norm())
                    change = float((torch.softmax(model(moved[None]), 1)
                                    - torch.softmax(model(x[i][None]), 1)).norm())
                if move > 0:
                    top = max(top, change / move)
        best = max(best, top)
        assert curve[r].raw == pytest.approx(top, rel=1e-5)
        assert curve[r].alpha == pytest.approx(best, rel=1e-5)
        assert curve[r].counted + curve[r].skipped == draws * len(x)


def test_a_displacement_clipped_to_zero_is_skipped():
    ones = torch.ones((4, *INFO.input_shape))
    model = Linear(torch.randn(3, 16))
    out = ratios(model, ones, torch.softmax(model(ones), 1), torch.full_like(ones, 0.1))
    assert out.isnan().all()  # 0 / 0 is not a ratio
    # One-pixel images: white is unchanged when the noise (+-r) is positive, black when it
    # is negative, grey never; the skipped pairs are exactly those.
    x = torch.tensor([1.0, 0.0, 0.5]).view(3, 1, 1, 1)
    pixel = Linear(torch.tensor([[2.0], [-1.0], [0.5]]))
    draws, seed = 20, _seed(5)
    curve = alpha_curve(pixel, x, (0.25,), draws, seed)
    signs = torch.cat([scaled_noise(3, (1, 1, 1), 0.25,
                                    torch.Generator().manual_seed(seed(0.25, d, 0)), CPU)
                       .flatten().sign()[None] for d in range(draws)])
    skipped = int((signs[:, 0] > 0).sum() + (signs[:, 1] < 0).sum())
    assert 0 < skipped < 2 * draws
    assert curve[0.25].skipped == skipped and curve[0.25].counted == 3 * draws - skipped
    assert math.isfinite(curve[0.25].raw)


def test_shared_noise_is_one_vector_per_draw():
    model = Linear(torch.randn(3, 16))
    seen = []

    def forward(x):
        seen.append(x)
        return model(x)

    x = torch.full((6, *INFO.input_shape), 0.5)
    alpha_curve(forward, x, (0.1,), 1, _seed(), shared=True, batch_size=6)
    assert torch.equal(seen[1], seen[1][:1].expand_as(seen[1]))  # after the clean pass
    seen.clear()
    alpha_curve(forward, x, (0.1,), 1, _seed(), shared=False, batch_size=6)
    assert not torch.equal(seen[1][0], seen[1][1])


def _ctx(model, run="toy-run", batch_size=5):
    data = ImageData((_images(20) * 255).round().to(torch.uint8), torch.zeros(20, dtype=int),
                     255.0, INFO)
    return EvalContext(model, data, CPU, run, batch_size=batch_size)


def _measure(family, ctx, cells):
    return {c.param_value: {r.metric: r.value for r in family.measure(c, ctx)} for c in cells}


def test_curve_is_monotone_reproducible_and_independent_of_cached_cells():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    raw = {"radius": "0.05,0.2,0.1,0.6,0.3", "draws": 3, "images": 15}
    family = _family(**raw)
    cells = family.cells(ImageSubset())
    full = _measure(family, _ctx(model), cells)
    alphas = [full[r]["alpha"] for r in sorted(full)]
    assert alphas == sorted(alphas) and alphas[0] > 0
    assert all(full[r]["alpha"] >= full[r]["alpha_raw"] for r in full)
    # A fresh family that measures only the last cells (the others cached) agrees exactly,
    # whatever the batch size.
    late = _measure(_family(**raw), _ctx(model, batch_size=7), cells[3:])
    assert all(late[r] == pytest.approx(full[r], rel=1e-6) for r in late)
    other = _measure(_family(**raw), _ctx(model, run="other-run"), cells)
    assert other != full  # seeded by the run name


def test_settings_are_checked():
    with pytest.raises(RbgError, match="radius -1 is out of range"):
        _family(radius="-1")
    with pytest.raises(RbgError, match="draws must be in"):
        _family(draws=0)


def test_rbg_attack_uses_training_images_and_rbg_report_draws_the_curve(digits_run, tmp_path):
    run = tmp_path / "runs" / "run"
    shutil.copytree(digits_run, run)
    small = ["-p", "lipschitz.draws=2", "-p", "lipschitz.images=40",
             "-p", "lipschitz.radius=0.25,0.875,1.5"]
    result = cli("attack", "--runs", run, "--suite", "lipschitz", *small, "--device", "cpu")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "results.csv")
    alpha = table[table.metric == "alpha"].sort_values("param_value")
    assert list(alpha.param_value) == [0.25, 0.875, 1.5]
    assert list(alpha.value) == sorted(alpha.value) and alpha.value.iloc[0] > 0
    assert set(table[table.metric == "alpha"].n) == {80}  # 40 training images x 2 draws

    # Against the training images themselves (not the test split the context holds).
    from robustbench_graph.data import load_dataset
    from robustbench_graph.rundir.runs import load_run

    loaded = load_run(run, CPU)
    train = load_dataset("digits", True, split_seed=loaded.train_config.split_seed)
    family = _family(draws=2, images=40, radius="0.25,0.875,1.5")
    ctx = EvalContext(loaded.model, train, CPU, loaded.name, batch_size=200)
    direct = _measure(family, ctx, family.cells(ImageSubset()))
    assert [direct[r]["alpha"] for r in (0.25, 0.875, 1.5)] == pytest.approx(
        list(alpha.value), rel=1e-6)

    again = cli("attack", "--runs", run, "--suite", "lipschitz", *small, "--device", "cpu")
    assert again.exit_code == 0 and "0 cells computed" in again.output, again.output
    subset = cli("attack", "--runs", run, "--suite", "lipschitz", *small, "--samples", "20",
                 "--device", "cpu")  # on training images: --samples reuses the cells
    assert subset.exit_code == 0 and "0 cells computed" in subset.output, subset.output
    out = tmp_path / "report"
    result = cli("report", "--runs", tmp_path / "runs", "--out", out)
    assert result.exit_code == 0, result.output
    assert list((out / "plots").glob("*lipschitz-radius*.png")), sorted(
        p.name for p in (out / "plots").iterdir())
