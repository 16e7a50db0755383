"""Issue 8: a matrix of bad inputs across train, attack, report, smoothness and list.

Each is answered by one readable line on stderr and a non-zero exit, with no traceback, and
nothing under the runs folder changes (its files are hashed before and after).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import cli


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, digits_run) -> Path:
    """runs/ (one attacked run), plus folders with a foreign or non-numeric results file and a
    run whose config names another model."""
    root = tmp_path_factory.mktemp("bad-input")
    good = root / "runs" / digits_run.name
    shutil.copytree(digits_run, good)
    assert cli("attack", good, "--suite", "clean").exit_code == 0
    for name, text in {
        "foreign": "a,b\n1,2\n",
        "nonnumeric": (good / "results.csv").read_text().replace(",accuracy,", ",accuracy,x")
        .replace("accuracy,x0.", "accuracy,abc"),
    }.items():
        run = root / name / digits_run.name
        shutil.copytree(good, run)
        (run / "results.csv").write_text(text)
    other = root / "othermodel" / digits_run.name
    shutil.copytree(good, other)
    config = json.loads((other / "config.json").read_text())
    config["train"]["model"] = "preactresnet18"
    (other / "config.json").write_text(json.dumps(config))
    (root / "empty").mkdir()
    (root / "afile").write_text("not a folder")
    return root


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".rbg.lock":
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


T = ["train", "--dataset", "digits", "--epochs", "1", "--out", "{root}/runs"]
CASES = [
    # train
    ("unknown dataset", [*T, "--dataset", "imagenet"], "unknown dataset"),
    ("unknown model", [*T, "--model", "vgg"], "unknown model"),
    ("unknown loss", [*T, "--loss", "hinge"], "unknown loss"),
    ("malformed seeds", [*T, "--seeds", "1-x"], "malformed seed"),
    ("reversed seed range", [*T, "--seeds", "5-2"], "malformed seed"),
    ("zero epochs", [*T, "--epochs", "0"], "--epochs must be positive"),
    ("zero batch", [*T, "--batch-size", "0"], "--batch-size must be positive"),
    ("negative lr", [*T, "--lr", "-0.1"], "--lr must be positive"),
    ("momentum >= 1", [*T, "--momentum", "1.5"], "--momentum"),
    ("milestone past the end", [*T, "--lr-milestones", "5"], "milestone"),
    ("unknown loss option", [*T, "-o", "gamma=1"], "unknown option 'gamma'"),
    ("non-numeric loss option", [*T, "--loss", "laplacian", "-o", "gamma=abc"],
     "not a valid float"),
    ("unwritable out", [*T[:-1], "{root}/afile/sub"], "not writable"),
    ("dataset folder missing files",
     ["train", "--dataset", "cifar10", "--data-dir", "{root}/empty", "--out", "{root}/runs"],
     "--download"),
    ("unknown device", [*T, "--device", "tpu"], "unknown device"),
    # issue 15, item 6: numbers out of range, caught before any folder is made
    ("seed above 2^64", [*T, "--seeds", "18446744073709551616"], "out of range"),
    ("ten billion seeds", [*T, "--seeds", "0-99999999999"], "out of range"),
    ("a million seeds", [*T, "--seeds", "0-999999"], "more than 10000 seeds"),
    ("negative split seed", [*T, "--split-seed", "-1"], "--split-seed must be in"),
    ("negative feature dim", [*T, "--feature-dim", "-1"], "--feature-dim must be an integer"),
    ("huge width", [*T, "--width", "100000"], "--width must be an integer in 1..1024"),
    ("feature dim on preactresnet18", [*T, "--model", "preactresnet18", "--feature-dim", "8"],
     "has no --feature-dim option"),
    ("channels-last below 8 channels",
     [*T, "--model", "preactresnet18", "--width", "4", "--channels-last"], "at least 8"),
    ("infinite lr", [*T, "--lr", "inf"], "--lr must be a finite number"),
    ("Laplacian power 1000", [*T, "--loss", "laplacian", "-o", "m=1000"],
     "laplacian m must be in 1..16"),
    # attack
    ("unknown perturbation", ["attack", "--runs", "{root}/runs", "--suite", "blur"],
     "unknown perturbation"),
    ("missing runs folder", ["attack", "--runs", "{root}/nope"], "no such folder"),
    ("empty runs folder", ["attack", "--runs", "{root}/empty"], "no run folders"),
    ("SNR out of range", ["attack", "--runs", "{root}/runs", "-p", "gaussian.snr_db=999"],
     "out of range"),
    ("dropout p = 1", ["attack", "--runs", "{root}/runs", "-p", "dropout.p=1"], "out of range"),
    ("one-bit quantisation", ["attack", "--runs", "{root}/runs", "-p", "quantize.bits=1"],
     "out of range"),
    ("L-inf budget above 1",
     ["attack", "--runs", "{root}/runs", "-p", "fgsm-before-norm.linf_eps=2"], "out of range"),
    ("zero samples", ["attack", "--runs", "{root}/runs", "--samples", "0"], "must be positive"),
    # issue 15, items 3 and 6: non-finite and degenerate attack settings
    ("NaN DeepFool overshoot", ["attack", "--runs", "{root}/runs", "-p", "deepfool.overshoot=nan"],
     "must be a finite number"),
    ("infinite DeepFool overshoot",
     ["attack", "--runs", "{root}/runs", "-p", "deepfool.overshoot=inf"], "finite number"),
    ("NaN SNR", ["attack", "--runs", "{root}/runs", "-p", "gaussian.snr_db=nan"], "finite number"),
    ("one DeepFool candidate",
     ["attack", "--runs", "{root}/runs", "-p", "deepfool.candidates=1"], "at least 2"),
    ("zero DeepFool candidates",
     ["attack", "--runs", "{root}/runs", "-p", "deepfool.candidates=0"], "at least 2"),
    ("empty suite", ["attack", "--runs", "{root}/runs", "--suite", ""], "--suite is empty"),
    ("results with foreign columns", ["attack", "--runs", "{root}/foreign", "--suite", "clean"],
     "not an rbg results file"),
    ("results with non-numeric values",
     ["attack", "--runs", "{root}/nonnumeric", "--suite", "clean"], "non-numeric value"),
    ("run folder of a different model",
     ["attack", "--runs", "{root}/othermodel", "--suite", "clean"], "does not match model"),
    # report
    ("report of a missing folder", ["report", "--runs", "{root}/nope", "--out", "{root}/rep"],
     "does not exist"),
    ("report of an empty folder", ["report", "--runs", "{root}/empty", "--out", "{root}/rep"],
     "no run folders"),
    ("report of foreign results only",
     ["report", "--runs", "{root}/foreign", "--out", "{root}/rep"], "foreign"),
    # smoothness
    ("smoothness of a missing folder", ["smoothness", "{root}/nope", "--out", "{root}/sm"],
     "does not exist"),
    ("smoothness of an empty folder", ["smoothness", "{root}/empty", "--out", "{root}/sm"],
     "no run folders"),
    # list
    ("list of an unknown registry", ["list", "widgets"], "unknown registry"),
]


@pytest.mark.parametrize(("name", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(workspace, name, args, message):
    before = _digest(workspace)
    result = cli(*[a.format(root=workspace) for a in args])
    assert result.exit_code not in (0, None), name
    assert message in result.output.replace("\n", " "), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) >= 1 and all(len(e) < 400 for e in errors)
    assert _digest(workspace) == before


# Issue 15, items 5 and 9: one bad run folder beside a good one. `attack` reports it by name
# and attacks the other; `report` warns, reports the other and exits 3; nothing changes in it.
def _deep(n: int) -> str:
    return '{"train": ' + "[" * n + "]" * n + ', "seed": 0, "method": "ce"}'


def _config(**changes):
    def damage(run: Path) -> None:
        record = json.loads((run / "config.json").read_text())
        for key, value in changes.items():
            if key in ("seed", "method", "train"):
                record[key] = value
            else:
                record["train"][key] = value
        if changes.get("method") is None and "method" in changes:
            del record["method"]
        (run / "config.json").write_text(json.dumps(record))
    return damage


def _write(name: str, data: bytes | str):
    def damage(run: Path) -> None:
        path = run / name
        path.unlink(missing_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return damage


def _fifo(name: str):
    def damage(run: Path) -> None:
        (run / name).unlink(missing_ok=True)
        os.mkfifo(run / name)
    return damage


def _link(name: str, target: str):
    def damage(run: Path) -> None:
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(target)
    return damage


DAMAGE = [
    ("status {}", _write("status.json", "{}"), "status"),
    ("status []", _write("status.json", "[]"), "status"),
    ("status a bare string", _write("status.json", '"complete"'), "status"),
    ("status not UTF-8", _write("status.json", b'{"status": "\xff\xfe"}'), "status"),
    ("status a FIFO", _fifo("status.json"), "status"),
    ("config train a list", _config(train=[1, 2]), "config.json"),
    ("config seed 1e999", _write("config.json", '{"train": {}, "seed": 1e999, "method": "ce"}'),
     "config.json"),
    ("config without method", _config(method=None), "config.json"),
    ("config nested 200k deep", _write("config.json", _deep(200_000)), "config.json"),
    ("config width -5", _config(width=-5), "width"),
    ("config width 32.5", _config(width=32.5), "width"),
    ("config width 10^12", _config(width=10**12), "width"),
    ("config feature_dim x", _config(feature_dim="x"), "feature-dim"),
    ("config linked to /dev/zero", _link("config.json", "/dev/zero"), "not a regular file"),
    ("results a FIFO", _fifo("results.csv"), "not a regular file"),
    ("attack record not JSON", _write("attack.json", "{oops"), "attack.json"),
]


@pytest.fixture(scope="module")
def attacked_run(tmp_path_factory, digits_run) -> Path:
    root = tmp_path_factory.mktemp("attacked")
    shutil.copytree(digits_run, root / digits_run.name)
    assert cli("attack", root / digits_run.name, "--suite", "clean").exit_code == 0
    return root / digits_run.name


def test_the_matrix_has_at_least_60_distinct_bad_inputs():
    names = [c[0] for c in CASES] + [d[0] for d in DAMAGE] + [d[0] for d in DATA_DAMAGE]
    assert len(set(names)) == len(names) >= 60


@pytest.mark.parametrize(("name", "damage", "message"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_one_bad_run_folder_does_not_stop_the_others(tmp_path, attacked_run, name, damage,
                                                     message):
    good = tmp_path / "runs" / "good"
    bad = tmp_path / "runs" / "bad"
    shutil.copytree(attacked_run, good)
    shutil.copytree(attacked_run, bad)
    (good / "results.csv").unlink()
    damage(bad)
    before = sorted((p.name, p.is_file() and not p.is_fifo() and p.read_bytes()) for p in
                    bad.iterdir() if not p.is_symlink())
    attack = cli("attack", "--runs", tmp_path / "runs", "--suite", "clean")
    assert attack.exit_code == 1 and "Traceback" not in attack.output, attack.output
    errors = [ln for ln in attack.stderr.splitlines() if ln.startswith("error:")]
    assert any(str(bad) in e.replace("\n", "") or "bad" in e for e in errors), attack.output
    assert message in attack.output.replace("\n", " "), attack.output
    assert (good / "results.csv").exists()  # the good run was attacked
    report = cli("report", "--runs", tmp_path / "runs", "--out", tmp_path / "report",
                 "--no-plots")
    assert report.exit_code in (0, 3) and "Traceback" not in report.output, report.output
    assert (tmp_path / "report" / "summary.csv").exists()
    after = sorted((p.name, p.is_file() and not p.is_fifo() and p.read_bytes()) for p in
                   bad.iterdir() if not p.is_symlink())
    assert after == before


# Issue 15, item 7: dataset files that are there but wrong; one error line naming the file.
def _cifar_batch(n=10, labels=None, **extra):
    import numpy as np

    rng = np.random.default_rng(0)
    batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             "labels": list(range(10))[:n] if labels is None else labels}
    batch.update(extra)
    return batch


def _write_cifar(folder: Path, damaged: bytes | None = None) -> Path:
    import pickle

    folder.mkdir(parents=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (folder / name).write_bytes(pickle.dumps(_cifar_batch()))
    if damaged is not None:
        (folder / "data_batch_1").write_bytes(damaged)
    return folder / "data_batch_1"


def _idx(kind: str, n: int) -> bytes:
    import struct

    if kind == "images":
        return struct.pack(">BBBBIII", 0, 0, 8, 3, n, 28, 28) + bytes(n * 28 * 28)
    return struct.pack(">BBBBI", 0, 0, 8, 1, n) + bytes(i % 10 for i in range(n))


def _write_mnist(folder: Path, name: str, data: bytes, labels: int = 20) -> Path:
    folder.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(_idx("images", 20))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx("labels", labels))
    target = folder / name
    target.unlink(missing_ok=True)
    if name.endswith(".gz"):  # the compressed file is read only without the plain one
        (folder / name[:-3]).unlink()
    target.write_bytes(data)
    return target


class _Payload:
    def __reduce__(self):
        return (os.system, ("true",))


def _pickle(obj) -> bytes:
    import pickle

    return pickle.dumps(obj)


DATA_DAMAGE = [
    ("CIFAR pickle with code", "cifar10", lambda d: _write_cifar(d, _pickle({"x": _Payload()})),
     "was refused"),
    ("CIFAR batch truncated", "cifar10",
     lambda d: _write_cifar(d, _pickle(_cifar_batch())[:200]), "truncated or damaged"),
    ("CIFAR batch empty", "cifar10", lambda d: _write_cifar(d, b""), "empty or truncated"),
    ("CIFAR batch not a dict", "cifar10", lambda d: _write_cifar(d, _pickle([1, 2])),
     "not a CIFAR batch"),
    ("CIFAR batch without labels", "cifar10",
     lambda d: _write_cifar(d, _pickle({"data": _cifar_batch()["data"]})), "no 'data'"),
    ("CIFAR batch of the wrong size", "cifar10",
     lambda d: _write_cifar(d, _pickle({"data": bytes(100), "labels": [1]})),
     "3x32x32 images"),
    ("CIFAR label 99", "cifar10",
     lambda d: _write_cifar(d, _pickle(_cifar_batch(labels=[99] * 10))), "labels must be in"),
    ("CIFAR label -1", "cifar10",
     lambda d: _write_cifar(d, _pickle(_cifar_batch(labels=[-1] * 10))), "labels must be in"),
    ("CIFAR 10 images with 5 labels", "cifar10",
     lambda d: _write_cifar(d, _pickle(_cifar_batch(labels=[1] * 5))), "5 labels for 10"),
    ("idx with a bad magic", "fashion-mnist",
     lambda d: _write_mnist(d, "train-images-idx3-ubyte", b"\x01\x02\x03\x04" + bytes(64)),
     "bad magic"),
    ("idx truncated", "fashion-mnist",
     lambda d: _write_mnist(d, "train-images-idx3-ubyte", _idx("images", 20)[:500]),
     "truncated"),
    ("idx gz not gzip", "fashion-mnist",
     lambda d: _write_mnist(d, "train-labels-idx1-ubyte.gz", b"not gzip at all"),
     "not a valid gzip file"),
    ("idx 20 images with 5 labels", "fashion-mnist",
     lambda d: _write_mnist(d, "train-labels-idx1-ubyte", _idx("labels", 5)),
     "5 labels for 20 images"),
]
FOLDERS = {"cifar10": "cifar-10-batches-py", "fashion-mnist": "FashionMNIST/raw"}


@pytest.mark.parametrize(("name", "dataset", "damage", "message"), DATA_DAMAGE,
                         ids=[d[0] for d in DATA_DAMAGE])
def test_a_bad_dataset_file_is_one_error_line_naming_it(tmp_path, name, dataset, damage,
                                                        message):
    data = tmp_path / "data"
    damage(data / FOLDERS[dataset])
    result = cli("train", "--dataset", dataset, "--data-dir", data, "--epochs", "1",
                 "--out", tmp_path / "runs")
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(errors) == 1 and message in result.output.replace("\n", " "), result.output
    assert str(data) in result.output.replace("\n", "")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
