"""Trust for code in run folders (issue 29, docs/models.md#trusting-code-in-run-folders): a
folder's model code runs only when this user imported it here, trusted it with `rbg trust`,
or passes --trust-code; whatever its config.json says, only a function or class of its own
recorded source runs, and its code and weights are checked before anything runs."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from conftest import TINY_NET as NET
from conftest import cli, write_tiny_model

ATTACK = ["--suite", "clean", "--samples", "20", "--device", "cpu"]


def _one_line(result, message, per_run=False):
    """One line naming the problem; ``per_run``: rbg attack's error for one run folder,
    then its count of runs that could not be attacked."""
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 + per_run and message in lines[0], result.output
    if per_run:
        assert "1 of 1 runs could not be attacked" in lines[1]
    assert "Traceback" not in result.output


@pytest.fixture()
def made(tmp_path, monkeypatch):
    """A run imported by "another user" (config folder A); this test is user B."""
    src = write_tiny_model(tmp_path / "src")
    monkeypatch.setenv("RBG_CONFIG_DIR", str(tmp_path / "config-A"))
    run = tmp_path / "runs" / "theirs"
    result = cli("import", run, "--model-file", f"{src / 'net.py'}:make", "--weights",
                 src / "w.pt", "--dataset", "digits")
    assert result.exit_code == 0, result.output
    assert cli("attack", run, *ATTACK).exit_code == 0  # the importer's own folder runs
    (run / "results.csv").unlink()
    monkeypatch.setenv("RBG_CONFIG_DIR", str(tmp_path / "config-B"))
    return run


def test_a_folder_from_elsewhere_runs_only_once_trusted(made, tmp_path):
    _one_line(cli("attack", made, *ATTACK), f"see what runs and trust it with 'rbg trust "
                                            f"{made}', or pass --trust-code")
    assert not (made / "results.csv").exists()
    _one_line(cli("smoothness", made, "--out", tmp_path / "s", "--limit", "100"),
              "'rbg trust")
    result = cli("trust", made, "--show")
    assert result.exit_code == 0 and "not trusted (--show" in result.output
    _one_line(cli("attack", made, *ATTACK), "rbg trust")  # --show recorded nothing
    result = cli("trust", made)
    assert result.exit_code == 0, result.output
    sha = hashlib.sha256((made / "model_source.py").read_bytes()).hexdigest()
    assert f"the model file {made / 'model_source.py'} (SHA-256 {sha})" in result.output
    assert "its factory make()" in result.output
    result = cli("attack", made, *ATTACK)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(made / "results.csv").perturbation.tolist() == ["clean"]


def test_trust_code_runs_it_once_without_recording(made, tmp_path):
    result = cli("attack", made, *ATTACK, "--trust-code")
    assert result.exit_code == 0, result.output
    result = cli("smoothness", made, "--out", tmp_path / "s", "--limit", "100",
                 "--trust-code")
    assert result.exit_code == 0, result.output
    _one_line(cli("attack", made, *ATTACK, "--overwrite"), "rbg trust")


def test_trust_follows_the_content_not_the_path(made, tmp_path, monkeypatch):
    assert cli("trust", made).exit_code == 0
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(made, copy)
    assert cli("attack", copy, *ATTACK).exit_code == 0  # same user, same content
    record = json.loads((copy / "config.json").read_text())
    record["imported"]["source"]["kwargs"] = {"hidden": 16}  # the import record edited
    (copy / "config.json").write_text(json.dumps(record))
    _one_line(cli("attack", copy, *ATTACK, "--overwrite"), "rbg trust")
    monkeypatch.setenv("RBG_CONFIG_DIR", str(tmp_path / "config-C"))  # another user
    _one_line(cli("attack", made, *ATTACK, "--overwrite"), "rbg trust")


def test_replaced_weights_of_the_same_shape_are_refused(made):
    state = load_file(str(made / "model.safetensors"))
    save_file({k: torch.zeros_like(v) for k, v in state.items()},
              str(made / "model.safetensors"))
    message = "model.safetensors differs from the weights imported"
    _one_line(cli("attack", made, *ATTACK, "--trust-code"), message, per_run=True)
    _one_line(cli("trust", made), message)


def _hostile(run, marker, source):
    record = json.loads((run / "config.json").read_text())
    record["imported"]["source"] = source | {"kwargs": {"command": f"touch {marker}"}}
    (run / "config.json").write_text(json.dumps(record))


@pytest.mark.parametrize("trust", [[], ["--trust-code"]])
def test_a_config_naming_any_callable_never_runs_it(made, tmp_path, trust):
    """module os, factory system; a model file that only imports system: refused, the
    command never runs, whether the folder is trusted or not."""
    marker = tmp_path / "marker"
    _hostile(made, marker, {"kind": "module", "module": "os", "factory": "system",
                            "sha256": hashlib.sha256(open(
                                sys.modules["os"].__file__, "rb").read()).hexdigest()})
    _one_line(cli("attack", made, *ATTACK, *trust), "part of Python's standard library",
              per_run=True)
    _one_line(cli("smoothness", made, "--out", tmp_path / "s", *trust),
              "part of Python's standard library")
    _one_line(cli("trust", made), "part of Python's standard library")
    code = b"from os import system\n"
    (made / "model_source.py").write_bytes(code)
    _hostile(made, marker, {"kind": "file", "path": "x.py", "factory": "system",
                            "sha256": hashlib.sha256(code).hexdigest()})
    if trust:
        _one_line(cli("attack", made, *ATTACK, *trust), "not a function or class defined "
                  "there", per_run=True)
    else:
        _one_line(cli("attack", made, *ATTACK), "rbg trust")
    assert not marker.exists()


def test_a_changed_module_is_refused_before_it_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RBG_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "rbg_trust_mod.py").write_text(NET)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    torch.save(net.state_dict(), tmp_path / "w.pt")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        result = cli("import", tmp_path / "run", "--model", "rbg_trust_mod:make",
                     "--weights", tmp_path / "w.pt", "--dataset", "digits")
        assert result.exit_code == 0, result.output
        assert cli("attack", tmp_path / "run", *ATTACK).exit_code == 0
        marker = tmp_path / "marker"
        (tmp_path / "rbg_trust_mod.py").write_text(f"open({str(marker)!r}, 'w')\n" + NET)
        sys.modules.pop("rbg_trust_mod", None)
        _one_line(cli("attack", tmp_path / "run", *ATTACK, "--overwrite", "--trust-code"),
                  "changed since it was imported", per_run=True)
        assert not marker.exists()
    finally:
        sys.modules.pop("rbg_trust_mod", None)


def test_several_untrusted_folders_are_one_line_before_any_work(made, tmp_path):
    shutil.copytree(made, made.parent / "second")
    (made.parent / "notes.txt").write_text("kept")
    result = cli("attack", "--runs", made.parent, *ATTACK)
    _one_line(result, "2 run folders (")
    assert "'rbg trust RUN'" in result.output
    assert not list(made.parent.glob("*/results.csv"))


def test_trust_of_what_is_not_a_run_folder_is_one_line(tmp_path):
    _one_line(cli("trust", tmp_path / "nowhere"), "is not a run folder")
