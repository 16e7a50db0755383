"""Benchmark: a 32x32 colour model through all 15 library corruptions x 5 severities.

A width-16 PreActResNet-18 is trained briefly (``--epochs``, SGD lr 0.05, momentum 0.9,
batch 50) on a tiny synthetic colour set (``--images`` 32x32 images of 10 classes: a smooth
random field per image, tinted by its class's colour, with a class-dependent stripe), then
measured on a test set of the same size through the ``corruptions`` family's public path
(``EvalContext`` and ``Perturbation.measure``, as ``rbg attack`` calls it) at every
(corruption, severity) cell. Prints the wall time in total and per corruption, and the
accuracy of every cell.

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python bench/corruptions.py [--images 100]
[--epochs 10] [--threads 1]``
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F
from quick_train import sgd_cross_entropy

from robustbench_graph.config import ImageSubset
from robustbench_graph.data import DatasetInfo, ImageData
from robustbench_graph.models import create_model
from robustbench_graph.perturbations import EvalContext, family_class

INFO = DatasetInfo("synthetic-colour-32", 10, (3, 32, 32), (0.5, 0.5, 0.5),
                   (0.25, 0.25, 0.25), False, False)


def synthetic(n: int, seed: int) -> ImageData:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    field = F.interpolate(torch.rand(n, 1, 4, 4, generator=gen), size=32, mode="bilinear",
                          align_corners=False)
    tint = torch.rand(10, 3, 1, 1, generator=torch.Generator().manual_seed(99))[labels]
    images = 0.3 * field + 0.6 * tint * (0.5 + field)
    for k in range(n):  # a horizontal stripe at a row given by the class
        row = 3 * int(labels[k]) + 1
        images[k, :, row:row + 2, :] = 1.0
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageData(images, labels, 255.0, INFO)


def train(data: ImageData, epochs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("preactresnet18", INFO, width=16)
    return sgd_cross_entropy(model, data.float(), data.labels, epochs=epochs, batch=50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = train(synthetic(args.images, seed=0), args.epochs)
    trained = time.perf_counter() - t0
    test = synthetic(args.images, seed=1)
    ctx = EvalContext(model, test, torch.device("cpu"), "bench-corruptions", batch_size=200)
    clean = float((model(ctx.images).argmax(1) == ctx.labels).float().mean())
    cls = family_class("corruptions")
    family = cls(cls.resolve({}, "colour"))
    cells = family.cells(ImageSubset())
    print(f"PreActResNet-18 w16, {args.images} synthetic 32x32 colour images, trained "
          f"{args.epochs} epochs in {trained:.1f} s; {args.threads} thread(s); torch "
          f"{torch.__version__}; {platform.processor() or platform.machine()}")
    print(f"clean accuracy {100 * clean:.1f}%; {len(cells)} cells")
    seconds: dict[str, float] = {}
    accuracy: dict[str, list[float]] = {}
    start = time.perf_counter()
    for cell in cells:
        t = time.perf_counter()
        rows = family.measure(cell, ctx)
        seconds[cell.param] = seconds.get(cell.param, 0.0) + time.perf_counter() - t
        accuracy.setdefault(cell.param, []).append(
            next(r.value for r in rows if r.metric == "accuracy"))
    total = time.perf_counter() - start
    print(f"\n{'corruption':18s} {'s1':>6s} {'s2':>6s} {'s3':>6s} {'s4':>6s} {'s5':>6s}"
          f" {'mean err':>8s} {'seconds':>8s} {'ms/img':>7s}")
    for name, values in accuracy.items():
        err = 100 * (1 - sum(values) / len(values))
        print(f"{name:18s} " + " ".join(f"{100 * v:6.1f}" for v in values)
              + f" {err:8.1f} {seconds[name]:8.2f} "
              f"{1000 * seconds[name] / (5 * args.images):7.2f}")
    mean = 100 * sum(1 - sum(v) / len(v) for v in accuracy.values()) / len(accuracy)
    print(f"\nmean error over corruptions {mean:.1f}% (clean error {100 * (1 - clean):.1f}%)")
    print(f"wall time, all {len(cells)} cells: {total:.1f} s "
          f"({1000 * total / args.images:.1f} ms per test image)")


if __name__ == "__main__":
    main()
