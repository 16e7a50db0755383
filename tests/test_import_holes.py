"""rbg import against hostile input (issue 29): --overwrite never removes anything but an rbg
run folder, nor the working folder or one above it; whatever the model's code does (exits,
raises a BaseException, never returns) and whatever the arguments are (nested 60,000 deep,
non-finite statistics), the answer is one line and a non-zero exit."""

from __future__ import annotations

import hashlib
import os

import pytest

from conftest import cli, write_tiny_model


@pytest.fixture(autouse=True)
def _own_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RBG_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture()
def src(tmp_path):
    """A small network file and weights that fit it."""
    return write_tiny_model(tmp_path / "src")


def _import(run, src, *extra, factory="make", file="net.py"):
    return cli("import", run, "--model-file", f"{src / file}:{factory}", "--weights",
               src / "w.pt", "--dataset", "digits", *extra)


def tree_hash(root):
    """Every path under ``root`` with its bytes (files), link target or kind."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            digest.update(path.encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as fh:
                    digest.update(fh.read())
    return digest.hexdigest()


def one_line(result, message):
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output


@pytest.fixture()
def runs(tmp_path, src):
    """A runs folder: two imported runs and a notes file."""
    folder = tmp_path / "runs"
    for name in ("a", "b"):
        assert _import(folder / name, src).exit_code == 0
    (folder / "notes.txt").write_text("my notes")
    return folder


def test_overwrite_of_a_folder_of_runs_is_refused_and_nothing_changes(runs, src):
    before = tree_hash(runs.parent)
    one_line(_import(runs, src, "--overwrite"), "is not an rbg run folder (it holds a/)")
    assert tree_hash(runs.parent) == before


@pytest.mark.parametrize("where", [".", "a", "a/.."])
def test_overwrite_of_the_working_folder_or_one_above_it_is_refused(runs, src, monkeypatch,
                                                                     where):
    before = tree_hash(runs.parent)
    monkeypatch.chdir(runs if where == "." else runs / "a")
    target = "." if where == "." else (runs / where)
    one_line(_import(target, src, "--overwrite"), "is the folder you are working in")
    assert tree_hash(runs.parent) == before


@pytest.mark.parametrize(("make", "message"), [
    (lambda run: (run / "extra").mkdir(), "it holds extra/"),
    (lambda run: (run / "per_image" / "deeper").mkdir(parents=True), "per_image/deeper"),
    (lambda run: (run / "config.json").unlink(), "no rbg config.json"),
    (lambda run: (run / "config.json").write_text("[1, 2]"), "no rbg config.json"),
    (lambda run: (run / "status.json").unlink() or (run / "status.json").symlink_to(
        run / "config.json"), "it holds status.json"),
])
def test_overwrite_of_a_folder_with_more_than_run_files_is_refused(runs, src, make, message):
    make(runs / "a")
    before = tree_hash(runs.parent)
    one_line(_import(runs / "a", src, "--overwrite"), message)
    assert tree_hash(runs.parent) == before


def test_a_file_or_a_link_is_never_replaced(runs, src):
    before = tree_hash(runs.parent)
    one_line(_import(runs / "notes.txt", src, "--overwrite"), "exists and is not a folder")
    (runs.parent / "link").symlink_to(runs / "a")
    before = tree_hash(runs.parent)
    one_line(_import(runs.parent / "link", src, "--overwrite"), "is a symbolic link")
    assert tree_hash(runs.parent) == before


def test_overwrite_replaces_a_run_folder_with_its_side_files(runs, src):
    run = runs / "a"
    (run / "per_image").mkdir()
    (run / "per_image" / "deepfool-eps=0-abc.csv").write_text("image,label\n")
    (run / "results.csv").write_text("old")
    assert _import(run, src, "--overwrite", "--seed", "4").exit_code == 0
    assert sorted(p.name for p in run.iterdir()) == [
        "config.json", "model.safetensors", "model_source.py", "status.json"]
    assert sorted(p.name for p in runs.iterdir()) == ["a", "b", "notes.txt"]  # no temp left
    assert (runs / "notes.txt").read_text() == "my notes"


@pytest.mark.parametrize(("code", "extra", "message"), [
    ("def make():\n    import sys\n    sys.exit(0)\n", [], "it called sys.exit(0)"),
    ("import sys\nsys.exit(3)\n", [], "it called sys.exit(3)"),
    ("class Stop(BaseException):\n    pass\n\ndef make():\n    raise Stop('no')\n", [],
     "failed with the given keyword arguments (Stop: no)"),
    ("def make():\n    while True:\n        pass\n", ["--timeout", "1"],
     "did not finish within 1 s"),
    ("import time\nfrom torch import nn\n\nclass Slow(nn.Linear):\n"
     "    def forward(self, x):\n        time.sleep(1000)\n\n"
     "def make():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), "
     "Slow(16, 10))\n", ["--timeout", "1"], "did not finish within 1 s"),
    ("from torch import nn\n\nclass Boom(BaseException):\n    pass\n\nclass Bad(nn.Linear):\n"
     "    def forward(self, x):\n        raise Boom('in forward')\n\n"
     "def make():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), "
     "Bad(16, 10))\n", [], "Boom: in forward"),
])
def test_whatever_the_models_code_does_is_one_line(tmp_path, src, code, extra, message):
    (src / "bad.py").write_text(code)
    one_line(_import(tmp_path / "run", src, *extra, file="bad.py"), message)
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.glob(".run.*"))


@pytest.mark.parametrize(("extra", "message"), [
    (["--kw", "hidden=" + "[" * 60000 + "]" * 60000], "nested too deeply"),
    (["--std", "nan"], "must be finite"),
    (["--mean", "inf"], "must be finite"),
    (["--timeout", "0"], "--timeout must be a positive number"),
    (["--timeout", "nan"], "--timeout must be a positive number"),
    (["--blocks", ""], "--blocks names no block"),
    (["--blocks", " , "], "--blocks names no block"),
])
def test_bad_arguments_are_one_line(tmp_path, src, extra, message):
    one_line(_import(tmp_path / "run", src, *extra), message)
    assert not (tmp_path / "run").exists()


def test_a_factory_is_only_a_function_or_class_the_source_defines(tmp_path, src,
                                                                   monkeypatch):
    """Neither a file's imported name nor a standard-library module is a factory: the
    command they would run never runs."""
    marker = tmp_path / "marker"
    (src / "sneaky.py").write_text("from os import system\n")
    one_line(_import(tmp_path / "run", src, "--kw", f"command=touch {marker}",
                     file="sneaky.py", factory="system"),
             "'system' is not a function or class defined there")
    result = cli("import", tmp_path / "run", "--model", "os:system", "--kw",
                 f"command=touch {marker}", "--weights", src / "w.pt", "--dataset", "digits")
    one_line(result, "part of Python's standard library")
    monkeypatch.chdir(tmp_path)
    result = cli("import", tmp_path / "run", "--model", "subprocess:getoutput", "--kw",
                 f"cmd=touch {marker}", "--weights", src / "w.pt", "--dataset", "digits")
    one_line(result, "part of Python's standard library")
    assert not marker.exists() and not (tmp_path / "run").exists()
