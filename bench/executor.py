"""Benchmark: the local executor of `rbg run` (issue 18).

Claims, on a grid of 8 smallcnn units on mnist5k (2 losses x 2 seeds: 4 training units of
2 epochs and their 4 attack units, a reduced suite), each unit with one torch thread:

* throughput: 2 workers finish the grid at least 1.6x faster than 1 worker;
* overhead: with 1 worker, the wall time of `rbg run` (planning, spawning the worker,
  scheduling, state checks) is at most 1.05x the sum of the units' own times.

Each configuration runs ``--repeats`` times into fresh folders, alternated; medians are
compared. Runtime: a few minutes on a 2-core CPU.

Usage: python bench/executor.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from robustbench_graph.experiment import spec
from robustbench_graph.experiment.executors import LocalExecutor
from robustbench_graph.experiment.runner import run_experiment

GRID = """
name = "bench"
[train]
datasets = ["mnist5k"]
losses = ["ce", "laplacian"]
seeds = "0-1"
epochs = 2
[attack]
suite = ["clean", "gaussian", "fgsm-before-norm", "pgd"]
settings = { gaussian = { draws = 5 }, pgd = { eps = [0.1] } }
"""


def once(workers: int, threads: int) -> tuple[float, float]:
    """(wall seconds, sum of the units' own seconds) of one run of the grid."""
    out = Path(tempfile.mkdtemp(prefix="rbg-bench-executor-"))
    try:
        exp = spec.parse(GRID, "bench.toml", out=out)
        t0 = time.perf_counter()
        summary = run_experiment(exp, LocalExecutor(workers, threads), report=False)
        wall = time.perf_counter() - t0
        assert [o["status"] for o in summary.outcomes] == ["done"] * 8, summary.outcomes
        return wall, sum(o["seconds"] for o in summary.outcomes)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configs = {"1 worker x 1 thread": (1, 1), "2 workers x 1 thread": (2, 1),
               "1 worker x 2 threads": (1, 2)}
    walls: dict[str, list[float]] = {k: [] for k in configs}
    units: dict[str, list[float]] = {k: [] for k in configs}
    for r in range(args.repeats):
        for name, (workers, threads) in configs.items():
            wall, own = once(workers, threads)
            walls[name].append(wall)
            units[name].append(own)
            print(f"repeat {r + 1}: {name}: {wall:.1f} s wall, units' own {own:.1f} s",
                  flush=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    one, two = med["1 worker x 1 thread"], med["2 workers x 1 thread"]
    speedup = one / two
    overhead = statistics.median(w / u for w, u in zip(walls["1 worker x 1 thread"],
                                                         units["1 worker x 1 thread"],
                                                         strict=True))
    print()
    for name, value in med.items():
        print(f"{name:<22} median wall {value:6.1f} s")
    print(f"throughput, 2 workers against 1: {speedup:.2f}x (target >= 1.6x: "
          f"{'met' if speedup >= 1.6 else 'MISSED'})")
    print(f"overhead, 1 worker, wall / units' own time: {overhead:.3f}x (target <= 1.05x: "
          f"{'met' if overhead <= 1.05 else 'MISSED'})")
    print(f"(1 worker with 2 threads: {one / med['1 worker x 2 threads']:.2f}x the 1-thread "
          "worker)")


if __name__ == "__main__":
    main()
