"""Issue 8: nothing lost under interruption, faults or bad input; untrusted files refused.

Each promise is tested by doing the bad thing for real: the CLI runs in a subprocess that is
killed with SIGKILL or SIGINT, two attack processes share a runs folder, a crafted pickle is
offered as a checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustbench_graph.rundir.folder import load_weights

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--dataset", "digits", "--seeds", "0", "--epochs", "12", "--device", "cpu"]
ATTACK = ["attack", "--suite", "clean,gaussian,dropout,quantize", "-p", "gaussian.draws=4",
          "-p", "dropout.repeats=4", "--device", "cpu"]


def rbg(*args, env_extra: dict | None = None, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore::DeprecationWarning", **(env_extra or {})}
    # Ctrl-C reaches the child even where the test runs in a shell's background job,
    # which starts with SIGINT ignored (and Python then installs no KeyboardInterrupt).
    return subprocess.Popen([sys.executable, "-m", "robustbench_graph", *map(str, args)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint, **kw)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


def _epochs_done(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "status.json").read_text()).get("epochs_done", 0))
    except (OSError, ValueError):
        return 0


def test_train_killed_with_sigkill_resumes_to_identical_weights(tmp_path):
    code, out = finish(rbg(*TRAIN, "--out", tmp_path / "ref"))
    assert code == 0, out
    run = "digits-smallcnn-ce-seed0"
    proc = rbg(*TRAIN, "--out", tmp_path / "cut")
    wait_for(lambda: _epochs_done(tmp_path / "cut" / run) >= 2)
    time.sleep(random.Random(0).uniform(0, 0.3))  # kill at some moment inside a later epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "cut" / run / "checkpoint.pt").exists()
    code, out = finish(rbg(*TRAIN, "--out", tmp_path / "cut"))
    assert code == 0, out
    assert "resumed" in out
    ref = load_weights(tmp_path / "ref" / run / "model.safetensors")
    cut = load_weights(tmp_path / "cut" / run / "model.safetensors")
    assert ref.keys() == cut.keys() and all(torch.equal(ref[k], cut[k]) for k in ref)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    code, out = finish(rbg("train", "--dataset", "digits", "--seeds", "0-1", "--epochs", "6",
                           "--device", "cpu", "--out", root))
    assert code == 0, out
    return root


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_attack_killed_mid_suite_resumes_with_exactly_the_same_rows(trained, tmp_path):
    ref = _copy(trained, tmp_path / "ref")
    code, out = finish(rbg(*ATTACK, "--runs", ref))
    assert code == 0, out
    cut = _copy(trained, tmp_path / "cut")
    proc = rbg(*ATTACK, "--runs", cut)
    first = sorted(cut.iterdir())[0] / "results.csv"
    wait_for(lambda: first.exists())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = pd.read_csv(first)  # never corrupt, whatever the moment
    assert len(partial) > 0
    code, out = finish(rbg(*ATTACK, "--runs", cut))
    assert code == 0, out
    for run in ref.iterdir():
        assert (run / "results.csv").read_bytes() == (cut / run.name / "results.csv").read_bytes()


def test_ctrl_c_exits_130_with_one_line_and_keeps_finished_work(tmp_path):
    proc = rbg("train", "--dataset", "digits", "--seeds", "0-1", "--epochs", "400",
               "--device", "cpu", "--out", tmp_path)
    first = tmp_path / "digits-smallcnn-ce-seed0"
    wait_for(lambda: _epochs_done(first) >= 1)
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc)
    assert code == 130
    assert "interrupted" in out and "Traceback" not in out
    assert (first / "checkpoint.pt").exists() or (first / "model.safetensors").exists()


def test_ctrl_c_in_a_terminal_stops_rbg_run_and_its_workers_without_a_traceback(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group, the local workers included."""
    (tmp_path / "long.toml").write_text(
        'name = "long"\n[train]\ndatasets = ["digits"]\nseeds = "0-1"\nepochs = 400\n'
        '[attack]\nsuite = "clean"\n')
    proc = rbg("run", tmp_path / "long.toml", "--out", tmp_path / "out", "--workers", "2",
               "--no-report", start_new_session=True)
    first = tmp_path / "out" / "digits-smallcnn-ce-seed0"
    wait_for(lambda: _epochs_done(first) >= 1)
    os.killpg(proc.pid, signal.SIGINT)
    code, out = finish(proc, timeout=60)
    assert code != 0 and "interrupted" in out and "Traceback" not in out, out
    assert (first / "checkpoint.pt").exists() or (first / "model.safetensors").exists()


def test_two_attack_processes_share_a_runs_folder(trained, tmp_path):
    ref = _copy(trained, tmp_path / "ref")
    assert finish(rbg(*ATTACK, "--runs", ref))[0] == 0
    shared = _copy(trained, tmp_path / "shared")
    a, b = rbg(*ATTACK, "--runs", shared), rbg(*ATTACK, "--runs", shared)
    (code_a, out_a), (code_b, out_b) = finish(a), finish(b)
    assert code_a == 0 and code_b == 0, out_a + out_b
    keys = ["perturbation", "param", "param_value", "repeat", "metric"]
    for run in ref.iterdir():
        expected = pd.read_csv(run / "results.csv").sort_values(keys).reset_index(drop=True)
        got = pd.read_csv(shared / run.name / "results.csv")
        assert not got.duplicated(keys).any()
        pd.testing.assert_frame_equal(got.sort_values(keys).reset_index(drop=True), expected)


def test_crafted_pickle_checkpoint_is_refused_and_never_runs(tmp_path):
    from conftest import cli

    run = tmp_path / "digits-smallcnn-ce-seed0"
    proc = rbg(*TRAIN, "--out", tmp_path)
    wait_for(lambda: _epochs_done(run) >= 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle

    (run / "checkpoint.pt").write_bytes(pickle.dumps({"epoch": Payload()}))
    result = cli(*TRAIN, "--out", tmp_path)
    assert result.exit_code == 1 and "cannot resume" in result.output
    assert not marker.exists()

    (run / "status.json").write_text('{"status": "complete"}')
    (run / "model.safetensors").write_bytes(pickle.dumps({"w": Payload()}))
    result = cli("attack", run, "--suite", "clean")
    assert result.exit_code == 1 and "not a valid safetensors" in result.output
    assert not marker.exists()


def test_weights_of_a_different_model_are_refused(trained, tmp_path):
    from conftest import cli

    run = _copy(sorted(trained.iterdir())[0], tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["train"]["model"] = "resnet18"
    (run / "config.json").write_text(json.dumps(config))
    result = cli("attack", run, "--suite", "clean")
    assert result.exit_code == 1 and "does not match model 'resnet18'" in result.output


def test_a_diverging_seed_fails_alone_and_the_report_lists_it(tmp_path, monkeypatch):
    """Seed 0's loss becomes NaN (patched CE); seed 1 still trains; the report shows both."""
    from robustbench_graph.config import stable_seed
    from robustbench_graph.losses.ce import CrossEntropy

    from conftest import cli

    original = CrossEntropy.forward

    def nan_for_seed0(self, model, images, labels):  # noqa: ANN001, ANN202
        out = original(self, model, images, labels)
        if torch.initial_seed() == stable_seed("global", 0, 0):  # train.py reseeds per epoch
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(CrossEntropy, "forward", nan_for_seed0)
    result = cli("train", "--dataset", "digits", "--seeds", "0-1", "--epochs", "1",
                 "--out", tmp_path / "runs")
    assert result.exit_code == 1
    assert "loss became nan" in result.output and "1 of 2 runs failed" in result.output
    status = {p.name[-5:]: json.loads((p / "status.json").read_text())["status"]
              for p in (tmp_path / "runs").iterdir()}
    assert status == {"seed0": "failed", "seed1": "complete"}
    assert cli("attack", "--runs", tmp_path / "runs", "--suite", "clean").exit_code == 1
    report = cli("report", "--runs", tmp_path / "runs", "--out", tmp_path / "report")
    assert report.exit_code == 0, report.output
    assert "failed" in report.output and "Traceback" not in report.output
