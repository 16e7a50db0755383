"""Benchmark: the finite-difference curvature against the exact Hessian-vector-product value.

Trains ``smallcnn`` (ReLU, max pooling) and ``smallcnn-smooth`` (GELU, average pooling) with
CE on mnist5k (``--epochs``, the default recipe, seed 0), then on the first ``--images`` test
images with 20 Gaussian probes per image prints, side by side per model and step h, the
median κ by finite differences and by exact HVPs, the median per-image relative gap and the
ratio of medians (docs/perturbations.md#curvature). Also times the exact HVP by double
backward (what ``curvature`` uses) against ``torch.func.jvp`` of ``torch.func.grad`` on the
same batch, with their largest relative difference.

Usage: ``OMP_NUM_THREADS=2 .venv/bin/python bench/curvature.py [--images 200] [--epochs 5]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from robustbench_graph.config import TrainConfig
from robustbench_graph.data import load_dataset
from robustbench_graph.perturbations.curvature import (
    hessian_vector_products,
    kappa_exact,
    kappa_finite_difference,
)
from robustbench_graph.rundir.runs import load_run
from robustbench_graph.train import plan_runs, train_run

STEPS = (1e-1, 1e-2, 1e-3, 1e-4)


def trained(model: str, epochs: int, out: Path) -> torch.nn.Module:
    (spec,) = plan_runs(TrainConfig(dataset="mnist5k", model=model, epochs=epochs), [0], out)
    train_run(spec, device=torch.device("cpu"))
    return load_run(spec.run_dir, torch.device("cpu")).model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    data = load_dataset("mnist5k", False)
    x, y = data.float()[:args.images], data.labels[:args.images]
    print(f"mnist5k, CE {args.epochs} epochs, seed 0; the first {len(x)} test images, "
          f"20 probes; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"{'model':16s} {'h':>7s} {'kappa_fd':>10s} {'kappa_exact':>11s} "
          f"{'median gap':>10s} {'fd/exact':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("smallcnn", "smallcnn-smooth"):
            model = trained(name, args.epochs, Path(tmp))
            u = model.normalize(x)

            def loss(v: torch.Tensor, model: torch.nn.Module = model) -> torch.Tensor:
                return F.cross_entropy(model.forward_normalized(v), y, reduction="none")

            probes = torch.randn((20, *u.shape), generator=torch.Generator().manual_seed(0))
            exact = kappa_exact(loss, u, probes)
            for h in STEPS:
                fd = kappa_finite_difference(loss, u, probes, h)
                gap = ((fd - exact).abs() / exact).median()
                print(f"{name:16s} {h:7.0e} {float(fd.median()):10.3g} "
                      f"{float(exact.median()):11.3g} {float(gap):10.4f} "
                      f"{float(fd.median() / exact.median()):9.4g}")
            few, v = u[:20], probes[0, :20]

            def few_loss(w: torch.Tensor, model: torch.nn.Module = model) -> torch.Tensor:
                return F.cross_entropy(model.forward_normalized(w), y[:20], reduction="none")

            t0 = time.perf_counter()
            ours = hessian_vector_products(few_loss, few, v)
            t1 = time.perf_counter()
            _, func = torch.func.jvp(torch.func.grad(lambda w: few_loss(w).sum()), (few,), (v,))
            t2 = time.perf_counter()
            ours, func = ours.detach(), func.detach()
            diff = float((ours - func).norm() / func.norm().clamp_min(1e-30))
            print(f"{name:16s} HVP of 20 images: double backward {1e3 * (t1 - t0):.0f} ms, "
                  f"torch.func {1e3 * (t2 - t1):.0f} ms (x{(t2 - t1) / (t1 - t0):.1f}); "
                  f"relative difference {diff:.1e}")


if __name__ == "__main__":
    main()
