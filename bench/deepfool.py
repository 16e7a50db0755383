"""Benchmark: rbg's native DeepFool against foolbox 3.3.4's, same model, inputs and settings.

Claim: rbg's native DeepFool (``robustbench_graph.perturbations.deepfool.native``) returns the
same adversarials as foolbox 3's
``L2DeepFoolAttack`` / ``LinfDeepFoolAttack`` (``epsilons=None``; per-image perturbation norms
equal within 1e-4 relative) at least 3x faster in images/s, on

(a) a smallcnn trained on mnist5k (4 epochs of SGD, lr 0.05, momentum 0.9, batch 100; or the
    model of an rbg run folder given with ``--run``), 1,000 test images, L2 and L-inf;
(b) a width-16 PreActResNet-18 for 3x32x32 inputs at its seeded initialisation (untrained),
    on uniform random images labelled with its own clean predictions (so every image is
    attacked), L2 and L-inf.

Both models run contiguous (NCHW), as ``rbg attack`` runs a run trained by default (rbg's
DeepFool takes the model's layout); ``--channels-last`` puts the PreActResNet of (b) in
channels-last for both backends (as ``rbg train --channels-last``).

Both backends run batches of 100 with steps=50, candidates=10, overshoot=0.02, loss="logits";
the two are timed batch by batch, interleaved (alternating which goes first), in one process,
with the same number of intra-op threads (``--threads``, default: torch's default).

Runtime on a busy 2-core CPU: about 2 min with ``--quick`` (300 mnist5k images,
100 PreActResNet images), about 8 min without (1,000 and 300).

Usage: ``.venv/bin/python bench/deepfool.py [--quick] [--run DIR] [--threads N]``
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import torch
from quick_train import sgd_cross_entropy

from robustbench_graph.allocator import tune_malloc
from robustbench_graph.data import dataset_info, load_dataset
from robustbench_graph.models import create_model, set_memory_format
from robustbench_graph.perturbations.deepfool.native import deepfool

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import foolbox as fb

BATCH = 100
SETTINGS = dict(steps=50, candidates=10, overshoot=0.02, loss="logits")


def train_mnist_smallcnn(epochs: int, seed: int = 0) -> torch.nn.Module:
    """smallcnn on mnist5k: plain SGD, lr 0.05, momentum 0.9, batch 100."""
    torch.manual_seed(seed)
    model = create_model("smallcnn", dataset_info("mnist5k"))
    data = load_dataset("mnist5k", True)
    x, y = data.float(), data.labels
    return sgd_cross_entropy(model, x, y, epochs=epochs, batch=BATCH)


def norms(adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    delta = (adv - x).flatten(1)
    return delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)


def compare(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str,
    foolbox_channels_last: bool = False,
) -> dict[str, float]:
    """Run both backends batch by batch, interleaved; images/s and agreement. With
    ``foolbox_channels_last``, foolbox also runs on channels-last copies of the images (the
    layout rbg's DeepFool uses internally), as a second, stricter reference."""
    attack_cls = fb.attacks.L2DeepFoolAttack if norm == "l2" else fb.attacks.LinfDeepFoolAttack
    attack = attack_cls(**SETTINGS)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))

    def run_foolbox(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        raw, _, _ = attack(fmodel, xb, yb, epsilons=None)
        return raw

    def run_native(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        # as `rbg attack` calls it: with the model's input layer as a speed hint
        return deepfool(model, xb, yb, norm=norm, input_layer=getattr(model, "input_layer", None),
                        **SETTINGS)

    def run_foolbox_cl(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return run_foolbox(xb.contiguous(memory_format=torch.channels_last), yb)

    backends: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "foolbox": run_foolbox,
        "rbg": run_native,
    }
    if foolbox_channels_last:
        backends["foolbox-cl"] = run_foolbox_cl
    seconds = dict.fromkeys(backends, 0.0)
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in backends}
    for i, start in enumerate(range(0, len(x), BATCH)):
        xb, yb = x[start : start + BATCH], y[start : start + BATCH]
        order = list(backends) if i % 2 == 0 else list(reversed(backends))
        for name in order:
            t0 = time.perf_counter()
            outputs[name].append(backends[name](xb, yb))
            seconds[name] += time.perf_counter() - t0
    model.zero_grad(set_to_none=True)  # foolbox leaves parameter gradients behind
    ref, adv = (torch.cat(outputs[name]) for name in ("foolbox", "rbg"))
    n_ref, n_adv = norms(ref, x, norm), norms(adv, x, norm)
    rel = (n_adv - n_ref).abs() / n_ref.clamp_min(1e-12)
    rel[(n_ref == 0) & (n_adv == 0)] = 0.0
    with torch.no_grad():
        fooled = {name: float((model(o).argmax(1) != y).float().mean()) for name, o in
                  (("foolbox", ref), ("rbg", adv))}
    extra = {}
    if foolbox_channels_last:
        n_cl = norms(torch.cat(outputs["foolbox-cl"]), x, norm)
        rel_cl = (n_adv - n_cl).abs() / n_cl.clamp_min(1e-12)
        rel_cl[(n_cl == 0) & (n_adv == 0)] = 0.0
        extra = {"fbcl_ips": len(x) / seconds["foolbox-cl"],
                 "ratio_cl": seconds["foolbox-cl"] / seconds["rbg"],
                 "max_rel_cl": float(rel_cl.max()), "n_over_cl": int((rel_cl > 1e-4).sum())}
    return extra | {
        "fb_ips": len(x) / seconds["foolbox"],
        "rbg_ips": len(x) / seconds["rbg"],
        "ratio": seconds["foolbox"] / seconds["rbg"],
        "max_rel": float(rel.max()),
        "n_over": int((rel > 1e-4).sum()),
        "fb_fooled": fooled["foolbox"],
        "rbg_fooled": fooled["rbg"],
        "median_norm": float(n_ref.median()),
    }


def report(name: str, norm: str, n: int, r: dict[str, float]) -> None:
    print(
        f"{name:<28} {norm:<4} n={n:<5} foolbox {r['fb_ips']:8.1f} img/s  "
        f"rbg {r['rbg_ips']:8.1f} img/s  ratio {r['ratio']:5.2f}x  "
        f"max rel diff of norms {r['max_rel']:.1e} ({r['n_over']} > 1e-4)  "
        f"fooled {r['fb_fooled']:.3f}/{r['rbg_fooled']:.3f}  "
        f"median norm {r['median_norm']:.4f}",
        flush=True,
    )
    if "ratio_cl" in r:
        print(f"{'':<28} {norm:<4} foolbox on channels-last images {r['fbcl_ips']:8.1f} img/s"
              f"  ratio {r['ratio_cl']:5.2f}x  max rel diff of norms {r['max_rel_cl']:.1e} "
              f"({r['n_over_cl']} > 1e-4)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images")
    parser.add_argument("--run", help="rbg run folder with a trained model for (a)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--epochs", type=int, default=4, help="mnist5k training epochs")
    parser.add_argument("--channels-last", action="store_true",
                        help="PreActResNet (b) in channels-last, for both backends")
    args = parser.parse_args()
    malloc = "tuned" if tune_malloc() else "default"  # as rbg: only with RBG_MALLOC_TUNING=1
    if args.threads:
        torch.set_num_threads(args.threads)
    n_mnist, n_resnet = (300, 100) if args.quick else (1000, 300)
    print(f"torch {torch.__version__}, foolbox {fb.__version__}, "
          f"{torch.get_num_threads()} threads, batch {BATCH}, {SETTINGS}, malloc {malloc}",
          flush=True)

    t0 = time.perf_counter()
    if args.run:
        from robustbench_graph.rundir.runs import load_run

        loaded = load_run(args.run)
        model, data = loaded.model, load_dataset(loaded.info.name, False)
        what = f"run {loaded.name}"
    else:
        model, data = train_mnist_smallcnn(args.epochs), load_dataset("mnist5k", False)
        what = f"mnist5k smallcnn ({args.epochs} ep)"
    x, y = data.float()[:n_mnist], data.labels[:n_mnist]
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    print(f"(a) {what}: clean accuracy {acc:.3f} on {n_mnist} test images "
          f"(model ready in {time.perf_counter() - t0:.0f} s)", flush=True)
    for norm in ("l2", "linf"):
        report(f"(a) {what}", norm, n_mnist, compare(model, x, y, norm))

    torch.manual_seed(0)
    resnet = create_model("preactresnet18", dataset_info("cifar10"), width=16).eval()
    set_memory_format(resnet, args.channels_last, "cpu")
    xr = torch.rand(n_resnet, 3, 32, 32)
    with torch.no_grad():
        yr = resnet(xr).argmax(1)
    layout = "channels-last" if args.channels_last else "contiguous"
    for norm in ("l2", "linf"):
        report(f"(b) preactresnet18 w16 (init, {layout})", norm, n_resnet,
               compare(resnet, xr, yr, norm, foolbox_channels_last=args.channels_last))


if __name__ == "__main__":
    main()
