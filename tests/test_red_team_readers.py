"""Issue 29, the readers and the numbers: every file rbg reads goes through one bounded reader
(side files, AutoAttack's state, unit locks), and what it reads is checked against what it
must be (non-finite logits, a state file's counts and flags, 16-bit images, declared
statistics, per-image values, a dtype torch lacks). Each bad input is one line on stderr, a
non-zero exit, no traceback, no result rows, and the other runs' files byte-identical."""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bad_input import _digest

from robustbench_graph.errors import RbgError
from robustbench_graph.rundir.folder import WEIGHTS, load_weights, read_run_bytes, save_weights

from conftest import cli

ROOT = Path(__file__).resolve().parent.parent


def _errors(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("error:")]


def _one_line(result, *words: str) -> None:
    """A bad input's answer: exit 1, one error line naming ``words``, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    errors = _errors(result.stderr)
    # (rbg attack ends with its count of runs it could not attack)
    assert len([e for e in errors if "could not be attacked" not in e]) == 1, result.stderr
    flat = result.stderr.replace("\n", " ")
    for word in words:
        assert word in flat, result.stderr


def _subprocess(*args, timeout: float = 120) -> tuple[int, str, float]:
    """The CLI in a child process (a hang fails the test instead of stopping the suite)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "robustbench_graph", *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    return proc.returncode, proc.stderr, time.monotonic() - t0


# --- 1. one reader, bounded, not reserving its limit -----------------------------------------
def test_the_reader_reads_in_chunks_and_refuses_what_is_not_a_regular_file(tmp_path):
    data = os.urandom(100_000)
    (tmp_path / "f").write_bytes(data)
    assert read_run_bytes(tmp_path / "f", 2**34) == data  # a limit of 16 GiB, nothing reserved
    assert read_run_bytes(tmp_path / "f", 100_000) == data
    with pytest.raises(RbgError, match="too large"):
        read_run_bytes(tmp_path / "f", 99_999)
    (tmp_path / "empty").write_bytes(b"")
    assert read_run_bytes(tmp_path / "empty", 10) == b""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")
    for name in ("fifo", "zero"):
        with pytest.raises(RbgError, match="not a regular file"):
            read_run_bytes(tmp_path / name, 2**30)
    with pytest.raises(FileNotFoundError):
        read_run_bytes(tmp_path / "missing", 10)


CAPPED = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from robustbench_graph.rundir.folder import load_weights, read_config
    from robustbench_graph.rundir.results import read_results
    run = Path(sys.argv[1])
    cap = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    state = load_weights(run / "model.safetensors")
    read_config(run)
    table = read_results(run / "results.csv")
    print(len(state), len(table))
""")


def test_weights_and_results_load_under_an_address_space_cap(tmp_path, digits_run):
    """A cap of what the process has mapped after its imports plus 1 GiB: reading with
    ``read(limit + 1)`` asked for 16 GiB (weights) and 1 GiB (results) and failed with
    MemoryError whatever the file's size."""
    run = tmp_path / digits_run.name
    shutil.copytree(digits_run, run)
    assert cli("attack", run, "--suite", "clean").exit_code == 0
    # torch is imported where the weights are read (lazily since #32): counted in the cap
    probe = ("import resource, torch, robustbench_graph.rundir.folder, "
             "robustbench_graph.rundir.results;"
             "print(int(open('/proc/self/statm').read().split()[0]) * "
             "resource.getpagesize())")
    mapped = int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
                                ).stdout)
    cap = mapped + 2**30
    proc = subprocess.run([sys.executable, "-c", CAPPED, str(run), str(cap)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    tensors, rows = (int(v) for v in proc.stdout.split())
    assert tensors == len(load_weights(run / WEIGHTS)) and rows >= 1


# --- shared folders ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reported(tmp_path_factory, digits_run) -> Path:
    """runs/: two copies of the digits run attacked with clean and DeepFool (per-image
    distances) on 20 images; a report of them draws the robust-accuracy figure."""
    root = tmp_path_factory.mktemp("readers")
    for name in ("a", "b"):
        shutil.copytree(digits_run, root / "runs" / name)
    result = cli("attack", "--runs", root / "runs", "--suite", "clean,deepfool",
                 "-p", "deepfool.samples=20", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert len(list((root / "runs").glob("*/per_image/deepfool-*.csv"))) == 2
    return root


def _per_image(runs: Path, name: str) -> Path:
    (path,) = (runs / name / "per_image").glob("deepfool-*.csv")
    return path


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _abc(path: Path) -> None:
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    lines[1] = ",".join([*cells[:2], "abc"])
    path.write_text("\n".join(lines) + "\n")


def _columns(path: Path) -> None:
    path.write_text("a,b\n1,2\n")


SIDE_FILES = [  # (name, damage of run b's per-image file, what the warning says)
    ("per-image file a FIFO", _fifo, "not a regular file"),
    ("per-image file linked to /dev/zero", _dev_zero, "not a regular file"),
    ("per-image distance abc", _abc, "not a number"),
    ("per-image file of other columns", _columns, "lacks the columns"),
]


@pytest.mark.slow  # a report in a child process each (about 20 s on a busy 2-core machine)
@pytest.mark.parametrize(("name", "damage", "message"), SIDE_FILES,
                         ids=[s[0] for s in SIDE_FILES])
def test_a_bad_per_image_file_is_left_out_of_the_report_and_nothing_hangs(
        tmp_path, reported, name, damage, message):
    runs = tmp_path / "runs"
    shutil.copytree(reported / "runs", runs)
    damage(_per_image(runs, "b"))
    before = _digest(runs / "a")
    code, stderr, seconds = _subprocess("report", "--runs", runs, "--out", tmp_path / "rep",
                                        timeout=240)
    assert code == 0 and "Traceback" not in stderr, stderr
    assert seconds < 240 and (tmp_path / "rep" / "index.html").is_file()
    assert list((tmp_path / "rep" / "plots").glob("*deepfool*.png"))  # a's curve is drawn
    assert _digest(runs / "a") == before
    # The reader behind the report says why the file is left out, in one line.
    from robustbench_graph.perturbations import family_class
    from robustbench_graph.report.collect import collect, per_image_tables

    (figure,) = [e for e in family_class("deepfool").report_extras
                 if type(e).__name__ == "PerImageFigure"]
    warnings: list[str] = []
    tables = per_image_tables(collect(runs).results, "deepfool", figure.cells, figure.columns,
                              warnings)
    assert [Path(t.run_path).name for t in tables] == ["a"]
    assert len(warnings) == 1 and message in warnings[0] and "\n" not in warnings[0]


# --- 2. non-finite logits are an error, not a prediction -----------------------------------
def _nan_weights(run: Path) -> None:
    state = load_weights(run / WEIGHTS)
    save_weights(run / WEIGHTS, {k: torch.full_like(v, math.nan) if v.is_floating_point()
                                 else v for k, v in state.items()})


def _f8_e8m0(run: Path) -> None:
    """A valid safetensors file holding a dtype safetensors knows and torch's side lacks."""
    header = json.dumps({"w": {"dtype": "F8_E8M0", "shape": [2], "data_offsets": [0, 2]}})
    header += " " * (-len(header) % 8)
    (run / WEIGHTS).write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\x7f\x7f")


@pytest.fixture
def two_runs(tmp_path, digits_run) -> Path:
    """bad/ and other/: two unattacked copies of the digits run."""
    for name in ("bad", "other"):
        shutil.copytree(digits_run, tmp_path / "runs" / name)
    return tmp_path / "runs"


@pytest.mark.parametrize("suite", ["clean", "gaussian", "pgd", "deepfool", "lipschitz",
                                   "curvature"])
def test_nan_weights_are_one_line_naming_the_run_and_family_and_no_rows(two_runs, suite):
    _nan_weights(two_runs / "bad")
    before = _digest(two_runs / "other")
    small = ["gaussian.draws=1", "deepfool.samples=4", "pgd.steps=2", "lipschitz.draws=1",
             "lipschitz.images=10", "curvature.probes=1", "curvature.noise_draws=1"]
    result = cli("attack", two_runs / "bad", "--suite", suite, "--samples", "10",
                 *(a for s in small if s.startswith(f"{suite}.") for a in ("-p", s)),
                 "--device", "cpu")
    _one_line(result, "bad", suite, "not finite")
    assert not (two_runs / "bad" / "results.csv").exists()
    assert not list((two_runs / "bad").glob("per_image/*"))
    assert _digest(two_runs / "other") == before


def test_prediction_of_nan_logits_is_refused_everywhere_it_is_made():
    from robustbench_graph.data import load_dataset
    from robustbench_graph.inference import predict
    from robustbench_graph.perturbations import EvalContext

    data = load_dataset("digits", False)
    ctx = EvalContext(torch.nn.Identity(), data, torch.device("cpu"), "run-x")
    logits = torch.tensor([[0.1, 0.9], [math.nan, 0.0]])
    with pytest.raises(RbgError, match=r"run run-x: .* under pgd are not finite"):
        ctx.predictions(logits, "pgd")
    assert ctx.predictions(logits[:1], "pgd").tolist() == [1]
    with pytest.raises(RbgError, match="not finite"):
        predict(lambda x: torch.full((len(x), 10), math.inf), data)


# --- 6. dropout without a block, 8. a dtype torch cannot load --------------------------------
def test_dropout_on_a_model_without_blocks_is_one_line_and_no_rows(two_runs, monkeypatch):
    from robustbench_graph.models.smallcnn import SmallCNN

    monkeypatch.setattr(SmallCNN, "block_taps", property(lambda self: []))  # --blocks ''
    before = _digest(two_runs / "other")
    result = cli("attack", two_runs / "bad", "--suite", "dropout", "-p", "dropout.repeats=1",
                 "--samples", "10", "--device", "cpu")
    _one_line(result, "bad", "dropout has no block")
    assert not (two_runs / "bad" / "results.csv").exists()
    assert _digest(two_runs / "other") == before


def test_weights_of_a_dtype_torch_lacks_are_one_line(two_runs):
    _f8_e8m0(two_runs / "bad")
    before = _digest(two_runs / "other")
    result = cli("attack", two_runs / "bad", "--suite", "clean", "--device", "cpu")
    _one_line(result, "F8_E8M0", "model.safetensors")
    assert not (two_runs / "bad" / "results.csv").exists()
    assert _digest(two_runs / "other") == before


# --- 3. AutoAttack's state file ---------------------------------------------------------------
AA = ["--suite", "autoattack", "-p", "autoattack.version=cheap", "-p", "autoattack.eps=0.1",
      "--device", "cpu"]


def _aa_state(run: Path, n: int | None):
    """The state file path of the cheap eps=0.1 cell on ``n`` test images (all: None), its
    identity, the number of units, and the clean-correct flags of those images."""
    from robustbench_graph.attack import TestSplits
    from robustbench_graph.config import ImageSubset
    from robustbench_graph.perturbations import EvalContext, family_class
    from robustbench_graph.perturbations import autoattack as aa
    from robustbench_graph.rundir.runs import load_run

    cls = family_class("autoattack")
    family = cls(cls.resolve({"version": "cheap", "eps": "0.1"}, "grey"))
    (cell,) = family.cells(ImageSubset(n))
    data, _ = TestSplits().get_indexed("digits", 0, ImageSubset(n))
    loaded = load_run(run, torch.device("cpu"))
    ctx = EvalContext(loaded.model, data, torch.device("cpu"), loaded.name, work_dir=run)
    with torch.inference_mode():
        clean = (loaded.model.eval()(ctx.images).argmax(1) == ctx.labels)
    units = len(aa.ATTACKS["cheap"]) * ctx.n_batches()
    return family.state_path(cell, ctx), aa._identity(cell, ctx.labels), units, clean


def _state_json(identity, robust, done) -> str:
    return json.dumps({**identity, "done": done, "robust": [int(v) for v in robust]})


@pytest.fixture(scope="module")
def aa_run(tmp_path_factory, digits_run):
    pytest.importorskip("pyautoattack", reason="pyautoattack (the autoattack extra)")
    root = tmp_path_factory.mktemp("aa")
    shutil.copytree(digits_run, root / "run")
    return root / "run", _aa_state(root / "run", None)


def test_a_finished_state_file_is_resumed_and_gives_its_flags(tmp_path, aa_run):
    """The positive control of the cases below: the path and identity the tests build are
    the ones ``rbg attack`` uses (otherwise the cases would pass by computing afresh)."""
    src, (path, identity, units, clean) = aa_run
    run = tmp_path / "run"
    shutil.copytree(src, run)
    robust = clean.clone()
    robust[len(robust) // 2:] = False
    (run / path.name).write_text(_state_json(identity, robust, units))
    result = cli("attack", run, *AA)
    assert result.exit_code == 0, result.output
    import pandas as pd

    rows = pd.read_csv(run / "results.csv")
    assert rows[rows.perturbation == "autoattack"].value.tolist() == [
        pytest.approx(float(robust.double().mean()))]
    assert not (run / path.name).exists()


def _aa_damage(kind: str):
    def damage(run: Path, path: Path, identity, units: int, clean: torch.Tensor) -> None:
        target = run / path.name
        everything = torch.ones_like(clean)
        if kind == "fifo":
            os.mkfifo(target)
        elif kind == "list":
            target.write_text(json.dumps([1, 2, 3]))
        elif kind == "done":
            target.write_text(_state_json(identity, clean, 10**9))
        elif kind == "negative":
            target.write_text(_state_json(identity, clean, -1))
        elif kind == "robust":  # every flag set, misclassified images included
            target.write_text(_state_json(identity, everything, units))
        elif kind == "flags":
            flags = [int(v) for v in clean]
            flags[flags.index(1)] = 7
            target.write_text(json.dumps({**identity, "done": units, "robust": flags}))
        elif kind == "short":
            target.write_text(_state_json(identity, clean[:-1], units))
        elif kind == "zero":
            target.symlink_to("/dev/zero")
    return damage


AA_CASES = [  # (name, damage, what the line says)
    ("AutoAttack state a FIFO", "fifo", "not a regular file"),
    ("AutoAttack state linked to /dev/zero", "zero", "not a regular file"),
    ("AutoAttack state a JSON list", "list", "not a JSON object"),
    ("AutoAttack state done 10^9", "done", "done 1000000000"),
    ("AutoAttack state done -1", "negative", "done -1"),
    ("AutoAttack state robust where clean is wrong", "robust", "misclassified when clean"),
    ("AutoAttack state flag 7", "flags", "flags 0 or 1"),
    ("AutoAttack state one flag short", "short", "flags 0 or 1"),
]


@pytest.mark.slow  # an attack in a child process each (about 20 s on a busy 2-core machine)
@pytest.mark.parametrize(("name", "kind", "message"), AA_CASES, ids=[c[0] for c in AA_CASES])
def test_a_bad_autoattack_state_is_one_line(tmp_path, aa_run, name, kind, message):
    src, (path, identity, units, clean) = aa_run
    if kind == "robust":
        assert not bool(clean.all())  # the trained run misclassifies some test image
    run = tmp_path / "run"
    shutil.copytree(src, run)
    _aa_damage(kind)(run, path, identity, units, clean)
    other = tmp_path / "other"
    shutil.copytree(src, other)
    before = _digest(other)
    code, stderr, _ = _subprocess("attack", run, *AA, timeout=240)
    assert code == 1 and "Traceback" not in stderr, stderr
    errors = [e for e in _errors(stderr) if "could not be attacked" not in e]
    assert len(errors) == 1 and message in stderr.replace("\n", " "), stderr
    assert not (run / "results.csv").exists()
    assert _digest(other) == before


# --- 4, 5. image folders: 16-bit, bombs, 1x1, declared statistics --------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(side: int = 100_000) -> bytes:
    """A PNG of a few hundred bytes declaring side x side 1-bit pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def _folder(root: Path, size=(8, 8), per_class: int = 6, mode: str = "L", deep=False) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            if deep:
                array = rng.integers(0, 65536, (size[1], size[0])).astype(np.uint16)
                Image.fromarray(array).save(root / f"class_{c}" / f"{i}.png")
            else:
                array = rng.integers(0, 256, (size[1], size[0])).astype(np.uint8)
                Image.fromarray(array, mode=mode).save(root / f"class_{c}" / f"{i}.png")
    return root


def test_a_16_bit_greyscale_image_is_read_at_its_depth(tmp_path):
    from PIL import Image

    from robustbench_graph.data import load_dataset

    root = tmp_path / "deep"
    for c in range(2):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(5):
            ramp = (np.arange(64 * 64).reshape(64, 64) * 16 + c * 8 + i).astype(np.uint16)
            Image.fromarray(ramp).save(root / f"class_{c}" / f"{i}.png")
    assert Image.open(root / "class_0" / "0.png").mode.startswith("I")
    test = load_dataset("imagefolder", False, root)
    train = load_dataset("imagefolder", True, root)
    pixels = torch.cat([test.float(), train.float()])
    assert pixels.shape[1:] == (1, 64, 64)
    assert len(torch.unique(pixels)) > 4000  # convert("L") left 3 distinct values
    assert float(pixels.max()) <= 1.0 and float((pixels == 1.0).double().mean()) < 0.01
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.float64) / 65535
    first = test.float()[0, 0].double().numpy() if int(test.labels[0]) == 0 else None
    if first is not None:  # an image of class 0: its ramp plus its index, over 65535
        assert np.allclose(first - ramp, first[0, 0] - ramp[0, 0], atol=1e-6)
    mean = float(train.float().mean())
    assert train.info.mean[0] == pytest.approx(mean, abs=1e-3)  # statistics at 16 bits


def _bomb(root: Path) -> None:
    _folder(root)
    (root / "class_1" / "bomb.png").write_bytes(_bomb_png())


def _tiny(root: Path) -> None:
    _folder(root, size=(1, 1))


def _declared(**record):
    def make(root: Path) -> None:
        _folder(root)
        (root / "rbg-dataset.json").write_text(json.dumps(record))
    return make


def _declared_text(text: str):
    def make(root: Path) -> None:
        _folder(root)
        (root / "rbg-dataset.json").write_text(text)
    return make


FOLDERS = [  # (name, make the folder, what the line says)
    ("decompression-bomb PNG", _bomb, "decompression bomb"),
    ("1x1 images", _tiny, "at least 4x4"),
    ("declared std Infinity", _declared_text('{"mean": [0.5], "std": [Infinity]}'), "'std'"),
    ("declared std NaN", _declared_text('{"mean": [0.5], "std": [NaN]}'), "'std'"),
    ("declared std 0", _declared(mean=[0.5], std=[0.0]), "'std'"),
    ("declared std negative", _declared(mean=[0.5], std=[-0.2]), "'std'"),
    ("declared mean NaN", _declared_text('{"mean": [NaN], "std": [0.3]}'), "'mean'"),
    ("declared mean -Infinity", _declared_text('{"mean": [-Infinity], "std": [0.3]}'),
     "'mean'"),
    ("declared mean 1e30", _declared(mean=[1e30], std=[0.3]), "'mean'"),
    ("declared statistics nested 100k deep",
     _declared_text('{"mean": ' + "[" * 100_000 + "]" * 100_000 + ', "std": [0.3]}'),
     "must be JSON"),
    ("declared statistics a FIFO",
     lambda root: (_folder(root), os.mkfifo(root / "rbg-dataset.json")), "not a regular file"),
]


@pytest.mark.parametrize(("name", "make", "message"), FOLDERS, ids=[f[0] for f in FOLDERS])
def test_a_bad_image_folder_is_one_line_and_makes_no_run(tmp_path, name, make, message):
    make(tmp_path / "imgs")
    result = cli("train", "--dataset", "imagefolder", "--data-dir", tmp_path / "imgs",
                 "--epochs", "1", "--width", "4", "--feature-dim", "8",
                 "--out", tmp_path / "runs")
    _one_line(result, message)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# --- 1. unit lock files -------------------------------------------------------------------
SMALL = textwrap.dedent('''
    name = "tiny"
    [train]
    datasets = ["digits"]
    losses = ["ce"]
    seeds = "0"
    epochs = 1
    [attack]
    suite = ["clean"]
''')


@pytest.mark.parametrize("command", [["run", "--dry-run"], ["run", "--workers", "1"],
                                     ["status"]])
def test_a_unit_lock_file_that_is_a_fifo_is_one_line_and_no_hang(tmp_path, command):
    (tmp_path / "tiny.toml").write_text(SMALL)
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / ".digits-smallcnn-ce-seed0.train.lock")
    code, stderr, _ = _subprocess(command[0], tmp_path / "tiny.toml", "--out", out,
                                  *command[1:], timeout=240)
    assert code == 1 and "Traceback" not in stderr, stderr
    errors = _errors(stderr)
    assert len(errors) == 1 and "not a regular file" in stderr.replace("\n", " "), stderr


def test_the_lock_holder_of_a_fifo_is_read_without_blocking(tmp_path):
    from robustbench_graph.experiment.units import Unit, lock_holder, lock_path, unit_lock

    unit = Unit("train", str(tmp_path / "run"), {}, 0)
    os.mkfifo(lock_path(unit))
    assert lock_holder(unit) == ""
    with pytest.raises(RbgError, match="not a regular file"), unit_lock(unit):
        pass


def test_the_matrix_counts_its_distinct_cases():
    names = ([s[0] for s in SIDE_FILES] + [c[0] for c in AA_CASES] + [f[0] for f in FOLDERS]
             + [f"NaN weights under {s}" for s in ("clean", "gaussian", "pgd", "deepfool",
                                                  "lipschitz", "curvature")]
             + ["dropout without blocks", "weights of dtype F8_E8M0", "lock FIFO (dry run)",
                "lock FIFO (run)", "lock FIFO (status)"])
    assert len(set(names)) == len(names) == 34
