"""Benchmark: AutoAttack (standard and cheap) against rbg's PGD on one mnist5k smallcnn.

On ``--samples`` test images (default 500, spaced as ``rbg attack --samples``) of a smallcnn
trained with cross-entropy on mnist5k (``rbg train --dataset mnist5k --model smallcnn --epochs
5 --seeds 0``, trained here unless a run folder is given), prints the clean accuracy and, at
each L-inf eps (default 0.3, Madry et al.'s MNIST budget), the robust accuracy and wall time
of

* rbg's ``pgd``: ``--pgd-steps`` (default 40) steps of ``--pgd-step-size`` (default 0.01),
  from a uniform random start, 1 restart: Madry et al.'s MNIST attack;
* the ``autoattack`` family, ``version=cheap`` (APGD-CE, APGD-T with 3 targets) and
  ``version=standard`` (APGD-CE, APGD-T, FAB-T, Square), seed 0.

Expected: clean >= PGD >= AutoAttack cheap >= AutoAttack standard (robust accuracy).
Needs the extra: ``pip install 'robustbench_graph[autoattack]'``.

Usage: ``.venv/bin/python bench/autoattack_vs_pgd.py [RUN_DIR] [--samples N] [--eps 0.1,0.3]
[--versions cheap,standard] [--threads N]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from robustbench_graph import load_run
from robustbench_graph.attack import TestSplits
from robustbench_graph.config import ImageSubset
from robustbench_graph.perturbations import EvalContext, family_class


def train(out: Path) -> Path:
    rbg = Path(sys.executable).with_name("rbg")
    subprocess.run([str(rbg), "train", "--dataset", "mnist5k", "--model", "smallcnn",
                    "--epochs", "5", "--seeds", "0", "--device", "cpu", "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    (run,) = [p.parent for p in out.glob("*/config.json")]
    return run


def measure(name: str, settings: dict[str, str], ctx: EvalContext) -> tuple[float, float]:
    cls = family_class(name)
    family = cls(cls.resolve(settings, "grey"))
    (cell,) = family.cells(ImageSubset())
    t0 = time.perf_counter()
    rows = family.measure(cell, ctx)
    seconds = time.perf_counter() - t0
    (acc,) = [r.value for r in rows if r.metric == "accuracy"]
    return acc, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="run folder (default: train one)")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--eps", default="0.3")
    parser.add_argument("--pgd-steps", type=int, default=40)
    parser.add_argument("--pgd-step-size", type=float, default=0.01)
    parser.add_argument("--versions", default="cheap,standard")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run or train(Path(tmp) / "runs")
        run = load_run(run_dir, device)
        cfg = run.train_config
        data, indices = TestSplits().get_indexed(cfg.dataset, cfg.split_seed,
                                                 ImageSubset(args.samples))
        ctx = EvalContext(run.model, data.to(device), device, run.name, 200,
                          test_indices=indices)
        print(f"run {run.name} ({cfg.dataset}, {cfg.model}, {cfg.loss}, {cfg.epochs} epochs, "
              f"seed {run.seed}); {len(data)} test images; {args.threads} threads; "
              f"torch {torch.__version__}")
        clean, seconds = measure("clean", {}, ctx)
        print(f"{'clean':<34} {clean:7.2%} {seconds:8.1f} s")
        for eps in [float(e) for e in args.eps.split(",")]:
            label = (f"pgd eps={eps:g} {args.pgd_steps}x{args.pgd_step_size:g} rand")
            acc, seconds = measure("pgd", {"eps": str(eps), "steps": str(args.pgd_steps),
                                           "step_size": str(args.pgd_step_size),
                                           "random_start": "true"}, ctx)
            print(f"{label:<34} {acc:7.2%} {seconds:8.1f} s", flush=True)
            for version in args.versions.split(","):
                acc, seconds = measure("autoattack", {"eps": str(eps), "version": version,
                                                      "seed": "0"}, ctx)
                print(f"{f'autoattack {version} eps={eps:g}':<34} {acc:7.2%} "
                      f"{seconds:8.1f} s", flush=True)


if __name__ == "__main__":
    main()
