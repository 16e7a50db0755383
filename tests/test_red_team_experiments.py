"""Issue 29: experiment files typed by their schema, bounded reads and grids, executors that
give up in time, report options checked. Each bad input is one line on stderr, a non-zero
exit, no traceback, and nothing under an existing runs folder changes; ``--dry-run`` and a
real run refuse alike."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustbench_graph.errors import RbgError
from robustbench_graph.experiment import schema, spec
from robustbench_graph.experiment.executors import ray_endpoint

from conftest import cli

RBG = [sys.executable, "-m", "robustbench_graph"]
GRID = '[train]\ndatasets = ["digits"]\nepochs = 1\n[attack]\nsuite = ["clean"]\n'


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def runs(tmp_path) -> Path:
    """An existing runs folder (one run folder's files) that no bad input may change."""
    run = tmp_path / "runs" / "digits-smallcnn-ce-seed0"
    run.mkdir(parents=True)
    (run / "status.json").write_text('{"status": "complete"}')
    (run / "config.json").write_text('{"train": {}, "seed": 0, "method": "ce"}')
    (run / "results.csv").write_text("run,metric,value\n")
    return tmp_path / "runs"


def _one_line(result, message: str) -> None:
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert message in lines[0], lines[0]
    assert len(lines[0]) < 400


SIGMAS = ", ".join(f'{{name = "noisy", options = {{sigma = {0.01 * (i + 1):.2f}}}}}'
                   for i in range(100))  # 100 configurations


def _deep(n: int) -> str:
    return "x = " + "[" * n + "]" * n + "\n"


BAD_FILES = [
    ("epochs a string", '[train]\nepochs = "5"', "train.epochs must be an integer, got '5'"),
    ("epochs 1.5", "[train]\nepochs = 1.5", "train.epochs must be an integer, got 1.5"),
    ("epochs 2^70", "[train]\nepochs = 1180591620717411303424", "train.epochs must be"),
    ("samples a string", '[attack]\nsamples = "abc"', "attack.samples must be an integer"),
    ("samples 1.5", "[attack]\nsamples = 1.5", "attack.samples must be an integer, got 1.5"),
    ("attack batch_size true", "[attack]\nbatch_size = true", "attack.batch_size must be"),
    ("suite a number", "[attack]\nsuite = 5", "attack.suite must be a string or a list"),
    ("setting nested list", "[attack]\nsettings = { gaussian = { draws = [[1]] } }",
     "attack.settings.gaussian.draws must be"),
    ("settings not a table", "[attack]\nsettings = 3", "attack.settings must be a table"),
    ("cpus a string", '[resources]\ncpus = "abc"', "resources.cpus must be an integer"),
    ("cpus 0", "[resources]\ncpus = 0", "resources.cpus must be in 1.."),
    ("gpus -1", "[resources]\ngpus = -1", "resources.gpus must be in 0.."),
    ("mem_gb negative", "[resources]\nmem_gb = -1", "resources.mem_gb must be in"),
    ("partition a number", "[resources]\npartition = 3", "resources.partition must be a string"),
    ("resources unknown key", "[resources]\ncores = 2", "[resources] takes cpus"),
    ("augment a string", '[train]\naugment = "x"', "train.augment must be true or false"),
    ("grad_clip true", "[train]\ngrad_clip = true", "train.grad_clip must be a number, got true"),
    ("lr nan", "[train]\nlr = nan", "train.lr must be a number, got nan"),
    ("lr_milestones strings", '[train]\nlr_milestones = ["a"]',
     "train.lr_milestones must be a list of integers"),
    ("parseval a string", '[train]\nparseval = "yes"', "train.parseval must be true or false"),
    ("datasets numbers", "[train]\ndatasets = [1]", "train.datasets must be a string"),
    ("seeds a list", "[train]\nseeds = [0, 1]", "train.seeds must be a string or an integer"),
    ("loss option a table", '[train]\nlosses = [{name = "laplacian", options = {gamma = {a = 1}}}]',
     "option gamma must be"),
    ("report plots a string", '[report]\nplots = "no"', "report.plots must be true or false"),
    ("report baseline a number", "[report]\nbaseline = 1", "report.baseline must be a string"),
    ("report unknown key", '[report]\ncolour = "red"', "unknown key(s) colour in [report]"),
    ("report columns twice", '[report]\ncolumns = ["clean", "clean"]', "named more than once"),
    ("name a table", "name = { a = 1 }", "name must be a string, got a table"),
    ("unknown dataset", '[train]\ndatasets = ["imagenet"]', "unknown dataset 'imagenet'"),
    ("unknown model", '[train]\nmodels = ["vgg"]', "unknown model 'vgg'"),
    ("unknown loss", '[train]\nlosses = ["hinge"]', "unknown loss 'hinge'"),
    ("TOML nested 5000 deep", _deep(5000), "nested too deep"),
    ("grid of 2x10^6 units",
     f'[train]\nlosses = [{SIGMAS}]\nseeds = "0-9999"',
     "the grid has 2,000,000 units"),
]


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize(("name", "text", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_experiment_file_is_one_line_in_a_dry_run_and_a_run(runs, tmp_path, name, text,
                                                                    message, dry):
    before = _digest(runs)
    (tmp_path / "bad.toml").write_text(text)
    result = cli("run", tmp_path / "bad.toml", "--out", tmp_path / "out", "--workers", "1",
                 *(["--dry-run"] if dry else []))
    _one_line(result, message)
    assert not (tmp_path / "out").exists()
    assert _digest(runs) == before


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _too_big(path: Path) -> None:
    path.write_text("# " + "x" * (spec.MAX_FILE_BYTES + 10) + "\n")


def _not_utf8(path: Path) -> None:
    path.write_bytes(b"name = '\xff\xfe'\n")


BAD_PATHS = [
    ("experiment file a FIFO", _fifo, "is not a regular file"),
    ("experiment file linked to /dev/zero", _dev_zero, "is not a regular file"),
    ("experiment file over 4 MiB", _too_big, "is too large"),
    ("experiment file not UTF-8", _not_utf8, "cannot be read"),
]


@pytest.mark.parametrize(("name", "make", "message"), BAD_PATHS, ids=[b[0] for b in BAD_PATHS])
def test_an_experiment_file_that_cannot_be_one_is_refused_unread(runs, tmp_path, name, make,
                                                                 message):
    before = _digest(runs)
    make(tmp_path / "bad.toml")
    t0 = time.monotonic()
    result = cli("run", tmp_path / "bad.toml", "--out", tmp_path / "out", "--dry-run")
    assert time.monotonic() - t0 < 20  # a FIFO used to hang, /dev/zero to grow until killed
    _one_line(result, message)
    assert _digest(runs) == before


@pytest.mark.parametrize("where", [".", "grid", "a/b"])
def test_an_out_inside_a_run_folder_is_refused_before_any_work(runs, tmp_path, where):
    run = runs / "digits-smallcnn-ce-seed0"
    before = _digest(runs)
    (tmp_path / "grid.toml").write_text(GRID)
    for extra in ([], ["--dry-run"]):
        result = cli("run", tmp_path / "grid.toml", "--out", run / where, "--workers", "1",
                     *extra)
        _one_line(result, f"is inside the run folder {run}")
    assert _digest(runs) == before and sorted(p.name for p in run.iterdir()) == [
        "config.json", "results.csv", "status.json"]


def test_an_out_beside_run_folders_is_fine(runs, tmp_path):
    (tmp_path / "grid.toml").write_text(GRID)
    exp = spec.load(str(tmp_path / "grid.toml"), out=runs / "grid")
    assert exp.out == runs / "grid"


def test_a_grid_over_the_cap_is_refused_before_its_units_exist(tmp_path):
    text = f'[train]\nlosses = [{SIGMAS}]\nseeds = "0-9999"\nparseval = [false, true]\n'
    t0 = time.perf_counter()
    with pytest.raises(RbgError, match="the grid has 4,000,000 units .* at most 100,000"):
        spec.parse(text, "big.toml", out=tmp_path / "out")
    assert time.perf_counter() - t0 < 5
    # at the cap exactly: 5 losses x 10,000 seeds x (train + attack)
    text = '[train]\nlosses = ["ce", "gsl", "lmd", "noisy", "sp"]\nseeds = "0-9999"\n'
    assert len(spec.parse(text, "cap.toml", out=tmp_path / "out").seeds) == 10_000


def test_a_large_grid_dry_run_lists_configurations_not_units(tmp_path):
    (tmp_path / "big.toml").write_text(
        '[train]\ndatasets = ["digits"]\nlosses = ["ce", "gsl"]\nseeds = "0-999"\n')
    t0 = time.perf_counter()
    result = cli("run", tmp_path / "big.toml", "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - t0 < 60
    assert "4000 units" in result.output and "per configuration" in result.output
    assert "digits-smallcnn-gsl (attack)" in result.output
    assert "seed999" not in result.output and not (tmp_path / "out").exists()


def test_report_columns_named_twice_is_one_line_at_once(runs, tmp_path):
    before = _digest(runs)
    t0 = time.perf_counter()
    result = cli("report", "--runs", runs, "--out", tmp_path / "rep", "--columns",
                 ",".join(["clean"] * 1000))
    assert time.perf_counter() - t0 < 10  # 1,000 duplicates used to take over 200 s
    _one_line(result, "columns: 'clean' is named more than once")
    assert _digest(runs) == before and not (tmp_path / "rep").exists()


@pytest.mark.parametrize(("annotation", "value", "expected"), [
    (int, 3, 3), (float, 3, 3.0), (int | None, 4, 4), (tuple[int, ...], [1, 2], (1, 2)),
    (bool, False, False), (str | tuple[str, ...], ["a"], ("a",)),
])
def test_the_schema_accepts_what_fits(annotation, value, expected):
    got = schema.check(value, annotation, "k")
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("annotation", "value"), [
    (int, True), (int, 1.0), (float, True), (float, float("inf")), (bool, 1), (str, 1),
    (tuple[int, ...], [1, "a"]), (int | None, "none"), (int, 2**64),
])
def test_the_schema_refuses_what_does_not(annotation, value):
    with pytest.raises(RbgError, match="^k must be"):
        schema.check(value, annotation, "k")


def test_train_keys_come_from_the_configuration_dataclass():
    from dataclasses import fields

    from robustbench_graph.config import TrainConfig

    names = {f.name for f in fields(TrainConfig)}
    assert set(spec.TRAIN_FIELDS) == names - {"dataset", "model", "loss", "loss_options",
                                              "parseval"}


# Executors: a cluster that does not answer, a malformed address, an unknown cluster kind.

@pytest.mark.parametrize(("address", "ok"), [
    (None, None), ("auto", None), ("127.0.0.1:6379", ("127.0.0.1", 6379)),
    ("ray://head:10001", ("head", 10001)), ("[::1]:6379", ("::1", 6379)),
    ("garbage", False), ("host:0", False), ("host:99999", False), (":6379", False),
    ("a b:1", False), ("http://x:1/path", False),
])
def test_ray_addresses_are_checked_before_ray_sees_them(address, ok):
    if ok is False:
        with pytest.raises(RbgError, match="is not a Ray address"):
            ray_endpoint(address)
    else:
        assert ray_endpoint(address) == ok


def _rbg(args: list, cwd: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([*RBG, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
                                 "OMP_NUM_THREADS": "1", **env})


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--executor", "ray", "--address", "127.0.0.1:1"], {},
     "no Ray cluster answers at 127.0.0.1:1 (Connection refused)"),
    (["--executor", "ray", "--address", "garbage"], {}, "'garbage' is not a Ray address"),
    (["--executor", "slurm"], {"RBG_SUBMITIT_CLUSTER": "foo"},
     "unknown submitit cluster 'foo' (RBG_SUBMITIT_CLUSTER); valid: "),
], ids=["ray nothing listening", "ray garbage address", "submitit unknown cluster"])
def test_an_executor_that_cannot_start_is_one_line(runs, tmp_path, args, env, message):
    pytest.importorskip("ray" if "ray" in args else "submitit")
    before = _digest(runs)
    (tmp_path / "grid.toml").write_text(GRID)
    t0 = time.monotonic()
    proc = _rbg(["run", tmp_path / "grid.toml", "--out", runs, *args], tmp_path, **env)
    out, err = proc.communicate(timeout=120)
    assert time.monotonic() - t0 < 60
    assert proc.returncode == 1 and "Traceback" not in err + out, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert _digest(runs) == before


@pytest.fixture
def silent():
    """A port that accepts connections and never says a word (not a Ray cluster)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server


@pytest.mark.slow
def test_ray_init_that_never_connects_gives_up_in_time(runs, tmp_path, silent):
    pytest.importorskip("ray")
    port = silent.getsockname()[1]
    before = _digest(runs)
    (tmp_path / "grid.toml").write_text(GRID)
    t0 = time.monotonic()
    proc = _rbg(["run", tmp_path / "grid.toml", "--out", runs, "--executor", "ray",
                 "--address", f"127.0.0.1:{port}"], tmp_path, RBG_RAY_INIT_TIMEOUT_S="3")
    out, err = proc.communicate(timeout=120)
    assert time.monotonic() - t0 < 90
    assert proc.returncode == 1 and "Traceback" not in err + out, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: Ray did not connect to 127.0.0.1:{port} within 3 s; check the "
                      "address and that the cluster is up"]
    assert _digest(runs) == before


@pytest.mark.slow
def test_sigterm_while_ray_connects_ends_rbg(tmp_path, silent):
    pytest.importorskip("ray")
    (tmp_path / "grid.toml").write_text(GRID)
    proc = _rbg(["run", tmp_path / "grid.toml", "--out", tmp_path / "out", "--executor",
                 "ray", "--address", f"127.0.0.1:{silent.getsockname()[1]}"], tmp_path)
    try:
        silent.settimeout(90)
        silent.accept()  # rbg's probe of the port: ray.init starts right after it
        time.sleep(3)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    except (TimeoutError, subprocess.TimeoutExpired):
        proc.kill()
        pytest.fail(f"rbg run ignored SIGTERM while Ray was connecting: {proc.communicate()}")
    assert proc.returncode == -signal.SIGTERM
    proc.communicate()
