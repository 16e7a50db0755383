"""Benchmark: rbg's PGD against foolbox 3.3.4's ``LinfPGD`` / ``L2PGD``, same models and inputs.

Claim (issue 14): with the same eps, step size and steps and no random start, rbg's PGD
(``robustbench_graph.perturbations.pgd.pgd``) gives the same per-image success as foolbox 3 on
at least 99.9% of 1,000 images and a robust accuracy within 0.1 point, at least 1.5x
foolbox's images/s, on

(a) a smallcnn trained 4 epochs on mnist5k (SGD, lr 0.05, momentum 0.9, batch 100);
(b) a width-16 PreActResNet-18 trained 2 epochs on mnist5k the same way (lr 0.02);

on the 1,000 mnist5k test images, L-inf eps 0.1 (step 0.02) and L2 eps 1.0 (step 0.25), 20
steps. rbg runs with its default ``early_stop`` (an image stops at its first adversarial
iterate, as foolbox 1.6.1's ``return_early`` that LapNet used) and without it (every image
takes every step: foolbox 3's semantics, the exact comparison). Both libraries get batches of
200 (rbg attack's CPU batch), timed batch by batch, interleaved (alternating which goes
first), in one process, with the same number of intra-op threads.

Runtime on a busy 2-core CPU: about 6 min; ``--quick`` (300 images, PreActResNet 1 epoch)
about 2 min.

Usage: ``.venv/bin/python bench/pgd.py [--quick] [--threads N]``
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import torch
from quick_train import sgd_cross_entropy

from robustbench_graph.data import dataset_info, load_dataset
from robustbench_graph.models import create_model
from robustbench_graph.perturbations.pgd import pgd

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import foolbox as fb

BATCH = 200
STEPS = 20
SETTINGS = {"linf": (0.1, 0.02), "l2": (1.0, 0.25)}


def train(name: str, epochs: int, lr: float, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    width = 16 if name == "preactresnet18" else None
    model = create_model(name, dataset_info("mnist5k"), width=width)
    data = load_dataset("mnist5k", True)
    x, y = data.float(), data.labels
    return sgd_cross_entropy(model, x, y, epochs=epochs, lr=lr)


def timed(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def compare(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str) -> dict:
    eps, step = SETTINGS[norm]
    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0))
    cls = fb.attacks.LinfPGD if norm == "linf" else fb.attacks.L2PGD
    attack = cls(abs_stepsize=step, steps=STEPS, random_start=False)
    seconds = {"foolbox": 0.0, "rbg": 0.0, "rbg-full": 0.0}
    fooled = {k: [] for k in seconds}
    runs: dict[str, Callable] = {
        "foolbox": lambda xb, yb: attack(fmodel, xb, yb, epsilons=eps)[1],
        "rbg": lambda xb, yb: pgd(model, xb, yb, norm=norm, eps=eps, step_size=step,
                                  steps=STEPS),
        "rbg-full": lambda xb, yb: pgd(model, xb, yb, norm=norm, eps=eps, step_size=step,
                                       steps=STEPS, early_stop=False),
    }
    for b, start in enumerate(range(0, len(y), BATCH)):
        xb, yb = x[start:start + BATCH], y[start:start + BATCH]
        order = list(runs) if b % 2 == 0 else list(reversed(runs))
        for name in order:
            adv, s = timed(lambda n=name, a=xb, b=yb: runs[n](a, b))
            seconds[name] += s
            with torch.no_grad():
                fooled[name].append(model(adv).argmax(1) != yb)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    out = {"n": len(y), "clean": float(correct.float().mean())}
    ref = torch.cat(fooled["foolbox"])
    for name in runs:
        f = torch.cat(fooled[name])
        out[name] = {"images/s": len(y) / seconds[name],
                     "robust": float((~f).float().mean()),
                     "agree": float((f == ref).float().mean())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n = 300 if args.quick else 1000
    test = load_dataset("mnist5k", False)
    x, y = test.float(slice(0, n)), test.labels[:n]
    models = {"smallcnn": train("smallcnn", 4, 0.05),
              "preactresnet18 w16": train("preactresnet18", 1 if args.quick else 2, 0.02)}
    print(f"torch {torch.__version__}, foolbox {fb.__version__}, {torch.get_num_threads()} "
          f"threads, {n} mnist5k test images, {STEPS} steps, batches of {BATCH}")
    print(f"{'model':<20} {'norm':<5} {'clean':>6} {'foolbox':>9} {'rbg':>9} {'rbg full':>9} "
          f"{'robust fb':>9} {'robust rbg':>10} {'agree':>7} {'agree full':>10} "
          f"{'ratio':>6} {'full':>5}  target")
    for name, model in models.items():
        for norm in SETTINGS:
            r = compare(model, x, y, norm)
            fbs, ours, full = (r[k]["images/s"] for k in ("foolbox", "rbg", "rbg-full"))
            ratio = ours / fbs
            ok = (ratio >= 1.5 and r["rbg"]["agree"] >= 0.999
                  and abs(r["rbg"]["robust"] - r["foolbox"]["robust"]) <= 0.001 + 1e-9)
            print(f"{name:<20} {norm:<5} {r['clean']:>6.1%} {fbs:>9.1f} {ours:>9.1f} "
                  f"{full:>9.1f} {r['foolbox']['robust']:>9.1%} {r['rbg']['robust']:>10.1%} "
                  f"{r['rbg']['agree']:>7.1%} {r['rbg-full']['agree']:>10.1%} "
                  f"{ratio:>5.2f}x {full / fbs:>4.2f}x  {'met' if ok else 'MISSED'}")
    print("images/s; ratio = rbg / foolbox; agree = share of images with the same success; "
          "target: ratio >= 1.5x, agree >= 99.9%, robust accuracy within 0.1 pt")


if __name__ == "__main__":
    main()
