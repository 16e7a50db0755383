"""The noise paper's perturbations: identity at strength 0, stronger settings move images
further (L2), draws reproduce by seed, a patch larger than the image is refused."""

import shutil

import pandas as pd
import pytest
import torch

from robustbench_graph.data import load_dataset
from robustbench_graph.errors import RbgError
from robustbench_graph.perturbations.downup import down_up
from robustbench_graph.perturbations.gaussian_patches import gaussian_then_patches
from robustbench_graph.perturbations.patches import patch_size, zero_patches
from robustbench_graph.perturbations.uniform_noise import uniform_noise
from robustbench_graph.report.headline import headline_strength

from conftest import cli


@pytest.fixture(scope="module")
def images():
    return load_dataset("mnist5k", False).float()[:64]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _distance(a, b):
    return float((a - b).flatten(1).norm(dim=1).mean())


def test_strength_zero_is_the_identity(images):
    assert torch.equal(uniform_noise(images, 0.0, _gen()), images)
    assert torch.equal(down_up(images, 1.0), images)
    assert torch.equal(zero_patches(images, 0, 8, _gen()), images)
    assert torch.equal(gaussian_then_patches(images, 0.0, 0, 8, _gen()), images)


def test_stronger_settings_move_images_further(images):
    uniform = [_distance(uniform_noise(images, e, _gen()).clamp(0, 1), images)
               for e in (0.03, 0.06, 0.1, 0.3)]
    downup = [_distance(down_up(images, f), images) for f in (0.75, 0.5, 1 / 3, 0.25)]
    patches = [_distance(zero_patches(images, k, 8, _gen()), images) for k in (1, 2, 4, 8)]
    combined = [_distance(gaussian_then_patches(images, s, 2, 8, _gen()), images)
                for s in (0.0, 20 / 255, 40 / 255, 60 / 255, 0.3)]
    for values in (uniform, downup, patches, combined):
        assert values == sorted(values) and values[0] > 0, values


def test_draws_reproduce_by_seed(images):
    assert torch.equal(uniform_noise(images, 0.1, _gen(3)), uniform_noise(images, 0.1, _gen(3)))
    assert not torch.equal(uniform_noise(images, 0.1, _gen(3)),
                           uniform_noise(images, 0.1, _gen(4)))
    a, b = zero_patches(images, 3, 6, _gen(5)), zero_patches(images, 3, 6, _gen(5))
    assert torch.equal(a, b) and not torch.equal(a, zero_patches(images, 3, 6, _gen(6)))
    c = gaussian_then_patches(images, 0.1, 2, 5, _gen(7))
    assert torch.equal(c, gaussian_then_patches(images, 0.1, 2, 5, _gen(7)))
    assert not torch.equal(c, gaussian_then_patches(images, 0.1, 2, 5, _gen(8)))
    assert float(c.min()) >= 0 and float(c.max()) <= 1
    assert int((c == 0).flatten(1).sum(1).min()) >= 25  # at least one 5x5 patch is zero
    changed = (a != images).flatten(1).sum(1)  # at most 3 patches of 36 pixels per image
    assert int(changed.max()) <= 3 * 36


def test_patches_larger_than_the_image_are_refused(images):
    with pytest.raises(RbgError, match="do not fit 28x28 images"):
        zero_patches(images, 1, 29, _gen())
    with pytest.raises(RbgError, match="do not fit 28x28 images"):
        gaussian_then_patches(images, 0.1, 1, 29, _gen())
    with pytest.raises(RbgError, match="do not fit 28x28 images"):  # it would blank them
        zero_patches(images, 1, 28, _gen())
    assert patch_size(0, images.shape) == 7 and patch_size(0, (3, 32, 32)) == 8
    assert patch_size(0, (1, 8, 8)) == 2 and patch_size(5, images.shape) == 5


def test_a_declared_headline_of_many_digits_is_found_among_the_saved_values():
    # results.csv keeps 10 significant digits: 1/3 reads back as 0.3333333333
    assert headline_strength("downup", "grey", [0.3333333333, 0.5, 0.75]) == 0.3333333333
    assert headline_strength("gaussian-patches", "colour",
                             [0.07843137255, 0.1568627451, 0.2352941176]) == 0.1568627451


def test_rbg_attack_runs_them_and_refuses_a_patch_too_large(digits_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    result = cli("attack", "--runs", run, "--suite",
                 "uniform-noise,downup,patches,gaussian-patches",
                 "-p", "uniform-noise.draws=2", "-p", "patches.draws=2",
                 "-p", "patches.size=4", "-p", "gaussian-patches.draws=2",
                 "-p", "gaussian-patches.size=4", "--device", "cpu")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "results.csv")
    assert set(table.perturbation) == {"uniform-noise", "downup", "patches",
                                       "gaussian-patches"}
    assert len(table[table.perturbation == "uniform-noise"]) == 4 * 2  # grey: 4 eps x 2 draws
    result = cli("attack", "--runs", run, "--suite", "patches", "-p", "patches.size=9",
                 "--overwrite", "--device", "cpu")
    assert result.exit_code == 1 and "do not fit 8x8 images" in result.output
