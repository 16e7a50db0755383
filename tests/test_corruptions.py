"""Common corruptions: the library's 15 (``corruptions``) and the native MNIST-C-like set
(``mnist-c``): severity 0 is the identity, severity is monotone in the L2 distance from the
clean image, draws reproduce by seed; refusals are one line; the CIFAR-10-C files of
--corruptions-dir are read in their layout; the report's mean-error table and mCE."""

import json
import math
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from robustbench_graph.config import ImageSubset
from robustbench_graph.data import load_dataset
from robustbench_graph.errors import RbgError
from robustbench_graph.perturbations import EvalContext, family_class, suite_names
from robustbench_graph.perturbations.corruptions import library, native
from robustbench_graph.report.summary_tables import summary_tables

from conftest import RecordingModel, cli, counted_passes

# Not monotone in L2 under the library's own parameters (measured on smooth 32 px images):
# glass blur's severity 2 takes one shuffling pass where 1 and 3 take two or three, and
# frost's image weight falls from 0.7 (severity 3) to 0.65 (4) with the same frost weight.
NOT_MONOTONE = {"glass_blur", "frost"}
DETERMINISTIC_LIBRARY = {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate",
                         "jpeg_compression"}
DETERMINISTIC_NATIVE = {"gaussian_blur", "brightness", "contrast", "scale"}


@pytest.fixture(scope="module")
def grey():
    return load_dataset("mnist5k", False).float()[:32]


@pytest.fixture(scope="module")
def colour(grey):
    """Eight smooth 32 px colour images with a tinted digit on each."""
    gen = torch.Generator().manual_seed(0)
    smooth = F.interpolate(torch.rand(8, 3, 4, 4, generator=gen), size=32, mode="bilinear",
                           align_corners=False)
    digits = F.interpolate(grey[:8], size=32, mode="bilinear", align_corners=False)
    images = 0.6 * smooth + 0.4 * digits * torch.rand(8, 3, 1, 1, generator=gen)
    return (images.clamp(0, 1) * 255).round() / 255  # 8-bit, as stored images are


def _distance(a, b):
    return float((a - b).flatten(1).norm(dim=1).mean())


def _native(images, name, severity, seed=0):
    return native.mnist_c(images, name, severity, torch.Generator().manual_seed(seed))


def _library(images, name, severity, seed=0):
    return library.corrupt_batch(images, name, severity, [seed + i for i in range(len(images))])


# --- mnist-c --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", native.CORRUPTIONS)
def test_native_severity_zero_identity_monotone_and_seeded(grey, name):
    assert torch.equal(_native(grey, name, 0), grey)
    distances = [_distance(_native(grey, name, s), grey) for s in range(6)]
    assert (np.diff(distances) > 0).all(), distances
    out = _native(grey, name, 3)
    assert out.shape == grey.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert torch.equal(out, _native(grey, name, 3))
    assert torch.equal(out, _native(grey, name, 3, seed=1)) == (name in DETERMINISTIC_NATIVE)


def test_native_works_on_colour_and_odd_sizes(colour):
    for name in native.CORRUPTIONS:
        for images in (colour, colour[:, :, :20, :13], colour[:, :1, :8, :8]):
            out = _native(images, name, 5)
            assert out.shape == images.shape and not torch.equal(out, images), name


# --- corruptions (the library) --------------------------------------------------------------
@pytest.mark.parametrize("name", library.CORRUPTIONS)
def test_library_severity_zero_identity_monotone_and_seeded(colour, name):
    assert torch.equal(_library(colour, name, 0), colour)
    state = np.random.get_state()[1].copy()
    distances = [_distance(_library(colour, name, s), colour) for s in range(6)]
    assert np.array_equal(np.random.get_state()[1], state)  # numpy's global state kept
    assert distances[0] == 0 and min(distances[1:]) > 0, distances
    increasing = bool((np.diff(distances) > 0).all())
    assert increasing == (name not in NOT_MONOTONE), distances
    out = _library(colour, name, 3)
    assert out.shape == colour.shape and torch.equal(out, _library(colour, name, 3))
    assert torch.equal(out, _library(colour, name, 3, seed=100)) == (
        name in DETERMINISTIC_LIBRARY)


def test_library_adapts_or_refuses_grey_and_small_images(grey):
    out = library.corrupt_batch(grey[:4], "contrast", 3, [0, 1, 2, 3])
    assert out.shape == grey[:4].shape and not torch.equal(out, grey[:4])
    with pytest.raises(RbgError, match=r"at least 32x32 px .* got 1x28x28: use --suite mnist-c"):
        library.corrupt_batch(grey[:4], "contrast", 3, [0, 1, 2, 3], adapt=False)


def _colour_ctx(images, labels, batch_size, test_indices=None):
    from robustbench_graph.data import DatasetInfo, ImageData
    from robustbench_graph.models import create_model

    info = DatasetInfo("colour-32", 3, (3, 32, 32), (0.5,) * 3, (0.25,) * 3, False, False)
    torch.manual_seed(0)
    model = create_model("smallcnn", info).eval()
    data = ImageData((images * 255).round().to(torch.uint8), labels, 255.0, info)
    return EvalContext(model, data, torch.device("cpu"), "run-a", batch_size,
                       test_indices=test_indices)


def _inputs(family, cell, ctx):
    seen = RecordingModel(ctx.model)
    ctx.model = seen
    family.measure(cell, ctx)
    return torch.cat(seen.seen)


def test_family_cells_are_corruption_by_severity_and_images_do_not_depend_on_batches(colour):
    cls = family_class("corruptions")
    family = cls(cls.resolve({"corruption": "shot_noise,fog", "severity": "0,2,5"}, "colour"))
    cells = family.cells(ImageSubset())
    assert [(c.param, c.param_value) for c in cells] == [
        (n, s) for n in ("shot_noise", "fog") for s in (0.0, 2.0, 5.0)]
    # Choosing other corruptions or severities leaves a cell's fingerprint as it was (its
    # results are reused); its other settings do not.
    again = cls(cls.resolve({"corruption": "fog", "severity": "2"}, "colour")).cells(
        ImageSubset())
    assert again[0].key == cells[4].key and again[0].fingerprint == cells[4].fingerprint
    other = cls(cls.resolve({"corruption": "fog", "draws": "2"}, "colour")).cells(ImageSubset())
    assert other[0].fingerprint != cells[4].fingerprint
    labels = torch.arange(8) % 3
    a = _inputs(family, cells[4], _colour_ctx(colour, labels, 8))
    b = _inputs(family, cells[4], _colour_ctx(colour, labels, 3))
    assert torch.equal(a, b) and not torch.equal(a, colour)
    # An image's draw follows its index in the test split (here under a --samples subset).
    sub = _inputs(family, cells[4], _colour_ctx(colour[4:], labels[4:], 3, torch.arange(4, 8)))
    assert torch.equal(sub, a[4:])
    assert torch.equal(_inputs(family, cells[3], _colour_ctx(colour, labels, 8)), colour)


@pytest.mark.parametrize("name", ["impulse_noise", "stripes", "fog", "translate"])
def test_mnist_c_images_do_not_depend_on_batches(colour, name):
    cls = family_class("mnist-c")
    family = cls(cls.resolve({"corruption": name, "severity": "3"}, "colour"))
    (cell,) = family.cells(ImageSubset())
    labels = torch.arange(8) % 3
    a = _inputs(family, cell, _colour_ctx(colour, labels, 8))
    assert torch.equal(a, _inputs(family, cell, _colour_ctx(colour, labels, 3)))
    sub = _inputs(family, cell, _colour_ctx(colour[4:], labels[4:], 3, torch.arange(4, 8)))
    assert torch.equal(sub, a[4:]) and not torch.equal(a, colour)


def test_missing_extra_is_left_out_of_all_and_named_fails_in_one_line(monkeypatch, tmp_path,
                                                                      digits_run):
    from robustbench_graph.perturbations import left_out_note

    cls = family_class("corruptions")
    assert "corruptions" in suite_names("all")
    monkeypatch.setattr(cls, "requires", ("no_such_module_rbg", "corruptions"))
    assert "corruptions" not in suite_names("all") and "mnist-c" in suite_names("all")
    assert "install 'robustbench_graph[corruptions]'" in left_out_note("all")
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)  # import fails
    with pytest.raises(RbgError, match=r"pip install 'robustbench_graph\[corruptions\]'"):
        cls(cls.resolve({}, "colour"))
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    result = cli("attack", run, "--suite", "corruptions", "--device", "cpu")
    assert result.exit_code == 1 and "robustbench_graph[corruptions]" in result.output
    assert "Traceback" not in result.output


def test_rbg_attack_runs_both_families_and_refuses_small_images_when_asked(digits_run,
                                                                           tmp_path):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    result = cli("attack", run, "--suite", "mnist-c,corruptions", "--samples", "40",
                 "-p", "mnist-c.corruption=rotate,fog,stripes", "-p", "mnist-c.severity=0,1,5",
                 "-p", "corruptions.corruption=contrast,gaussian_noise",
                 "-p", "corruptions.severity=2,4", "-p", "corruptions.adapt=true",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "results.csv")
    acc = table[table.metric == "accuracy"]
    assert len(acc[acc.perturbation == "mnist-c"]) == 9
    assert set(acc[acc.perturbation == "corruptions"].param) == {"contrast", "gaussian_noise"}
    clean = acc[(acc.perturbation == "mnist-c") & (acc.param_value == 0)].value
    assert clean.nunique() == 1  # severity 0: the clean images under every corruption
    result = cli("attack", run, "--suite", "corruptions", "-p", "corruptions.adapt=false",
                 "-p", "corruptions.corruption=fog", "--overwrite", "--device", "cpu")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "needs colour images of at least 32x32 px" in result.output
    assert "got 1x8x8: use --suite mnist-c" in " ".join(result.output.split())
    bad = cli("attack", run, "--suite", "mnist-c", "-p", "mnist-c.corruption=snow")
    assert bad.exit_code == 1 and "unknown mnist-c corruption 'snow'" in bad.output
    bad = cli("attack", run, "--suite", "mnist-c", "-p", "mnist-c.severity=6")
    assert bad.exit_code == 1 and "severity 6 is out of range 0..5" in bad.output


def test_suite_all_measures_the_family_meant_for_the_images():
    from robustbench_graph.perturbations import suite_names

    grey, colour = suite_names("all", "grey"), suite_names("all", "colour")
    assert "mnist-c" in grey and "corruptions" not in grey
    assert "corruptions" in colour and "mnist-c" not in colour
    assert {"mnist-c", "corruptions"} <= set(suite_names("all"))


# --- --corruptions-dir ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """A smallcnn trained one epoch on a 32 px colour image folder, and that folder."""
    from PIL import Image

    root = tmp_path_factory.mktemp("colour")
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / "imgs" / f"class_{c}").mkdir(parents=True)
        for i in range(10):
            a = (rng.random((32, 32, 3)) * 80 + 60 * c).astype(np.uint8)
            Image.fromarray(a).save(root / "imgs" / f"class_{c}" / f"{i:03d}.png")
    result = cli("train", "--dataset", "imagefolder", "--data-dir", root / "imgs", "--epochs",
                 "1", "--out", root / "runs", "--width", "4", "--feature-dim", "8",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    (run,) = (root / "runs").iterdir()
    return root, run


def _fake_c10c(folder, test, names=("fog", "contrast")):
    """CIFAR-10-C's layout for a test split: severity s of image i at row (s - 1) N + i;
    here severity s darkens the clean image by s / 6."""
    folder.mkdir(parents=True, exist_ok=True)
    clean = test.images.permute(0, 2, 3, 1).numpy()
    for k, name in enumerate(names):
        rows = [(clean * (1 - s / 6) + k).astype(np.uint8) for s in range(1, 6)]
        np.save(folder / f"{name}.npy", np.concatenate(rows))
    np.save(folder / "labels.npy", np.tile(test.labels.numpy(), 5))
    return clean


def test_corruptions_dir_reads_the_files_rows(colour_run, tmp_path):
    root, run = colour_run
    test = load_dataset("imagefolder", False, root / "imgs")
    clean = _fake_c10c(tmp_path / "c10c", test)
    cls = family_class("corruptions")
    family = cls(cls.resolve({"dir": str(tmp_path / "c10c"), "corruption": "fog,contrast"},
                             "colour"))
    cells = {(c.param, c.param_value): c for c in family.cells(ImageSubset())}
    images = test.float()
    ctx = _colour_ctx(images, test.labels, 4)
    seen = _inputs(family, cells[("contrast", 3.0)], ctx)
    expected = torch.from_numpy((clean * 0.5 + 1).astype(np.uint8)).permute(0, 3, 1, 2) / 255
    assert torch.equal(seen, expected.float())
    # Under --samples: the rows of the chosen test indices.
    index = torch.tensor([1, 4])
    sub = _inputs(family, cells[("fog", 5.0)], _colour_ctx(images[index], test.labels[index],
                                                            4, index))
    assert torch.equal(sub, torch.from_numpy((clean[[1, 4]] * (1 - 5 / 6)).astype(np.uint8))
                       .permute(0, 3, 1, 2).float() / 255)


def test_rbg_attack_corruptions_dir_and_its_refusals(colour_run, tmp_path):
    root, run_dir = colour_run
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    test = load_dataset("imagefolder", False, root / "imgs")
    _fake_c10c(tmp_path / "c10c", test)
    args = ["attack", run, "--suite", "corruptions", "--data-dir", root / "imgs",
            "-p", "corruptions.corruption=fog,contrast", "--device", "cpu"]
    result = cli(*args, "--corruptions-dir", tmp_path / "c10c")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "results.csv")
    assert len(table[table.metric == "accuracy"]) == 10
    record = json.loads((run / "attack.json").read_text()) if (run / "attack.json").exists() \
        else None
    assert record is None or str(tmp_path / "c10c") in json.dumps(record)
    # Refusals, one line each: a missing file, a wrong shape, other labels, other sizes.
    np.save(tmp_path / "c10c" / "fog.npy", np.zeros((5 * len(test), 16, 16, 3), np.uint8))
    bad = cli(*args, "--corruptions-dir", tmp_path / "c10c", "--overwrite")
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "expected" in bad.output and "uint8 for 3x32x32 test images" in \
        " ".join(bad.output.split())
    _fake_c10c(tmp_path / "c10c", test)
    np.save(tmp_path / "c10c" / "labels.npy", np.tile((test.labels.numpy() + 1) % 3, 5))
    bad = cli(*args, "--corruptions-dir", tmp_path / "c10c", "--overwrite")
    assert bad.exit_code == 1 and "does not match the test split's labels" in bad.output
    np.save(tmp_path / "c10c" / "labels.npy", np.tile(np.arange(10) % 3, 5))
    bad = cli(*args, "--corruptions-dir", tmp_path / "c10c", "--overwrite")
    assert bad.exit_code == 1 and "holds 5 x 10 images" in bad.output
    bad = cli(*args, "--corruptions-dir", tmp_path / "nowhere")
    assert bad.exit_code == 1 and "is not a folder" in bad.output
    (tmp_path / "empty").mkdir()
    bad = cli(*args, "--corruptions-dir", tmp_path / "empty")  # another dir: other settings
    assert bad.exit_code == 1 and "already computed with other settings" in bad.output
    bad = cli(*args, "--corruptions-dir", tmp_path / "empty", "--overwrite")
    assert bad.exit_code == 1 and "no labels.npy" in bad.output


# --- the report ---------------------------------------------------------------------------
def _networks(errors):
    """Per-network accuracy rows from ``{(method, run): {(corruption, severity): error}}``."""
    rows = []
    for (method, run), cells in errors.items():
        for (c, s), e in cells.items():
            rows.append({"dataset": "toy", "model": "m", "method": method,
                         "perturbation": "corruptions", "param": c, "param_value": float(s),
                         "variant": "", "metric": "accuracy", "run_path": run,
                         "value": 1 - e, "draws": 1})
    return pd.DataFrame(rows)


def test_corruption_table_mean_errors_and_mce():
    base = {("fog", 0): 0.1, ("fog", 1): 0.2, ("fog", 2): 0.4, ("snow", 1): 0.3, ("snow", 2): 0.5}
    other = {k: v / 2 for k, v in base.items()}
    runs = _networks({("ce", "r0"): base, ("ce", "r1"): base,
                      ("gsl", "r2"): other, ("gsl", "r3"): {k: v / 4 for k, v in base.items()}})
    (table,) = summary_tables(runs, "ce")
    assert [c.label for c in table.columns] == ["fog", "snow", "mean over corruptions",
                                                "mCE (relative to ce)"]
    assert "mean error over severities 1-2" in table.title
    assert table.methods == ["ce", "gsl"]
    # ce: fog (0.2 + 0.4) / 2 = 0.3 (severity 0 left out), snow 0.4, mean 0.35, mCE 1.
    for j, want in enumerate((0.3, 0.4, 0.35, 1.0)):
        assert table.cell("ce", j).median == pytest.approx(want)
    # gsl: networks at 1/2 and 1/4 of ce's errors: the median 3/8 of them.
    for j, want in enumerate((0.3, 0.4, 0.35, 1.0)):
        assert table.cell("gsl", j).median == pytest.approx(want * 3 / 8)
        assert table.cell("gsl", j).best and not table.cell("ce", j).best
    assert table.cell("ce", 0).text == "30.0 [30.0–30.0]"
    assert table.cell("gsl", 3).text.startswith("0.375")
    (alone,) = summary_tables(runs[runs.method == "gsl"], "ce")  # no baseline: no mCE
    assert [c.label for c in alone.columns][-1] == "mean over corruptions"
    assert summary_tables(runs[runs.perturbation == "gaussian"], "ce") == []


def test_a_network_missing_a_corruption_of_the_baseline_gets_no_mce():
    base = {("fog", 1): 0.2, ("snow", 1): 0.4}
    runs = _networks({("ce", "r0"): base, ("lmd", "r1"): {("fog", 1): 1.0}})
    (table,) = summary_tables(runs, "ce")
    mce = [c.label for c in table.columns].index("mCE (relative to ce)")
    assert table.cell("ce", mce).median == pytest.approx(1.0)
    assert table.cell("lmd", mce) is None  # not 1.0 / 0.6 over fog alone, marked best
    assert table.cell("lmd", 0).median == pytest.approx(1.0)
    assert "severities 1 " in table.title or table.title.endswith("severities 1")


def test_rbg_report_shows_the_corruption_table(colour_run, tmp_path):
    root, run_dir = colour_run
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / run_dir.name)
    result = cli("attack", "--runs", runs, "--suite", "clean,corruptions", "--data-dir",
                 root / "imgs", "-p", "corruptions.corruption=contrast,pixelate",
                 "-p", "corruptions.severity=1,3", "--device", "cpu")
    assert result.exit_code == 0, result.output
    result = cli("report", "--runs", runs, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    md = (tmp_path / "report" / "tables.md").read_text()
    assert "Common corruptions, mean error over severities 1, 3" in md
    assert "mean over corruptions (error %)" in md and "pixelate (error %)" in md
    html = (tmp_path / "report" / "index.html").read_text()
    assert "mean over corruptions" in html
    plots = sorted(p.name for p in (tmp_path / "report" / "plots").glob("*corruptions*.png"))
    assert len(plots) == 2 and any("pixelate" in p for p in plots), plots
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert not math.isnan(summary[summary.perturbation == "corruptions"]["median"].iloc[0])


def test_passes_count_a_forward_per_corruption_severity_draw_and_image(digits_run):
    from robustbench_graph import load_run

    cls = family_class("mnist-c")
    family = cls(cls.resolve({"corruption": "contrast,rotate", "severity": "0,1,2",
                              "draws": "2"}, "grey"))
    data = load_dataset("digits", False).subset(torch.arange(100))
    forward = 100 * 2 * 3 * 2  # images x corruptions x severities x draws
    assert counted_passes(family, load_run(digits_run), data) == (forward, 0)
    assert family.passes(100) == (forward + forward // 4, 0)  # + making the corruptions
