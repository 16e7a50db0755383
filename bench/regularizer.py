"""Benchmark: the cost of LapNet's graph regulariser per training step (issue 7).

Claim: a `laplacian` step (m = 2, every ReLU tap, full graph, batch 100) costs at most 2.0x a
cross-entropy step on smallcnn (28x28 grey) and at most 1.25x on PreActResNet18 of width 16
(32x32x3). Each step is forward + loss + backward + SGD update, measured interleaved
(CE, Laplacian, CE, ...) so that machine noise hits both alike; the medians are compared.
Four Laplacian variants: `laplacian`, what a user gets by default (Gram form, exact float32
forward and backward: the same numbers on every machine), and the opt-in ones: `lap auto`
(`form=auto grad_dtype=auto`: at b = 100 the Gram form with its backward in bfloat16 where the
device has native bfloat16 products; the device line says what it resolved to), `lap bf16`
(Gram form, both products in bfloat16, sigma to ~4e-3) and `lap lowrank` (`form=lowrank`: no
b x b graph, exact). Models run contiguous (NCHW), as `rbg train` does by default;
`--channels-last` runs both CE and Laplacian channels-last (`rbg train --channels-last`). The
malloc line says whether glibc's allocator was tuned (only with RBG_MALLOC_TUNING=1, as in
`rbg`). `--batch` changes the batch size (the targets are for 100). Runtime: about two
minutes on a 2-core CPU (`--quick`: a few seconds).

Usage: python bench/regularizer.py [--quick] [--batch B] [--channels-last] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from robustbench_graph.allocator import tune_malloc
from robustbench_graph.data import dataset_info
from robustbench_graph.device import has_fast_bf16_matmul
from robustbench_graph.losses import create_loss
from robustbench_graph.models import create_model, set_memory_format

CASES = [  # (label, model, dataset shape, width, target ratio)
    ("smallcnn 1x28x28", "smallcnn", "mnist5k", None, 2.0),
    ("preactresnet18 w16 3x32x32", "preactresnet18", "cifar10", 16, 1.25),
]


VARIANTS = [  # (label, loss, options)
    ("laplacian", "laplacian", {}),
    ("lap auto", "laplacian", {"form": "auto", "grad_dtype": "auto"}),
    ("lap bf16", "laplacian", {"form": "gram", "gram_dtype": "bfloat16",
                               "grad_dtype": "bfloat16"}),
    ("lap lowrank", "laplacian", {"form": "lowrank"}),
]


def step_timer(model_name, dataset, width, loss_name, device, options=None, batch=100,  # noqa: ANN001, ANN201
               channels_last=False):
    info = dataset_info(dataset)
    torch.manual_seed(0)
    model = create_model(model_name, info, width=width).to(device).train()
    set_memory_format(model, channels_last, device)  # as `rbg train`, CE and Laplacian alike
    loss_fn = create_loss(loss_name, options or {}, info.num_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, *info.input_shape, device=device)
    y = torch.arange(batch, device=device) % info.num_classes

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = loss_fn(model, x, y)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    malloc = "tuned" if tune_malloc() else "default"  # as rbg: only with RBG_MALLOC_TUNING=1
    device = torch.device(args.device)
    repeats = 5 if args.quick else 30
    auto = "bfloat16" if has_fast_bf16_matmul(device) else "float32"
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{repeats} interleaved steps each, batch {args.batch}; grad_dtype=auto resolves to "
          f"{auto} here; layout {'channels_last' if args.channels_last else 'contiguous'}; "
          f"malloc {malloc}")
    print(f"{'model':28s} {'variant':11s} {'ce ms':>8s} {'variant ms':>11s} {'ratio':>7s} "
          f"{'target':>7s}")
    for label, model_name, dataset, width, target in CASES:
        layout = {"batch": args.batch, "channels_last": args.channels_last}
        ce = step_timer(model_name, dataset, width, "ce", device, **layout)
        laps = [step_timer(model_name, dataset, width, loss, device, opts, **layout)
                for _, loss, opts in VARIANTS]
        for _ in range(3):  # warm-up
            ce(), [lap() for lap in laps]
        times_ce: list[float] = []
        times = [[] for _ in laps]
        for _ in range(repeats):
            times_ce.append(ce())
            for lap, out in zip(laps, times, strict=True):
                out.append(lap())
        t_ce = statistics.median(times_ce)
        for (name, _, _), ts in zip(VARIANTS, times, strict=True):
            ratio = statistics.median(ts) / t_ce
            verdict = "met" if ratio <= target else "MISSED"
            print(f"{label:28s} {name:11s} {1e3 * t_ce:8.1f} {1e3 * statistics.median(ts):11.1f}"
                  f" {ratio:6.2f}x {target:6.2f}x  {verdict}")


if __name__ == "__main__":
    main()
