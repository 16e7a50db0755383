"""The cost of a suite before work starts (issue #32): each family declares its passes, a
short probe prices them, and the terminal names the slow families."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from robustbench_graph.experiment.cost import (
    FamilyCost,
    Probe,
    RunEstimate,
    probe,
    suite_cost,
)
from robustbench_graph.perturbations import build_suite

from conftest import cli


def _family(name: str, **settings):  # noqa: ANN003, ANN202
    (family,) = build_suite([name], {name: settings}, "grey")
    return family


def test_the_base_declares_one_forward_per_image_cell_and_repeat() -> None:
    assert _family("clean").passes(100) == (100, 0)
    gaussian = _family("gaussian", snr_db=(10.0, 5.0, 5.0), draws=3)  # a repeated value: 1 cell
    assert gaussian.cell_count() == 2
    assert gaussian.passes(100) == (100 * 2 * 3, 0)


def test_gradient_attacks_declare_their_backward_passes() -> None:
    pgd = _family("pgd", eps=(0.1, 0.2), steps=10, restarts=2)
    assert pgd.passes(50) == (50 * 2 * 2 * 11, 50 * 2 * 2 * 10)
    fgsm = _family("fgsm-before-norm", snr_db=(10.0,), linf_eps=(0.1,))
    assert fgsm.passes(50) == (2 * 50 * 2, 50 * 2)
    deepfool = _family("deepfool", samples=30, steps=5, candidates=4)
    # steps 5 (under the typical 8): 5 steps of a forward and candidates - 1 backwards, and
    # the 2 classifications; on its 30 samples only, or fewer test images than samples
    assert deepfool.passes(50) == (30 * 7, 30 * 5 * 3)
    assert deepfool.passes(10) == (10 * 7, 10 * 5 * 3)
    assert deepfool.passes_at_most(10)[1] >= deepfool.passes(10)[1]


def test_lipschitz_counts_its_own_training_images_and_curvature_its_hvps() -> None:
    lip = _family("lipschitz", radius=(0.1, 0.2, 0.3), draws=4, images=100)
    assert lip.passes(5000) == (100 * (1 + 4 * 3), 0)
    plain = _family("curvature", probes=5, exact=False, noise_draws=2)
    assert plain.passes(10) == (10 * (1 + 5 + 2), 10 * (1 + 5))
    exact = _family("curvature", probes=5, exact=True, noise_draws=2)
    assert exact.passes(10) == (10 * (1 + 5 + 5 + 2), 10 * (1 + 5 + 4 * 5))  # HVP: 4 backwards


def test_suite_cost_prices_the_passes_and_names_the_slow_families() -> None:
    from robustbench_graph.cli.cost import estimate_lines

    measured = Probe(forward_s=1e-3, backward_s=2e-3, images=64, device="cpu")
    suite = build_suite(["clean", "pgd"], {"pgd": {"eps": (0.1,), "steps": 9}}, "grey")
    clean, pgd = suite_cost(suite, 1000, measured)
    assert clean == FamilyCost("clean", 1000, 0, pytest.approx(1.0), False, pytest.approx(1.0),
                               1000, 0)
    assert (pgd.forward, pgd.backward, pgd.at_most) == (10_000, 9000, True)
    assert pgd.seconds == pytest.approx(10.0 + 18.0)
    est = RunEstimate("r", 1000, measured, [clean, pgd])
    lines = estimate_lines(est, runs=4, threshold=20.0)
    assert "clean 1.0 s (1.0k fwd)" in lines[1] and "pgd ≤28 s (10.0k fwd + 9.0k bwd)" in lines[1]
    assert lines[2] == "  total ≤29 s per run, 116 s for the 4 run(s)"
    assert lines[3] == "slow (over 20 s per run): pgd 28 s per run"
    assert len(estimate_lines(est, runs=4, threshold=60.0)) == 3  # nothing slow: no line
    # DeepFool stops per image: a typical run's time, with its bound beside it
    (deepfool,) = suite_cost(build_suite(["deepfool"], {"deepfool": {"samples": 1000}},
                                         "grey"), 1000, measured)
    assert not deepfool.at_most and deepfool.most_seconds > 2 * deepfool.seconds
    line = estimate_lines(RunEstimate("r", 1000, measured, [deepfool]), 1, 1e9)[1]
    assert line.startswith("  deepfool ") and ", at most " in line and "≤" not in line


def test_the_probe_times_a_real_forward_and_backward() -> None:
    from robustbench_graph.data import dataset_info
    from robustbench_graph.models import create_model

    info = dataset_info("digits")
    model = create_model("smallcnn", info)
    x, y = torch.rand(16, *info.input_shape), torch.randint(0, 10, (16,))
    measured = probe(model, x, y)
    assert measured.images == 16 and measured.device == "cpu"
    # (the backward is the forward + backward less the forward: at least 0 on a busy CPU)
    assert 0 < measured.forward_s < 1 and 0 <= measured.backward_s < 1
    assert model.training  # the model's mode is given back


def test_dry_run_prints_the_estimate_per_family_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text(
        'name = "grid"\n[train]\ndatasets = ["digits"]\nlosses = ["ce"]\nseeds = "0-2"\n'
        'epochs = 1\n[attack]\nsuite = "clean,pgd"\n[attack.settings]\n'
        'pgd = { eps = [0.1], steps = 3 }\n')
    result = cli("run", tmp_path / "grid.toml", "--out", tmp_path / "out", "--dry-run",
                 "--probe", "--device", "cpu")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    head = next(i for i, ln in enumerate(lines) if "estimate per run" in ln)
    assert lines[head].startswith("digits-smallcnn: attack estimate per run (")
    assert "a probe of an untrained smallcnn on cpu" in lines[head]
    images = int(lines[head].split("(")[1].split()[0])
    assert re.search(rf"clean [0-9.]+ s \({images} fwd\)", lines[head + 1])
    assert "pgd ≤" in lines[head + 1] and f"({passes(4 * images)} fwd + " in lines[head + 1]
    assert "for the 3 run(s)" in lines[head + 2]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.csv"))


def passes(n: int) -> str:
    from robustbench_graph.experiment.cost import passes_text

    return passes_text(n)
