"""A study of hundreds of runs (issue #32): no silent surprises, the cost before work
starts, progress and totals that hold at many units."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_report import CE_CLEAN, CE_DEEPFOOL, CE_GAUSS, make_run, rows_for

from robustbench_graph.config import ReportConfig
from robustbench_graph.errors import RbgError
from robustbench_graph.report import build_report
from robustbench_graph.report.collect import collect

from conftest import cli


def _two_methods(root: Path) -> Path:
    for seed in (0, 1):
        rows = rows_for(CE_GAUSS[seed], CE_CLEAN[seed], CE_DEEPFOOL[seed])
        make_run(root, "ce", seed, rows)
        make_run(root, "laplacian", seed, rows)
    return root


# No silent surprises --------------------------------------------------------------------
def test_an_unknown_baseline_is_an_error_listing_the_methods(tmp_path: Path) -> None:
    runs = _two_methods(tmp_path / "runs")
    with pytest.raises(RbgError, match=r"unknown baseline method 'CE' \(did you mean 'ce'\?\)"
                                       r".*: ce, laplacian"):
        build_report(runs, tmp_path / "report", ReportConfig(baseline="CE", plots=False))
    result = cli("report", "--runs", runs, "--out", tmp_path / "r", "--baseline", "nope",
                 "--no-plots")
    assert result.exit_code == 1
    assert "unknown baseline method 'nope'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r" / "index.html").exists()


def test_a_baseline_whose_runs_have_no_results_yet_stays_a_warning(tmp_path: Path) -> None:
    runs = _two_methods(tmp_path / "runs")
    make_run(runs, "sp", 0, [])  # a method still training: a folder, no results yet
    report = build_report(runs, tmp_path / "report", ReportConfig(baseline="sp", plots=False))
    assert any("baseline method 'sp' is not among the methods" in w for w in report.warnings)


def test_settings_for_a_family_outside_the_suite_are_an_error() -> None:
    from robustbench_graph.perturbations import check_suite, suite_names

    with pytest.raises(RbgError, match=r"settings given for pgd, which the suite \(clean\) "
                                       "does not run"):
        check_suite(suite_names("clean"), {"pgd": {"eps": "0.1"}})
    check_suite(suite_names("clean,pgd"), {"pgd": {"eps": "0.1"}})  # in the suite: fine
    with pytest.raises(RbgError, match="unknown perturbation 'pgdd'"):
        check_suite(suite_names("clean"), {"pgdd": {"eps": "0.1"}})


def test_rbg_attack_refuses_settings_for_a_family_outside_the_suite(tmp_path: Path) -> None:
    result = cli("attack", "--runs", tmp_path, "--suite", "clean", "-p", "pgd.eps=0.1")
    assert result.exit_code == 1
    assert "settings given for pgd, which the suite (clean) does not run" in result.output


def test_runs_follow_symlinked_run_folders_and_survive_loops(tmp_path: Path) -> None:
    runs = _two_methods(tmp_path / "all")
    subset = tmp_path / "subset"
    subset.mkdir()
    for name in ("mnist5k-smallcnn-ce-seed0", "mnist5k-smallcnn-laplacian-seed0"):
        os.symlink(runs / name, subset / name, target_is_directory=True)
    os.symlink(subset, subset / "loop", target_is_directory=True)  # a loop: read once
    os.symlink(runs / "mnist5k-smallcnn-ce-seed0", subset / "again")  # a second way in
    collected = collect(subset)
    assert sorted(r.run for r in collected.runs) == ["mnist5k-smallcnn-ce-seed0",
                                                     "mnist5k-smallcnn-laplacian-seed0"]
    assert set(collected.results["method"]) == {"ce", "laplacian"}


# Progress and totals ---------------------------------------------------------------------
def test_plain_progress_never_truncates_and_gives_the_time_left() -> None:
    import io

    from rich.console import Console

    from robustbench_graph.cli.progress import StudyProgress

    out = io.StringIO()
    console = Console(file=out, width=40, force_terminal=False)
    name = "digits-smallcnn-laplacian_gamma0.001+parseval-" + "x" * 60 + "-seed199"
    with StudyProgress(console, 4, "runs") as progress:
        assert progress.plain and progress.eta() is None  # nothing finished: no guess
        progress.finish("a-seed0", "skipped")  # already done: not in the rate
        assert progress.per_unit() is None
        progress.start(name)
        progress.finish(name, "done", 2.0)
        assert progress.per_unit() is not None and progress.eta() is not None
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/4] a-seed0: skipped"
    assert lines[1].startswith(f"[2/4] {name}: done in 2.0 s; ") and lines[1].endswith(" left")
    assert progress.totals() == "done 1 · skipped 1 · pending 2"


def test_the_live_window_stays_bounded_with_many_units_in_flight() -> None:
    import io

    from rich.console import Console

    from robustbench_graph.cli.progress import StudyProgress

    console = Console(file=io.StringIO(), width=100, height=40, force_terminal=True,
                      color_system=None)
    progress = StudyProgress(console, 400, "units", plain=False, window=6)
    for i in range(50):
        progress.start(f"attack:digits-smallcnn-ce-seed{i}")
    for i in range(10):
        progress.finish(f"attack:digits-smallcnn-ce-seed{i}", "done", 1.0)
    with console.capture() as capture:
        console.print(progress)
    lines = capture.get().splitlines()
    assert len(lines) == 1 + 6 + 1 + 1  # bar, 6 in flight, "... and 34 more", totals
    assert "10/400 units" in lines[0] and " left" in lines[0]
    assert "and 34 more in flight" in lines[-2]
    assert lines[-1] == "done 10 · running 40 · pending 350"


GRID = """
name = "grid"
[train]
datasets = ["digits"]
losses = ["ce", "laplacian"]
seeds = "0-19"
epochs = 1
[attack]
suite = "clean"
"""


def test_dry_run_and_status_give_totals_and_group_many_units(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text(GRID)
    result = cli("run", tmp_path / "grid.toml", "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "80 units" in text and "per configuration" in text
    assert "digits-smallcnn-ce (train)" in text and "train:digits-smallcnn-ce-seed0" not in text
    assert "total (80 units)" in text
    status = cli("status", tmp_path / "grid.toml", "--out", tmp_path / "out")
    assert status.exit_code == 0 and "total (80 units)" in status.output
    total = next(ln for ln in status.output.splitlines() if "total (80 units)" in ln)
    assert [c.strip() for c in total.split("│")[2:6]] == ["0", "0", "0", "80"]  # pending


def test_a_few_units_are_listed_one_line_each_unabridged(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text(GRID.replace('"0-19"', '"0"').replace(
        '"laplacian"', '{name = "laplacian", options = {gamma = 0.000123456}}'))
    result = cli("run", tmp_path / "grid.toml", "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "attack:digits-smallcnn-laplacian_gamma0.000123456-seed0  pending  waits for its " \
           "training" in result.output
    assert "total: 4 pending" in result.output and "…" not in result.output


def test_a_unit_whose_worker_died_is_failed_in_rbg_status(tmp_path: Path) -> None:
    from robustbench_graph.experiment import spec, units
    from robustbench_graph.experiment.runner import describe

    (tmp_path / "grid.toml").write_text(GRID.replace('"0-19"', '"0"'))
    exp = spec.load(str(tmp_path / "grid.toml"), out=tmp_path / "out")
    plan = units.plan(exp)
    train = plan[0]
    units.mark_unit_failed(train, "its worker died (exit code -9); run again to resume it")
    rows = {r["id"]: r for r in describe(plan)}
    assert rows[train.id]["state"] == "failed" and "worker died" in rows[train.id]["message"]
    assert units.state(train) == ("failed", rows[train.id]["message"])
    result = cli("status", tmp_path / "grid.toml", "--out", tmp_path / "out")
    assert f"failed: {train.id}: its worker died" in result.output
    units.clear_unit_failed(train)  # a new attempt starts
    assert units.state(train)[0] == "pending"


# The terminal of rbg attack ----------------------------------------------------------------
def test_cost_lines_name_the_slow_families() -> None:
    from robustbench_graph.cli.cmd_attack import cost_lines

    lines = cost_lines({"clean": 0.5, "lipschitz": 1200.0}, "digits-seed0", 399)
    assert lines[0].startswith("cost measured on digits-seed0: lipschitz 1200.0 s, clean 0.5 s "
                               "(total 1200.5 s); the 399 run(s) left: about 5d 13:03:20")
    assert lines[1].startswith("slow: lipschitz 0:20:00 per run (5d 13:00:00 for the rest)")
    assert len(cost_lines({"clean": 0.5}, "r", 3)) == 1  # nothing slow: one line


@pytest.mark.slow  # trains the digits run (session fixture), attacks two copies
def test_attack_prints_one_summary_its_cost_and_deepfool_units_only_when_it_ran(
        tmp_path: Path, digits_run: Path) -> None:
    import shutil

    runs = tmp_path / "runs"
    for seed in (0, 1):
        shutil.copytree(digits_run, runs / f"{digits_run.name[:-1]}{seed}")
    result = cli("attack", "--runs", runs, "--suite", "clean,gaussian", "-p",
                 "gaussian.draws=1", "--samples", "50", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = result.output.splitlines()
    assert sum(ln.startswith("results: ") for ln in out) == 1
    assert "results: results.csv in each of the 2 run folder(s) in" in result.output
    assert "DeepFool" not in result.output and "accuracy in %;" in result.output
    (cost,) = [ln for ln in out if ln.startswith("cost measured on ")]
    assert "gaussian" in cost and "the 1 run(s) left: about" in cost
    assert [ln.split(":")[0] for ln in out if ln.startswith("[")] == ["[1/2] " + ln for ln in (
        f"{digits_run.name[:-1]}0",)] + [f"[2/2] {digits_run.name[:-1]}1"]


@pytest.mark.slow  # trains and attacks two tiny digits runs in a worker process
def test_rbg_run_ends_with_the_answer_then_the_report(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text(GRID.replace('"0-19"', '"0"'))
    result = cli("run", tmp_path / "grid.toml", "--out", tmp_path / "out", "--workers", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == f"report: {tmp_path / 'out' / 'report' / 'index.html'}"
    head = next(i for i, ln in enumerate(lines) if ln.strip() == "headline")
    run = next(i for i, ln in enumerate(lines) if "unit(s) run" in ln)
    assert run < head < len(lines) - 1  # the totals, the answer, then the path
    finished = [ln for ln in lines if ln.startswith("[")]
    assert [ln.split("]")[0] for ln in finished] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert finished[0].endswith(" left") and "started" not in result.output
