"""rbg run / rbg status: experiment files planned into units, run on the executors, with
faults (a killed worker, a killed run, two runs at once, a failing unit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from robustbench_graph.errors import RbgError
from robustbench_graph.experiment import spec, units
from robustbench_graph.experiment.executors import LocalExecutor, make_executor
from robustbench_graph.experiment.runner import run_experiment

from conftest import cli

RBG = [sys.executable, "-m", "robustbench_graph"]

SMALL = textwrap.dedent('''
    name = "small"
    [train]
    datasets = ["digits"]
    losses = ["ce", "laplacian"]
    seeds = "0-1"
    epochs = 2
    [attack]
    suite = ["clean", "gaussian", "pgd"]
    settings = { gaussian = { draws = 2 }, pgd = { steps = 5 } }
''')


def _results(out: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(out.glob("*/results.csv"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small grid run without interruption (local, 1 worker)."""
    tmp = tmp_path_factory.mktemp("reference")
    (tmp / "small.toml").write_text(SMALL)
    result = cli("run", tmp / "small.toml", "--out", tmp / "out", "--workers", "1")
    assert result.exit_code == 0, result.output
    return tmp, _results(tmp / "out")


def test_the_shipped_experiments_parse_and_plan():
    sizes = {"demo": 8, "lapnet-cifar10": 80, "lapnet-fashion-mnist": 48,
             "noise-cifar10": 60, "curvature-mnist5k": 30, "lmd-mnist5k": 20,
             "gsl-mnist5k": 20, "sp-mnist5k": 20, "noise-mnist5k": 60,
             "smoothing-mnist5k": 40, "smoothing-cifar10": 50, "loss-sweep-mnist5k": 162,
             "parity-mnist5k": 100, "parity-fashion-mnist": 100,
             "gamma-sweep-fashion-mnist": 30, "gsl-epochs-mnist5k": 60,
             "gsl-fashion-mnist": 20, "lmd-fashion-mnist": 20, "sp-fashion-mnist": 20,
             "noise-fashion-mnist": 60, "gsl-long-mnist5k": 20, "gsl-long-fashion-mnist": 12}
    assert set(spec.shipped_experiments()) == set(sizes)
    for name, size in sizes.items():
        exp = spec.load(name)
        assert len(units.plan(exp)) == size, name
    lapnet = spec.load("lapnet-cifar10")
    assert {(c.loss, c.parseval) for c in lapnet.configs} == {
        ("ce", False), ("ce", True), ("laplacian", False), ("laplacian", True)}
    assert all(c.epochs == 100 and c.model == "preactresnet18" for c in lapnet.configs)
    noise = spec.load("noise-cifar10")
    assert {c.loss for c in noise.configs} == {"ce", "lmd-noise", "noisy", "both", "stability"}
    assert all(c.lr_milestones == (60, 120, 160) and c.feature_dim == 128
               for c in noise.configs)
    # The seed papers' Fashion-MNIST files train parity-fashion-mnist's networks (their
    # comments say so; the runs are shared): every one of their configurations is one of it.
    parity = set(map(repr, spec.load("parity-fashion-mnist").configs))
    for name in ("gsl-fashion-mnist", "lmd-fashion-mnist", "sp-fashion-mnist",
                 "noise-fashion-mnist"):
        assert set(map(repr, spec.load(name).configs)) <= parity, name
    curvature = spec.load("curvature-mnist5k")
    assert {(c.loss, c.loss_options.get("sigma")) for c in curvature.configs} == {
        ("ce", None), ("noisy", 0.3), ("lmd-noise", 0.3)}


def test_a_run_plans_runs_reports_and_then_skips_everything(reference):
    tmp, results = reference
    assert len(results) == 4 and (tmp / "out" / "report" / "index.html").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in (tmp / "out").glob("*/results.csv")}
    result = cli("run", tmp / "small.toml", "--out", tmp / "out", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "0 unit(s) run, 8 already done, 0 failed" in result.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    result = cli("status", tmp / "small.toml", "--out", tmp / "out")
    assert result.exit_code == 0 and "digits-smallcnn-laplacian (attack)" in result.output
    assert all(u.kind and units.state(u)[0] == "done"
               for u in units.plan(spec.load(str(tmp / "small.toml"), out=tmp / "out")))


def test_dry_run_lists_units_and_runs_nothing(tmp_path):
    (tmp_path / "small.toml").write_text(SMALL)
    result = cli("run", tmp_path / "small.toml", "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "8 units" in result.output and "train:digits-smallcnn-ce-seed0" in result.output
    assert not any((tmp_path / "out").glob("*/config.json"))


def test_two_workers_give_the_numbers_of_one(reference, tmp_path):
    _, results = reference
    (tmp_path / "small.toml").write_text(SMALL)
    result = cli("run", tmp_path / "small.toml", "--out", tmp_path / "out", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert _results(tmp_path / "out") == results


def test_a_failing_unit_is_marked_and_the_others_go_on(tmp_path):
    (tmp_path / "nan.toml").write_text(textwrap.dedent('''
        [train]
        datasets = ["digits"]
        losses = ["ce", {name = "laplacian", options = {gamma = 1e30}}]
        epochs = 1
        [attack]
        suite = "clean"
    '''))
    result = cli("run", tmp_path / "nan.toml", "--out", tmp_path / "out", "--workers", "1")
    assert result.exit_code == 1
    assert "loss became inf" in result.output and "not attacked: its training failed" in \
        result.output
    assert len(_results(tmp_path / "out")) == 1  # ce was trained and attacked
    result = cli("status", tmp_path / "nan.toml", "--out", tmp_path / "out")
    assert "failed: train:digits-smallcnn-laplacian_gamma1e+30-seed0" in result.output


def _wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_killed_worker_loses_only_its_unit_and_a_rerun_finishes_the_grid(reference,
                                                                         tmp_path):
    """SIGKILL the worker computing a unit: that unit is reported failed, the other units
    finish; the same command then resumes it, and every results.csv is byte-identical to
    the uninterrupted run's."""
    _, results = reference
    exp = spec.parse(SMALL, "small.toml", out=tmp_path / "out")
    plan = units.plan(exp)
    target = next(u for u in plan if u.kind == "attack")
    outcomes = []

    def killer():
        if _wait_for(lambda: units.is_running(target)):
            pid = int(units.lock_holder(target).split()[0])
            os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    run_experiment(exp, LocalExecutor(1, 1), on_outcome=outcomes.append, report=False)
    thread.join(5)
    by_id = {o["id"]: o for o in outcomes}
    assert by_id[target.id]["status"] == "failed"
    assert "worker died" in by_id[target.id]["message"]
    assert sum(o["status"] == "done" for o in outcomes) == len(plan) - 1
    summary = run_experiment(exp, LocalExecutor(1, 1), report=False)
    assert [o["id"] for o in summary.outcomes] == [target.id]
    assert _results(tmp_path / "out") == results


def _run_command(tmp_path: Path) -> list[str]:
    """``rbg run`` of the small grid into ``tmp_path / "out"``, as a separate process."""
    (tmp_path / "small.toml").write_text(SMALL)
    return [*RBG, "run", str(tmp_path / "small.toml"), "--out", str(tmp_path / "out"),
            "--workers", "1", "--no-report"]


def test_a_killed_run_resumes_to_identical_results(reference, tmp_path):
    """SIGKILL the whole ``rbg run`` mid-way (its workers die with it), run it again."""
    _, results = reference
    args = _run_command(tmp_path)
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert _wait_for(lambda: len(list((tmp_path / "out").glob("*/results.csv"))) >= 1)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    exp = spec.parse(SMALL, "small.toml", out=tmp_path / "out")
    assert any(units.state(u)[0] != "done" for u in units.plan(exp))  # killed mid-grid
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _results(tmp_path / "out") == results


def test_two_runs_at_once_duplicate_nothing(reference, tmp_path):
    _, results = reference
    args = _run_command(tmp_path)
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    computed = sum(line.split(": ")[-1].startswith("done") for out in outputs
                   for line in out.splitlines() if line.startswith("["))
    assert computed == 8  # each unit computed by exactly one of the two
    assert _results(tmp_path / "out") == results


@pytest.mark.parametrize(("text", "message"), [
    ("[train]\nlosses = ['nope']", "unknown loss 'nope'"),
    ("[train]\nepochs = 0", "--epochs must be positive"),
    ("[train]\nepochs = 1\nlosses = [{name = 'laplacian', options = {gamma = 'x'}}]",
     "gamma"),
    ("[train\n", "is not valid TOML"),
    ("colour = 1", "unknown key(s) colour"),
    ("[train]\nlearning_rate = 1", "unknown train setting(s) learning_rate"),
    ("[attack]\nsuite = 'blur'", "unknown perturbation 'blur'"),
    ("[attack]\nsettings = { pgd = { steps = -1 } }", "PGD steps must be in"),
    ("[resources]\ncores = 2", "[resources] takes cpus"),
])
def test_bad_experiment_files_are_one_line(tmp_path, text, message):
    (tmp_path / "bad.toml").write_text(text)
    result = cli("run", tmp_path / "bad.toml", "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "out").exists()


def test_unknown_experiments_and_executors_are_one_line(tmp_path):
    result = cli("run", "no-such-experiment")
    assert result.exit_code == 1
    assert ("shipped name (curvature-mnist5k, demo, gamma-sweep-fashion-mnist, gsl-epochs-mnist5k"
            in result.output)
    result = cli("run", tmp_path / "missing.toml")
    assert result.exit_code == 1 and "does not exist" in result.output
    with pytest.raises(RbgError, match="unknown --executor 'mpi'"):
        make_executor("mpi", workers=None, resources=spec.Resources(), address=None,
                      folder=tmp_path)
    with pytest.raises(RbgError, match="exceeds the"):
        make_executor("local", workers=64, resources=spec.Resources(), address=None,
                      folder=tmp_path)


ONE_RUN = SMALL.replace('losses = ["ce", "laplacian"]', 'losses = ["laplacian"]').replace(
    'seeds = "0-1"', 'seeds = "1"')


def test_submitit_local_executor_gives_the_same_numbers(reference, tmp_path):
    """The slurm executor's job arrays, through submitit's local executor (each job its own
    process, as on a cluster); one run of the grid, to keep the test short."""
    pytest.importorskip("submitit", reason="the slurm extra (submitit) is not installed")
    _, results = reference
    exp = spec.parse(ONE_RUN, "small.toml", out=tmp_path / "out")
    ex = make_executor("slurm", workers=None, resources=exp.resources, address=None,
                       folder=tmp_path / "jobs", cluster="local")
    summary = run_experiment(exp, ex, report=False)
    assert [o["status"] for o in summary.outcomes] == ["done", "done"]
    name = "digits-smallcnn-laplacian-seed1"
    assert _results(tmp_path / "out") == {name: results[name]}
    assert list((tmp_path / "jobs").glob("*/*_result.pkl"))  # submitit's own job files


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A real Ray cluster on this machine: a head node and a second worker node, one CPU
    each (Ray 2.60 has no local mode)."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    import socket

    ray_bin = str(Path(sys.executable).parent / "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tmp_path_factory.mktemp("ray")
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run([ray_bin, "start", "--head", "--port", str(port), "--node-ip-address",
                    "127.0.0.1", "--include-dashboard", "false", "--temp-dir", str(temp),
                    *common], check=True, capture_output=True, env=env, timeout=180)
    try:
        subprocess.run([ray_bin, "start", "--address", address, "--node-ip-address",
                        "127.0.0.1", *common], check=True, capture_output=True, env=env,
                       timeout=180)
        yield address
    finally:
        import ray

        ray.shutdown()
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_ray_cluster_gives_the_same_numbers(reference, tmp_path, ray_cluster):
    import ray

    _, results = reference
    (tmp_path / "small.toml").write_text(SMALL)
    result = cli("run", tmp_path / "small.toml", "--out", tmp_path / "out", "--executor",
                 "ray", "--address", ray_cluster, "--no-report")
    assert result.exit_code == 0, result.output
    assert "8 unit(s) run, 0 already done, 0 failed" in result.output
    assert _results(tmp_path / "out") == results
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2


def test_a_shipped_name_is_found_beside_a_folder_of_the_same_name(tmp_path, monkeypatch):
    """`rbg status demo` next to the demo's runs folder `demo/` reads the shipped file (the
    folder is not an experiment file); a folder that names no shipped file stays an error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    text, where = spec.locate("demo")
    assert where == "demo (shipped)" and "[train]" in text
    (tmp_path / "mine").mkdir()
    with pytest.raises(RbgError, match="no experiment file 'mine'"):
        spec.locate("mine")
