"""Issue 29: ``rbg train --overwrite`` replaces only a proven run folder (rbg's files and
nothing else), as ``rbg import --overwrite`` does; anything else is one line, untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import cli

TRAIN = ["train", "--dataset", "digits", "--epochs", "1", "--seeds", "0"]


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_overwrite_refuses_a_run_folder_holding_other_files(tmp_path):
    out = tmp_path / "runs"
    assert cli(*TRAIN, "--out", out).exit_code == 0
    (run,) = out.iterdir()
    (run / "notes.txt").write_text("my notes")
    before = _digest(out)
    result = cli(*TRAIN, "--lr", "0.02", "--out", out, "--overwrite")
    assert result.exit_code == 1
    assert "not an rbg run folder (it holds notes.txt)" in result.output
    assert "Traceback" not in result.output
    assert _digest(out) == before


def test_overwrite_replaces_a_proven_run_folder(tmp_path):
    out = tmp_path / "runs"
    assert cli(*TRAIN, "--out", out).exit_code == 0
    (run,) = out.iterdir()
    weights = (run / "model.safetensors").read_bytes()
    result = cli(*TRAIN, "--lr", "0.02", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert '"lr": 0.02' in (run / "config.json").read_text()
    assert (run / "model.safetensors").read_bytes() != weights
