"""Why does LMD-Noise raise input curvature and survive noise worse than Noisy on mnist5k?
(issue 28; findings in docs/fidelity.md#lmd-noise).

Two measurements, both on the CPU, small:

* ``runs DIR``: reads finished run folders (read-only) and measures, per network, on the
  first ``--samples`` test images: the penultimate features' norms, the pairwise distances of
  the class centres, the smallest signed distance of a class mean to a decision boundary, the
  logit gap (top-1 minus top-2), the exact input curvature kappa (the noise paper's
  ``||H||_F^2`` by Hessian-vector products, normalised space) at the network's own logit scale
  and with the logits divided by the temperature that sets the median logit gap on training
  images to 5 (one logit scale for every network), and the accuracy under Gaussian noise
  at the training sigma and above.
* ``train``: trains smallcnn on mnist5k with rbg's recipe (SGD lr 0.05 momentum 0.9, weight
  decay 5e-4, batch 100, lr x0.1 at epoch 4 of 5) and logs each loss term per epoch, the
  feature norms and centre distances, then the same evaluation. ``--option k=v`` sets loss
  options; ``--pre-relu`` drops smallcnn's last ReLU so the features are the output of the
  linear layer, as in the paper's ``fc_layer``.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/investigate_lmd_noise.py runs \
        /tmp/exp/curvature-mnist5k --samples 300
    OMP_NUM_THREADS=1 .venv/bin/python scripts/investigate_lmd_noise.py train \
        --loss lmd-noise --option sigma=0.3 --seed 0
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_graph.config import stable_seed
from robustbench_graph.data import load_dataset
from robustbench_graph.device import generator, seed_everything
from robustbench_graph.losses import create_loss
from robustbench_graph.losses.lmd import signed_distances
from robustbench_graph.losses.noise import noisy_view
from robustbench_graph.models import create_model
from robustbench_graph.perturbations.curvature import hessian_vector_products
from robustbench_graph.rundir.runs import load_run

SIGMAS = (0.3, 0.5, 0.577)  # training sigma; survival noise; i.i.d. noise at -5 dB


def med(values: list[float]) -> float:
    return statistics.median(values)


@torch.no_grad()
def geometry(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Feature norms, centre distances, class-mean margins, logit gaps on (x, y)."""
    f = model.features(x)
    logits = model.head(f)
    classes = torch.unique(y)
    means = torch.stack([f[y == k].mean(0) for k in classes])
    pair = torch.cdist(means, means)
    off = pair[~torch.eye(len(classes), dtype=torch.bool)]
    d = signed_distances(means, classes, model.head.weight, model.head.bias)
    top2 = logits.topk(2, dim=1).values
    noisy = model.features(noisy_view(x, 0.3))
    return {"feat_norm": float(f.norm(dim=1).median()),
            "centre_dist_min": float(off.min()), "centre_dist_med": float(off.median()),
            "mean_margin_min": float(d.min(dim=1).values.min()),
            "within_class_med": float((f - means[torch.searchsorted(classes, y)]).norm(dim=1)
                                      .median()),
            "noisy_shift_med": float((noisy - f).norm(dim=1).median()),
            "noisy_to_mean_med": float((noisy - means[torch.searchsorted(classes, y)])
                                       .norm(dim=1).median()),
            "logit_gap_med": float((top2[:, 0] - top2[:, 1]).median()),
            "w_row_norm": float(model.head.weight.norm(dim=1).mean())}


def temperature(model: nn.Module, x: torch.Tensor, gap: float = 5.0) -> float:
    """The temperature T that sets the median top-1 minus top-2 logit gap on the (training)
    images x to ``gap``: curvature compared at one logit scale for every network."""
    with torch.no_grad():
        top2 = model(x).topk(2, dim=1).values
    return float((top2[:, 0] - top2[:, 1]).median()) / gap


def kappa_exact(model: nn.Module, x: torch.Tensor, y: torch.Tensor, temp: float,
                probes: int = 10) -> float:
    """Median over images of (1/K) sum ||H g||^2, loss CE(logits / temp), normalised space."""
    u = model.normalize(x)

    def loss(v: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model.forward_normalized(v) / temp, y, reduction="none")

    gen = generator(1234)
    total = torch.zeros(len(u), dtype=torch.float64)
    for _ in range(probes):
        g = torch.randn(u.shape, generator=gen)
        total += hessian_vector_products(loss, u, g).flatten(1).double().pow(2).sum(1)
    return float((total / probes).median())


@torch.no_grad()
def noise_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float,
                   draws: int = 5) -> float:
    gen = generator(99)
    hits = 0.0
    for _ in range(draws):
        noisy = (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1)
        hits += float((model(noisy).argmax(1) == y).float().mean())
    return hits / draws


def evaluate(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor,
             x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model.eval()
    t = temperature(model, train_x)
    with torch.no_grad():
        out = {"clean": float((model(x).argmax(1) == y).float().mean())}
    out.update({f"acc_s{s}": noise_accuracy(model, x, y, s) for s in SIGMAS})
    out["T_gap5"] = t
    out["kappa_exact"] = kappa_exact(model, x, y, 1.0)
    out["kappa_gap5"] = kappa_exact(model, x, y, t)
    out.update(geometry(model, train_x, train_y))
    return out


def data(samples: int) -> tuple[torch.Tensor, ...]:
    """Training images and labels; ``samples`` evenly spaced test images (the mnist5k test
    split is sorted by class: its first 500 images are digits 0-4 only); the training set."""
    train = load_dataset("mnist5k", True)
    test = load_dataset("mnist5k", False)
    spaced = torch.linspace(0, len(test) - 1, samples).round().long()
    return train.float(), train.labels, test.float(spaced), test.labels[spaced], train


def cmd_runs(args: argparse.Namespace) -> None:
    train_x, train_y, x, y, _ = data(args.samples)
    rows: dict[str, list[dict[str, float]]] = {}
    for run_dir in sorted(Path(args.dir).glob(args.match)):
        run = load_run(run_dir)
        row = evaluate(run.model, train_x[:1000], train_y[:1000], x, y)
        rows.setdefault(run.method, []).append(row)
        print(run.name, " ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
    report(rows)


def report(rows: dict[str, list[dict[str, float]]]) -> None:
    keys = list(next(iter(rows.values()))[0])
    print("| metric | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{med([r[k] for r in v]):.3g}" for v in rows.values())
              + " |")


def parse_options(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        out[key] = value
    return out


def cmd_train(args: argparse.Namespace) -> None:
    train_x, train_y, x, y, train = data(args.samples)
    seed_everything(args.seed)
    model = create_model("smallcnn", train.info)
    if args.pre_relu:
        model.block3[2] = nn.Identity()
    loss_fn = create_loss(args.loss, parse_options(args.option), train.info.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [4], 0.1)
    n = len(train_y)
    for epoch in range(args.epochs):
        model.train()
        torch.manual_seed(stable_seed("global", args.seed, epoch))
        order = torch.randperm(n, generator=generator(stable_seed("epoch", args.seed, epoch)))
        sums: dict[str, float] = {}
        batches = math.ceil(n / 100)
        for b in range(batches):
            idx = order[b * 100:(b + 1) * 100]
            out = loss_fn(model, train_x[idx], train_y[idx])
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            for k, v in {"total": float(out.loss.detach()), **out.parts}.items():
                sums[k] = sums.get(k, 0.0) + v / batches
        sched.step()
        model.eval()
        geo = geometry(model, train_x[:1000], train_y[:1000])
        print(f"epoch {epoch + 1} " + " ".join(f"{k}={v:.4g}" for k, v in
                                               {**sums, **geo}.items()), flush=True)
    row = evaluate(model, train_x[:1000], train_y[:1000], x, y)
    print("final " + " ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_runs = sub.add_parser("runs")
    p_runs.add_argument("dir")
    p_runs.add_argument("--samples", type=int, default=300)
    p_runs.add_argument("--match", default="mnist5k-*-seed*", help="run folder glob")
    p_train = sub.add_parser("train")
    p_train.add_argument("--loss", default="lmd-noise")
    p_train.add_argument("--option", action="append", default=[])
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--epochs", type=int, default=5)
    p_train.add_argument("--lr", type=float, default=0.05)
    p_train.add_argument("--samples", type=int, default=300)
    p_train.add_argument("--pre-relu", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cmd_runs(args) if args.cmd == "runs" else cmd_train(args)


if __name__ == "__main__":
    main()
