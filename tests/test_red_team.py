"""Issue 15: the holes a red team found, each done for real (the CLI in a subprocess, killed
with SIGKILL where the case is about a kill) and each asserting that nothing else changes."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest
from test_reliability import ATTACK, TRAIN, _epochs_done, finish, rbg, wait_for

from conftest import cli


@pytest.fixture(scope="module")
def attacked(tmp_path_factory) -> Path:
    """Two digits runs, trained and attacked with the reduced suite of test_reliability."""
    root = tmp_path_factory.mktemp("attacked")
    result = cli("train", "--dataset", "digits", "--seeds", "0-1", "--epochs", "4",
                 "--device", "cpu", "--out", root)
    assert result.exit_code == 0, result.output
    result = cli(*ATTACK, "--runs", root)
    assert result.exit_code == 0, result.output
    return root


def run_cli(*args) -> tuple[int, str]:
    """The CLI in-process (the cases about files, not about the process itself)."""
    result = cli(*args)
    return result.exit_code, result.output


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _cells(path: Path) -> set[tuple]:
    table = pd.read_csv(path, keep_default_na=False)
    return set(table[["perturbation", "param", "param_value"]].itertuples(index=False))


def _finished(run: Path) -> dict[str, str]:
    try:
        record = json.loads((run / "attack.json").read_text())
    except (OSError, ValueError):
        return {}
    return {label: entry["finished"] for label, entry in record["cells"].items()}


def test_overwrite_killed_mid_cell_loses_nothing_and_reruns_to_identical_results(attacked,
                                                                                 tmp_path):
    """Item 1: --overwrite replaces a cell's rows only once the new ones exist."""
    ref = _copy(attacked, tmp_path / "ref")
    code, out = run_cli(*ATTACK, "--overwrite", "--runs", ref)
    assert code == 0, out
    cut = _copy(attacked, tmp_path / "cut")
    first = sorted(cut.iterdir())[0]
    before = _finished(first)
    cells, rows = _cells(first / "results.csv"), len(pd.read_csv(first / "results.csv"))
    proc = rbg(*ATTACK, "--overwrite", "--runs", cut)
    # kill once at least one cell was replaced, while a later one is being computed
    wait_for(lambda: any(_finished(first).get(k) != v for k, v in before.items()))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _cells(first / "results.csv") == cells  # every earlier cell still there
    assert len(pd.read_csv(first / "results.csv")) == rows
    code, out = run_cli(*ATTACK, "--overwrite", "--runs", cut)
    assert code == 0, out
    for run in ref.iterdir():
        assert (run / "results.csv").read_bytes() == (cut / run.name / "results.csv"
                                                      ).read_bytes()


def test_a_failing_overwrite_keeps_the_earlier_rows(attacked, tmp_path):
    runs = _copy(attacked, tmp_path / "runs")
    first = sorted(runs.iterdir())[0] / "results.csv"
    before = first.read_bytes()
    code, out = run_cli(*ATTACK, "--overwrite", "-p", "dropout.blocks=9", "--runs", runs)
    assert code == 1 and "beyond the model's" in out and "Traceback" not in out
    assert first.read_bytes() == before


def test_a_truncated_results_row_is_repaired_with_a_warning(attacked, tmp_path):
    """Item 2: a row cut mid-line is dropped with its whole cell, which is recomputed."""
    runs = _copy(attacked, tmp_path / "runs")
    damaged, other = sorted(runs.iterdir())
    path = damaged / "results.csv"
    good, untouched = path.read_bytes(), (other / "results.csv").read_bytes()
    path.write_bytes(good[: len(good) - 30])  # the last line cut inside its fields
    report = tmp_path / "report"
    code, out = run_cli("report", "--runs", runs, "--out", report, "--no-plots")
    assert code == 0 and "warning:" in out and str(path) in out.replace("\n", "")
    assert "damaged or incomplete" in out and "Traceback" not in out
    summary = pd.read_csv(report / "summary.csv")
    assert set(summary.loc[summary.metric == "accuracy", "n"]) <= {1, 2}
    assert not (summary.dataset == "di").any()
    code, out = run_cli(*ATTACK, "--runs", runs)
    assert code == 0 and "warning:" in out and "cells to recompute" in out, out
    assert path.read_bytes() == good  # the cell recomputed: identical to the undamaged file
    assert (other / "results.csv").read_bytes() == untouched


def test_a_results_file_missing_rows_of_a_cell_recomputes_that_cell(attacked, tmp_path):
    """Item 2: rows removed from the middle of a cell (its recorded row count differs)."""
    runs = _copy(attacked, tmp_path / "runs")
    path = sorted(runs.iterdir())[0] / "results.csv"
    good = path.read_bytes()
    table = pd.read_csv(path, keep_default_na=False)
    gaussian = table.index[table.perturbation == "gaussian"]
    table.drop(gaussian[:2]).to_csv(path, index=False, float_format="%.10g")
    code, out = run_cli(*ATTACK, "--runs", runs)
    assert code == 0 and "gaussian snr_db=" in out, out
    repaired = pd.read_csv(path, keep_default_na=False)
    assert len(repaired) == len(pd.read_csv(pd.io.common.BytesIO(good)))


# --- item 4: checkpoints carry a checksum and the run's fingerprint ----------------------
class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """Seeds 0 and 1 of a 12-epoch digits training, each stopped by an error in epoch 3 (the
    checkpoint of epoch 2 stays; the run is marked failed and resumes)."""
    import torch

    from robustbench_graph.config import TrainConfig
    from robustbench_graph.train import plan_runs, train_run

    root = tmp_path_factory.mktemp("interrupted")
    for spec in plan_runs(TrainConfig(dataset="digits", epochs=12), [0, 1], root):
        def stop(progress):  # noqa: ANN001, ANN202
            if progress.epoch == 3:
                raise _Stop

        with pytest.raises(_Stop):
            train_run(spec, device=torch.device("cpu"), on_progress=stop)
        assert (spec.run_dir / "checkpoint.pt").exists()
        assert json.loads((spec.run_dir / "status.json").read_text())["status"] == "failed"
    return root


def _resume(root: Path, seed: str = "0") -> tuple[int, str]:
    return run_cli(*TRAIN[:3], "--seeds", seed, *TRAIN[5:], "--out", root)


def _rewrite_epoch(path: Path, epoch: int) -> None:
    """A well-formed checkpoint (valid checksum and fingerprint) that lies about its epoch."""
    import hashlib
    import io

    import torch

    raw = path.read_bytes()
    magic, digest, owner, payload = raw.split(b"\n", 3)
    state = torch.load(io.BytesIO(payload), weights_only=True)
    state["epoch"] = epoch
    buffer = io.BytesIO()
    torch.save(state, buffer)
    body = buffer.getvalue()
    path.write_bytes(b"\n".join([magic, hashlib.sha256(body).hexdigest().encode(), owner, body]))


@pytest.mark.parametrize(("damage", "message"), [
    ("flip", "checksum does not match"),
    ("epoch", "outside 0..11"),
    ("other seed", "another configuration or seed"),
    ("no header", "not an rbg checkpoint"),
])
def test_a_bad_checkpoint_is_refused_in_one_line(interrupted, tmp_path, damage, message):
    root = _copy(interrupted, tmp_path / "runs")
    run = root / "digits-smallcnn-ce-seed0"
    ckpt = run / "checkpoint.pt"
    if damage == "flip":
        raw = bytearray(ckpt.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        ckpt.write_bytes(bytes(raw))
    elif damage == "epoch":
        _rewrite_epoch(ckpt, 10**9)
    elif damage == "other seed":
        shutil.copy(root / "digits-smallcnn-ce-seed1" / "checkpoint.pt", ckpt)
    else:
        ckpt.write_bytes(ckpt.read_bytes().split(b"\n", 3)[3])  # torch bytes only
    other = (root / "digits-smallcnn-ce-seed1" / "checkpoint.pt").read_bytes()
    code, out = _resume(root)
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert code == 1 and message in out and "--overwrite" in out, out
    assert "Traceback" not in out and "weights_only" not in out
    assert len(errors) >= 1 and not (run / "model.safetensors").exists()
    assert (root / "digits-smallcnn-ce-seed1" / "checkpoint.pt").read_bytes() == other


def test_a_good_checkpoint_still_resumes(interrupted, tmp_path):
    root = _copy(interrupted, tmp_path / "runs")
    code, out = _resume(root)
    assert code == 0 and "resumed" in out, out


# --- items 8 and 10, and the smaller ones ---------------------------------------------------
def test_usage_errors_are_one_error_line_with_exit_2():
    for args in (["train", "--epochs", "abc"],):
        code, out = finish(rbg(*args))
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), out
        assert "--help" in lines[0] and "╭" not in out


def test_an_ascii_terminal_and_a_non_utf8_run_path_do_not_crash_the_report(attacked,
                                                                           tmp_path):
    import os

    root = tmp_path / "runs"
    root.mkdir()
    odd = Path(os.fsdecode(bytes(root) + b"/run-\xff"))
    shutil.copytree(sorted(attacked.iterdir())[0], odd)
    (odd / "results.csv").unlink()
    code, out = finish(rbg(*ATTACK, "--runs", root))  # a process: its streams are rbg's
    assert code == 0 and "Traceback" not in out, out
    proc = rbg("report", "--runs", root, "--out", tmp_path / "report", "--no-plots",
               env_extra={"PYTHONIOENCODING": "ascii"})
    code, out = finish(proc)
    assert code == 0 and "Traceback" not in out, out
    assert (tmp_path / "report" / "index.html").exists()


def test_a_second_ctrl_c_gives_no_traceback(tmp_path):
    proc = rbg("train", "--dataset", "digits", "--seeds", "0-1", "--epochs", "400",
               "--device", "cpu", "--out", tmp_path)
    wait_for(lambda: _epochs_done(tmp_path / "digits-smallcnn-ce-seed0") >= 1)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc)
    assert code == 130 and "Traceback" not in out and "interrupted" in out, out


def test_a_symlinked_lock_is_refused(attacked, tmp_path):
    run = _copy(sorted(attacked.iterdir())[0], tmp_path / "run")
    target = tmp_path / "elsewhere" / "planted"
    target.parent.mkdir()
    (run / ".rbg.lock").unlink(missing_ok=True)
    (run / ".rbg.lock").symlink_to(target)
    before = (run / "results.csv").read_bytes()
    code, out = run_cli(*ATTACK, "--overwrite", run)
    assert code == 1 and "symbolic link" in out and "Traceback" not in out, out
    assert not target.exists() and (run / "results.csv").read_bytes() == before


def test_stale_temp_files_are_cleaned_and_fresh_ones_kept(attacked, tmp_path):
    import os
    import time

    run = _copy(sorted(attacked.iterdir())[0], tmp_path / "run")
    stale, fresh = run / ".results.csv.abc123.tmp", run / ".results.csv.def456.tmp"
    stale.write_text("left by a kill")
    fresh.write_text("being written")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    code, out = run_cli(*ATTACK, run)
    assert code == 0, out
    assert not stale.exists() and fresh.exists()


def test_weights_are_written_with_the_usual_permissions(attacked):
    run = sorted(attacked.iterdir())[0]
    modes = {p.name: p.stat().st_mode & 0o777 for p in run.iterdir() if p.is_file()
             and not p.name.startswith(".")}
    assert modes["model.safetensors"] == modes["config.json"], modes


def test_a_full_disk_while_saving_weights_is_one_line_and_marks_the_run_failed(tmp_path,
                                                                               monkeypatch):
    import errno

    from robustbench_graph.rundir import folder as rundir

    def full(path, write):  # noqa: ANN001, ANN202
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(rundir, "atomic_write", full)
    result = cli("train", "--dataset", "digits", "--epochs", "1", "--out", tmp_path)
    assert result.exit_code == 1 and "no space left on device" in result.output
    assert "Traceback" not in result.output
    status = json.loads((tmp_path / "digits-smallcnn-ce-seed0" / "status.json").read_text())
    assert status["status"] == "failed"
