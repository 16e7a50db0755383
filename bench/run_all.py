"""`make bench`: every speed target of issue 34 in one table of interleaved, median ratios.

Runs, at a small size, the three benchmarks that have a speed target, each against its
reference on the same model, inputs and thread count, and prints one table:

* DeepFool (``bench/deepfool.py``'s cases): rbg's native DeepFool against foolbox 3.3.4's
  ``L2DeepFoolAttack`` / ``LinfDeepFoolAttack`` on (a) a smallcnn trained on mnist5k and
  (b) a width-16 PreActResNet-18 at its seeded initialisation; target >= 5x foolbox, with the
  per-image perturbation norms equal within 1e-4 relative;
* PGD (``bench/pgd.py``'s settings, 20 steps, no random start): rbg's PGD in both modes
  (``early_stop`` true, the default, and false, foolbox 3's semantics) against foolbox's
  ``LinfPGD`` / ``L2PGD`` on the smallcnn; target >= 2x foolbox, with the same per-image
  success on >= 99.9% of images;
* the regulariser (``bench/regularizer.py``): a default ``laplacian`` training step against a
  CE step; target <= 1.25x on PreActResNet18 w16 (exact float32), <= 2x on smallcnn;
* randomized smoothing (``bench/smoothing.py --quick``, issue 30): rbg's CERTIFY against ART
  1.20.1's ``PyTorchRandomizedSmoothing.certify`` at the same n0, n, alpha, sigma and batch on
  a smallcnn and a linear classifier trained on mnist5k; target >= 10x ART's images/s, and
  rbg's peak memory flat in n (its growth during certify at the largest n at most 16 MiB
  above that at the smallest, every n >= the batch of 1,000 so that each forward pass is
  full: rbg's memory is bounded by the batch; ART's grows with n);
  left out with a note when ART is not installed.

How a ratio is measured: the two sides run in one process, on the same batch, alternately
(A, B, B, A, ...: the order flips every repeat), ``--repeats`` times; the ratio is the ratio
of the two medians. The load average (1 min) is printed before and after: on a shared
machine, a ratio is worth what its load says (docs/performance.md#reading-a-ratio).

Beside the table: the CPU model and its vector flags (avx2, avx512f, avx512_bf16, amx), torch's
thread count and the load. The same block is appended, dated, to ``bench/RESULTS.md``
(``--no-append`` to only print). Runtime with ``--quick``: a few minutes on a loaded 2-core CPU.

Usage: ``.venv/bin/python bench/run_all.py [--quick] [--threads N] [--repeats R] [--no-append]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deepfool as df_bench  # noqa: E402  (bench/deepfool.py)
import pgd as pgd_bench  # noqa: E402  (bench/pgd.py)
import regularizer as reg_bench  # noqa: E402  (bench/regularizer.py)
import smoothing as smooth_bench  # noqa: E402  (bench/smoothing.py)

from robustbench_graph.data import dataset_info, load_dataset  # noqa: E402
from robustbench_graph.models import create_model  # noqa: E402
from robustbench_graph.perturbations.deepfool.native import deepfool  # noqa: E402
from robustbench_graph.perturbations.pgd import pgd  # noqa: E402

fb = df_bench.fb
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
Row = tuple[str, str, float, str, bool, str]  # bench, case, ratio, target, met, detail


def cpu_line() -> str:
    """CPU model, its vector flags of interest, torch's threads."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    have = " ".join(f for f in FLAGS if f in flags) or "none of " + "/".join(FLAGS)
    return (f"{model}; flags: {have}; torch {torch.__version__}, {torch.get_num_threads()} "
            f"threads; {os.cpu_count()} CPUs")


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def interleaved(a: Callable[[], object], b: Callable[[], object], repeats: int
                ) -> tuple[float, float, object, object]:
    """Median seconds of ``a`` and ``b`` run alternately (the order flips every repeat),
    and the outputs of their first runs."""
    ta, tb, first = [], [], {}
    for r in range(repeats):
        for name, fn, out in (("a", a, ta), ("b", b, tb))[:: 1 if r % 2 == 0 else -1]:
            t0 = time.perf_counter()
            result = fn()
            out.append(time.perf_counter() - t0)
            first.setdefault(name, result)
    return statistics.median(ta), statistics.median(tb), first["a"], first["b"]


def deepfool_rows(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, label: str,
                  repeats: int) -> list[Row]:
    rows = []
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    for norm in ("l2", "linf"):
        cls = fb.attacks.L2DeepFoolAttack if norm == "l2" else fb.attacks.LinfDeepFoolAttack
        attack = cls(**df_bench.SETTINGS)
        t_fb, t_rbg, ref, adv = interleaved(
            lambda a=attack: a(fmodel, x, y, epsilons=None)[0],
            lambda n=norm: deepfool(model, x, y, norm=n,
                                    input_layer=getattr(model, "input_layer", None),
                                    **df_bench.SETTINGS), repeats)
        model.zero_grad(set_to_none=True)
        n_ref, n_adv = df_bench.norms(ref, x, norm), df_bench.norms(adv, x, norm)
        rel = ((n_adv - n_ref).abs() / n_ref.clamp_min(1e-12)).masked_fill(
            (n_ref == 0) & (n_adv == 0), 0.0)
        ratio = t_fb / t_rbg
        rows.append(("deepfool", f"{label} {norm}", ratio, ">= 5x foolbox", ratio >= 5.0,
                     f"n={len(x)}, norms max rel diff {float(rel.max()):.1e} "
                     f"({int((rel > 1e-4).sum())} > 1e-4)"))
    return rows


def pgd_rows(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, label: str,
             repeats: int) -> list[Row]:
    rows = []
    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0))
    for norm, (eps, step) in pgd_bench.SETTINGS.items():
        cls = fb.attacks.LinfPGD if norm == "linf" else fb.attacks.L2PGD
        attack = cls(abs_stepsize=step, steps=pgd_bench.STEPS, random_start=False)
        for early in (True, False):
            t_fb, t_rbg, ref, adv = interleaved(
                lambda a=attack, e=eps: a(fmodel, x, y, epsilons=e)[1],
                lambda n=norm, e=eps, s=step, es=early: pgd(
                    model, x, y, norm=n, eps=e, step_size=s, steps=pgd_bench.STEPS,
                    early_stop=es), repeats)
            with torch.no_grad():
                agree = float(((model(ref).argmax(1) != y) == (model(adv).argmax(1) != y))
                              .float().mean())
            ratio = t_fb / t_rbg
            rows.append(("pgd", f"{label} {norm} early_stop={str(early).lower()}", ratio,
                         ">= 2x foolbox", ratio >= 2.0 and agree >= 0.999,
                         f"n={len(x)}, same success {agree:.1%}"))
    return rows


def regularizer_rows(repeats: int, threads: int) -> list[Row]:
    rows = []
    device = torch.device("cpu")
    for label, model_name, dataset, width, target in reg_bench.CASES:
        ce = reg_bench.step_timer(model_name, dataset, width, "ce", device)
        lap = reg_bench.step_timer(model_name, dataset, width, "laplacian", device)
        for _ in range(2):  # warm-up
            ce(), lap()
        t_ce, t_lap, _, _ = interleaved(ce, lap, repeats)
        ratio = t_lap / t_ce
        rows.append(("regulariser", f"{label} laplacian (exact float32)", ratio,
                     f"<= {target:.2f}x CE step", ratio <= target,
                     f"CE {1e3 * t_ce:.0f} ms, laplacian {1e3 * t_lap:.0f} ms, batch 100"))
    return rows


def smoothing_rows(threads: int) -> list[Row]:
    """bench/smoothing.py --quick: one speed row per (case, n), one memory row per case."""
    import importlib.util

    if importlib.util.find_spec("art") is None:
        print("smoothing: left out (pip install adversarial-robustness-toolbox==1.20.1 "
              "--no-deps six statsmodels)", flush=True)
        return []
    speed, agreed, worst = smooth_bench.run(True, threads)
    rows: list[Row] = []
    for r in speed:
        rows.append(("smoothing", f"{r['case']} mnist5k n={r['n']} certify", r["ratio"],
                     ">= 10x ART", r["ratio"] >= 10.0,
                     f"{r['images']} img, ART {r['art_ips']:.2f} rbg {r['rbg_ips']:.2f} img/s; "
                     f"peak RSS growth ART {r['art_mib']:.0f} rbg {r['rbg_mib']:.0f} MiB"))
    for case in dict.fromkeys(r["case"] for r in speed):
        lo, hi = (next(r for r in seq if r["case"] == case) for seq in (speed, speed[::-1]))
        growth = hi["rbg_mib"] / max(lo["rbg_mib"], 1.0)
        agree = next((a for a in agreed if a["case"] == case), None)
        note = "" if agree is None else (
            f"; certified acc r=0 ART {agree['art'][0]:.3f} rbg {agree['rbg'][0]:.3f} "
            f"(sd {agree['sd']:.3f}, {agree['images']} img)")
        rows.append(("smoothing", f"{case} rbg peak memory n={lo['n']} -> {hi['n']}", growth,
                     "flat: +<= 16 MiB", hi["rbg_mib"] - lo["rbg_mib"] <= 16.0,
                     f"rbg {lo['rbg_mib']:.0f} -> {hi['rbg_mib']:.0f} MiB, ART "
                     f"{lo['art_mib']:.0f} -> {hi['art_mib']:.0f} MiB; CP bound max diff "
                     f"{worst:.0e}{note}"))
    return rows


def table(rows: list[Row]) -> list[str]:
    lines = [f"{'bench':<12} {'case':<52} {'ratio':>7}  {'target':<18} {'':<6} detail"]
    for bench, case, ratio, target, met, detail in rows:
        lines.append(f"{bench:<12} {case:<52} {ratio:6.2f}x  {target:<18} "
                     f"{'met' if met else 'MISSED':<6} {detail}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small size (make bench)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for both sides (default 1)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved repeats per ratio (default 3 quick, 5 full)")
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--note", default="", help="a line saying what this run measures")
    parser.add_argument("--only", default="deepfool,pgd,regulariser,smoothing",
                        help="comma-separated subset of deepfool, pgd, regulariser, smoothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 5)
    n_mnist, n_resnet, n_pgd = (50, 20, 200) if args.quick else (100, 50, 400)
    start, load0 = datetime.datetime.now(datetime.UTC), load()
    head = [f"make bench{' --quick' if args.quick else ''}, "
            f"{start:%Y-%m-%d %H:%M} UTC; {repeats} interleaved repeats per ratio, medians",
            cpu_line(), f"foolbox {fb.__version__}; load average at start {load0}"]
    head += [args.note] if args.note else []
    print("\n".join(head), flush=True)
    only = set(args.only.split(","))
    rows: list[Row] = []
    smallcnn = test = None
    if only & {"deepfool", "pgd"}:
        smallcnn = df_bench.train_mnist_smallcnn(4 if not args.quick else 2)
        test = load_dataset("mnist5k", False)
    if "deepfool" in only:
        x, y = test.float()[:n_mnist], test.labels[:n_mnist]
        rows += deepfool_rows(smallcnn, x, y, "(a) smallcnn mnist5k", repeats)
        torch.manual_seed(0)
        resnet = create_model("preactresnet18", dataset_info("cifar10"), width=16).eval()
        xr = torch.rand(n_resnet, 3, 32, 32)
        with torch.no_grad():
            yr = resnet(xr).argmax(1)
        rows += deepfool_rows(resnet, xr, yr, "(b) preactresnet18 w16 init", repeats)
        print("\n".join(table(rows)[1:]), flush=True)
    if "pgd" in only:
        rows += pgd_rows(smallcnn, test.float()[:n_pgd], test.labels[:n_pgd],
                         "smallcnn mnist5k", repeats)
    if "regulariser" in only:
        rows += regularizer_rows(repeats * 3, args.threads)
    if "smoothing" in only:
        rows += smoothing_rows(args.threads)
    lines = head + table(rows) + [
        f"load average at end {load()}; {len(rows)} ratios, "
        f"{sum(r[4] for r in rows)} met, {sum(not r[4] for r in rows)} missed; "
        f"{(datetime.datetime.now(datetime.UTC) - start).total_seconds():.0f} s"]
    print("\n".join(lines[len(head):]), flush=True)
    if not args.no_append:
        block = ["", f"### make bench, {start:%Y-%m-%d %H:%M} UTC", "", "```", *lines, "```"]
        text = RESULTS.read_text()
        if "\n## make bench\n" not in text:
            block = ["", "## make bench", "",
                     "Dated blocks appended by `bench/run_all.py` (`make bench`); how to read "
                     "them: docs/performance.md#reading-a-ratio.", *block]
        RESULTS.write_text(text.rstrip("\n") + "\n" + "\n".join(block) + "\n")


if __name__ == "__main__":
    main()
