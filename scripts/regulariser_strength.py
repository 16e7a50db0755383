"""How strong is the Laplacian regulariser at rbg's default? (issue 28; docs/fidelity.md#laplacian)

Trains smallcnn on mnist5k with rbg's recipe (the ``TrainConfig`` schedule: SGD lr 0.05,
momentum 0.9, weight decay 5e-4, batch 100) on the training split minus a stratified,
seeded held-out part of it (``--holdout``, 20% by default; the test split is never read),
once per ``--gamma`` (``0`` is plain CE), and prints per epoch the mean CE term, the mean
regulariser term ``gamma^m * Delta`` and their ratio (the regulariser's share), then the
held-out clean accuracy and LapNet's per-layer smoothness sigma (m = 2, the core of
``rbg smoothness``, on held-out batches of 100) with its gap Delta.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/regulariser_strength.py --gamma 0 1 --epochs 3
"""

from __future__ import annotations

import argparse
import math

import torch

from robustbench_graph.config import TrainConfig, stable_seed
from robustbench_graph.data import ImageData, load_dataset
from robustbench_graph.device import generator, seed_everything
from robustbench_graph.diagnostics.smoothness import layer_smoothness
from robustbench_graph.losses import create_loss
from robustbench_graph.models import create_model


def stratified_holdout(labels: torch.Tensor, fraction: float, seed: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(train index, held-out index): ``fraction`` of every class, chosen by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    held = []
    for k in torch.unique(labels):
        rows = torch.nonzero(labels == k).flatten()
        rows = rows[torch.randperm(len(rows), generator=gen)]
        held.append(rows[: int(round(fraction * len(rows)))])
    held_idx = torch.cat(held).sort().values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held_idx] = False
    return torch.nonzero(mask).flatten(), held_idx


def run(gamma: float, train: ImageData, held: ImageData, epochs: int, seed: int) -> dict:
    cfg = TrainConfig(dataset="mnist5k", model="smallcnn", loss="laplacian",
                      epochs=epochs).resolved()
    seed_everything(seed)
    model = create_model("smallcnn", train.info)
    loss_fn = create_loss("laplacian", {"gamma": gamma}, train.info.num_classes)
    weight = gamma ** loss_fn.options.m
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.resolved_milestones()),
                                                 cfg.lr_factor)
    x_all, y_all, n = train.float(), train.labels, len(train)
    batches = math.ceil(n / cfg.batch_size)
    epochs_log = []
    for epoch in range(epochs):
        model.train()
        torch.manual_seed(stable_seed("global", seed, epoch))
        order = torch.randperm(n, generator=generator(stable_seed("epoch", seed, epoch)))
        ce_sum = reg_sum = 0.0
        for b in range(batches):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            out = loss_fn(model, x_all[idx], y_all[idx])
            if not torch.isfinite(out.loss):
                return {"gamma": gamma, "diverged": epoch + 1, "epochs": epochs_log}
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            ce_sum += out.parts["ce"] / batches
            reg_sum += weight * out.parts["delta"] / batches
        sched.step()
        epochs_log.append((epoch + 1, ce_sum, reg_sum, reg_sum / ce_sum))
    model.eval()
    with torch.no_grad():
        acc = float((model(held.float()).argmax(1) == held.labels).float().mean())
    sigmas = [v for _, m, v in sorted(layer_smoothness(model, held, powers=(2,)))
              if m == 2]
    scale = 100.0 ** 3  # sigma / b^(m+1): the loss's normalize=batch scale
    gaps = [abs(b - a) for a, b in zip(sigmas[:-1], sigmas[1:], strict=True)]
    return {"gamma": gamma, "weight": weight, "epochs": epochs_log, "held_acc": acc,
            "sigma_raw": sigmas, "delta_batch": sum(gaps) / len(gaps) / scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gamma", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", type=float, default=0.2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    full = load_dataset("mnist5k", True)
    train_idx, held_idx = stratified_holdout(full.labels, args.holdout, seed=12345)
    train, held = full.subset(train_idx), full.subset(held_idx)
    print(f"train {len(train)} held-out {len(held)} (from the training split)")
    for gamma in args.gamma:
        r = run(gamma, train, held, args.epochs, args.seed)
        for epoch, ce, reg, share in r["epochs"]:
            print(f"gamma {gamma:g} epoch {epoch}: ce {ce:.4f} reg {reg:.4g} share {share:.4g}")
        if "diverged" in r:
            print(f"gamma {gamma:g}: diverged at epoch {r['diverged']}")
            continue
        sig = " ".join(f"{s:.4g}" for s in r["sigma_raw"])
        print(f"gamma {gamma:g} weight {r['weight']:.4g}: held-out accuracy "
              f"{r['held_acc']:.4f}; sigma (raw, m=2) per layer {sig}; "
              f"Delta/b^3 {r['delta_batch']:.4g}", flush=True)


if __name__ == "__main__":
    main()
