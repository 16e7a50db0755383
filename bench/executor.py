"""Benchmark: the local executor of `rbg run` (issue 18).

Claims, on a grid of 8 smallcnn units on mnist5k (2 losses x 2 seeds: 4 training units of
2 epochs and their 4 attack units, a reduced suite), each unit with one torch thread:

* throughput: 2 workers finish the grid at least 1.6x faster than 1 worker;
* the same results.csv bytes from every configuration (and from Ray with ``--ray``);
* overhead: with 1 worker, the wall time of `rbg run` (planning, spawning the worker,
  scheduling, state checks) is at most 1.05x the sum of the units' own times.

Each configuration runs ``--repeats`` times into fresh folders, alternated; medians are
compared. Runtime: a few minutes on a 2-core CPU.

Usage: python bench/executor.py [--repeats 3] [--ray]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from robustbench_graph.experiment import spec
from robustbench_graph.experiment.executors import LocalExecutor
from robustbench_graph.experiment.runner import run_experiment
from robustbench_graph.experiment.spec import Resources

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


RESULTS: dict[str, dict[str, bytes]] = {}  # per configuration, the results.csv bytes per run


def once(name: str, executor: Any) -> tuple[float, float]:
    """(wall seconds, sum of the units' own seconds) of one run of the grid."""
    out = Path(tempfile.mkdtemp(prefix="rbg-bench-executor-"))
    try:
        exp = spec.parse(GRID, "bench.toml", out=out)
        t0 = time.perf_counter()
        summary = run_experiment(exp, executor, report=False)
        wall = time.perf_counter() - t0
        assert [o["status"] for o in summary.outcomes] == ["done"] * 8, summary.outcomes
        RESULTS[name] = {p.parent.name: p.read_bytes() for p in out.glob("*/results.csv")}
        return wall, sum(o["seconds"] for o in summary.outcomes)
    finally:
        shutil.rmtree(out, ignore_errors=True)


@contextlib.contextmanager
def ray_cluster() -> Iterator[str]:
    """A real two-node Ray cluster on this machine (one CPU per node)."""
    ray_bin = str(Path(sys.executable).parent / "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus", "1", "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    subprocess.run([ray_bin, "start", "--head", "--port", str(port), "--include-dashboard",
                    "false", *common], check=True, capture_output=True, env=env)
    try:
        subprocess.run([ray_bin, "start", "--address", f"127.0.0.1:{port}", *common],
                       check=True, capture_output=True, env=env)
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        ray.shutdown()
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ray", action="store_true",
                        help="also run the grid on a two-node Ray cluster started here")
    args = parser.parse_args()
    configs: dict[str, Callable[[], Any]] = {
        "1 worker x 1 thread": lambda: LocalExecutor(1, 1),
        "2 workers x 1 thread": lambda: LocalExecutor(2, 1),
        "1 worker x 2 threads": lambda: LocalExecutor(1, 2)}
    walls: dict[str, list[float]] = {k: [] for k in configs}
    units: dict[str, list[float]] = {k: [] for k in configs}
    with contextlib.ExitStack() as stack:
        if args.ray:
            from robustbench_graph.experiment.executors import RayExecutor

            address = stack.enter_context(ray_cluster())
            configs["ray, 2 nodes x 1 cpu"] = lambda: RayExecutor(address, Resources())
            walls["ray, 2 nodes x 1 cpu"], units["ray, 2 nodes x 1 cpu"] = [], []
        for r in range(args.repeats):
            for name, make in configs.items():
                wall, own = once(name, make())
                walls[name].append(wall)
                units[name].append(own)
                print(f"repeat {r + 1}: {name}: {wall:.1f} s wall, units' own {own:.1f} s",
                      flush=True)
    reference = RESULTS["1 worker x 1 thread"]
    for name, got in RESULTS.items():
        same = "identical" if got == reference else "different"
        why = " (2 threads per unit: other float rounding)" if "2 threads" in name else ""
        print(f"results.csv of {name}: {same} to 1 worker x 1 thread's ({len(got)} runs)"
              f"{why}")
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
