"""Gaussian-noise losses (METHODS.md section 5): lmd-noise and the noisy/both/stability
baselines, checked against their formulas with the same noise draw."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustbench_graph import load_run
from robustbench_graph.data import dataset_info
from robustbench_graph.errors import RbgError
from robustbench_graph.losses import create_loss
from robustbench_graph.losses.lmd import ClassCentreMemory, compactness, margin, signed_distances
from robustbench_graph.losses.noise import noisy_view
from robustbench_graph.models import create_model

from conftest import cli

NOISE_LOSSES = ["lmd-noise", "noisy", "both", "stability"]


def setup():  # noqa: ANN201
    torch.manual_seed(0)
    model = create_model("smallcnn", dataset_info("digits"), width=4, feature_dim=16)
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 0, 1, 1, 1, 4, 4, 7, 7, 7, 7, 9])
    return model, x, y


def noise_of(x: torch.Tensor, seed: int, sigma: float = 0.06) -> torch.Tensor:
    torch.manual_seed(seed)
    return noisy_view(x, sigma)


def test_noisy_view_is_clipped_fresh_per_sample_and_seeded():
    x = torch.full((64, 1, 8, 8), 0.5)
    a, b = noise_of(x, 3), noise_of(x, 3)
    assert torch.equal(a, b)  # the global RNG, seeded, decides the draw
    assert not torch.equal(a[0], a[1])
    assert abs(float((a - x).std()) - 0.06) < 0.005
    edges = noisy_view(torch.cat([torch.zeros(8, 1, 8, 8), torch.ones(8, 1, 8, 8)]), 0.5)
    assert float(edges.min()) == 0.0 and float(edges.max()) == 1.0


def test_lmd_noise_is_clean_ce_plus_lmd_with_noisy_features_in_the_compactness():
    model, x, y = setup()
    loss = create_loss("lmd-noise", {"delta_var": "0.1"}, 10)
    torch.manual_seed(5)
    out = loss(model, x, y)
    # by hand, with the same noise
    f, g = model.features(x), model.features(noise_of(x, 5))
    classes, inverse, means, centres = ClassCentreMemory(10, 0.99).update(f, y)
    ce = F.cross_entropy(model(x), y)
    compact = compactness(torch.cat([f, g]), torch.cat([inverse, inverse]), centres, 0.1)
    w, b = model.head.weight, model.head.bias
    expected = (ce + compact + margin(signed_distances(means, classes, w, b), 5.0)
                + 0.001 * centres.norm(dim=1).mean())
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.logits, model(x))  # CE and logits: clean images only
    torch.testing.assert_close(loss.memory.centres[classes], means.detach())  # clean centres
    assert out.parts["compact"] > 0


def test_noisy_both_and_stability_follow_their_formulas():
    model, x, y = setup()
    noisy = noise_of(x, 7)
    torch.manual_seed(7)
    out = create_loss("noisy", {}, 10)(model, x, y)
    torch.testing.assert_close(out.loss, F.cross_entropy(model(noisy), y))
    torch.testing.assert_close(out.logits, model(noisy))

    torch.manual_seed(7)
    out = create_loss("both", {}, 10)(model, x, y)
    logits = model(torch.cat([x, noisy]))
    torch.testing.assert_close(out.loss, F.cross_entropy(logits, torch.cat([y, y])))
    torch.testing.assert_close(out.logits, logits[:12])

    torch.manual_seed(7)
    out = create_loss("stability", {"weight": "2"}, 10)(model, x, y)
    gap = (model.features(x) - model.features(noisy)).norm(dim=1).mean()  # L2, not squared
    torch.testing.assert_close(out.loss, F.cross_entropy(model(x), y) + 2 * gap)
    assert float(gap.detach()) > 0


@pytest.mark.parametrize("name", NOISE_LOSSES)
def test_sigma_is_an_option_and_validated(name):
    assert create_loss(name, {"sigma": "0.1"}, 10).options.sigma == 0.1
    with pytest.raises(RbgError, match="sigma"):
        create_loss(name, {"sigma": "0"}, 10)


@pytest.mark.parametrize("name", NOISE_LOSSES)
def test_noise_losses_train_end_to_end(name, tmp_path):
    result = cli("train", "--dataset", "digits", "--loss", name, "--epochs", "1", "--seeds", "0",
                 "--width", "8", "--feature-dim", "16", "--out", tmp_path, "--device", "cpu")
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert load_run(run_dir).method == name
    assert (run_dir / "loss_state.safetensors").exists() == (name == "lmd-noise")


def test_align_compact_term_is_the_1_over_2nk_average_by_hand():
    """METHODS.md 5.1: per present class, the hinge over the n_k clean and the n_k noisy
    features divided by 2 n_k, then the mean over classes (hand-computed values)."""
    clean = torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0]])
    noisy = torch.tensor([[0.0, 3.0], [4.0, 0.0], [5.0, 5.3]])
    inverse = torch.tensor([0, 0, 1])
    centres = torch.tensor([[1.0, 0.0], [5.0, 5.0]])
    got = compactness(torch.cat([clean, noisy]), torch.cat([inverse, inverse]), centres, 0.5)
    # class 0: clean distances 1, 1 -> 0.5^2 each; noisy sqrt(10) and 3 -> (sqrt(10) - 0.5)^2
    # and 2.5^2; sum 13.837722 over 2 n_0 = 4 -> 3.4594306. Class 1: inside the ball -> 0.
    torch.testing.assert_close(got, torch.tensor(1.7297153), rtol=1e-6, atol=1e-6)
