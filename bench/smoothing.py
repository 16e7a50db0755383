"""Benchmark: rbg's randomized-smoothing CERTIFY against ART 1.20.1's
``PyTorchRandomizedSmoothing.certify``, same model, images, n0, n, alpha, sigma and batch.

Claim (issue 30): rbg certifies >= 10x as many images per second as ART, and its peak memory
does not grow with n (ART builds the n noisy copies of an image on the host at once).

* rbg: the ``smoothing`` family's CERTIFY (``class_counts`` for the n0 selection and the n
  estimation draws, ``batch`` noisy images per forward pass, noise drawn where the model runs,
  then ``smoothing_stats.certify``); PREDICT, which the family also runs, is not timed;
* ART: ``PyTorchRandomizedSmoothing(sample_size=n0, scale=sigma, alpha=alpha).certify(x, n,
  batch_size=batch)``. ART's certify has no n0 argument: its selection draws are
  ``self.sample_size`` (art/estimators/certification/randomized_smoothing/
  randomized_smoothing.py, line 164), the constructor's ``sample_size``, which is also the
  number of draws of its ``predict``; so the constructor gets ``sample_size=n0``.

Models, trained on mnist5k (SGD as bench/deepfool.py, ``--epochs``): (a) a smallcnn, whose
forward passes dominate on a CPU; (b) a linear classifier on the pixels, whose forward pass
costs little, so the rest of each side's work (noise, per-image loop, copies) shows, as it
does where the forward pass is fast (a GPU).

Images/s: both sides in this process, on the same test images, alternately (the order flips
every repeat), the median time of the certify call. Peak memory: one fresh subprocess per
(case, side, n): the peak resident set during one certify call minus the resident set just
before it (Linux ``VmHWM`` of /proc/self/status, reset through /proc/self/clear_refs, minus
``VmRSS``), after loading the model and one warm-up forward of ``batch`` images: host memory,
numpy's and torch's alike (tracemalloc would miss torch's). ``--threads`` intra-op threads a
side. Agreement: on the same counts, ART's Clopper-Pearson bound (statsmodels'
``proportion_confint(method="beta")`` at 2 alpha) against rbg's; the certified accuracy and
ACR of both sides on more images at n = 1,000 (different noise: equal within sampling noise).

Sizes: ``--quick``: 2 images timed, 3 repeats, smallcnn at n = 1,000, 2,000 and linear at
n = 1,000, 10,000; agreement on 100 images (linear); about 3 minutes on the shared 2-core CPU
under load. Full (default): 2 images, 1 repeat, smallcnn at n = 1,000, 10,000, linear at
n = 1,000, 10,000, 100,000; agreement on 200 (linear) and 20 (smallcnn) images; about 10
minutes. The smallcnn ran at 200 to 600 forward images/s under that load, so n = 100,000 on
it would take over 15 minutes a side: the linear case carries the largest n.

Needs ``adversarial-robustness-toolbox==1.20.1`` (``pip install --no-deps``, then ``six`` to
import it and ``statsmodels`` for its certify).

Usage: ``.venv/bin/python bench/smoothing.py [--quick] [--threads N] [--cases a,b]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

N0, ALPHA, SIGMA, BATCH = 100, 0.001, 0.25, 1000
# per size: n per case, images timed, repeats, and the images of the agreement check per case
SIZES = {"quick": ({"smallcnn": (1000, 2000), "linear": (1000, 10_000)}, 2, 3, {"linear": 100}),
         "full": ({"smallcnn": (1000, 10_000), "linear": (1000, 10_000, 100_000)}, 2, 1,
                  {"linear": 200, "smallcnn": 20})}
AGREE_N = 1000


def build(case: str) -> nn.Module:
    if case == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    from robustbench_graph.data import dataset_info
    from robustbench_graph.models import create_model

    return create_model("smallcnn", dataset_info("mnist5k"))


def train(case: str, epochs: int) -> nn.Module:
    """``case`` trained on mnist5k: SGD, lr 0.05, momentum 0.9, batch 100, seed 0."""
    from quick_train import sgd_cross_entropy

    from robustbench_graph.data import load_dataset

    torch.manual_seed(0)
    model = build(case)
    data = load_dataset("mnist5k", True)
    return sgd_cross_entropy(model, data.float(), data.labels, epochs=epochs)


def test_images(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    from robustbench_graph.data import load_dataset

    test = load_dataset("mnist5k", False)
    return test.float()[:count], test.labels[:count]


def rbg_certify(model: nn.Module, x: torch.Tensor, n: int, batch: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """The family's CERTIFY path (select, estimate, bound), seeded per image."""
    from robustbench_graph.config import stable_seed
    from robustbench_graph.perturbations import smoothing_stats as stats
    from robustbench_graph.perturbations.smoothing import class_counts

    def classify(z: torch.Tensor) -> torch.Tensor:
        return model(z).argmax(1)

    counts = [class_counts(classify, x, 10, draws, SIGMA,
                           lambda row, block, p=phase: stable_seed("bench", p, row, block),
                           batch).numpy()
              for phase, draws in (("select", N0), ("estimate", n))]
    prediction, _, radius = stats.certify(counts[0], counts[1], SIGMA, ALPHA)
    return prediction, radius


def art_classifier(model: nn.Module, sample_size: int = N0):  # noqa: ANN201
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    return PyTorchRandomizedSmoothing(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
        device_type="cpu", sample_size=sample_size, scale=SIGMA, alpha=ALPHA)


def certifier(side: str, model: nn.Module, n: int, batch: int
              ) -> Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]:
    """``side``'s certify of a batch of images at ``n``, its imports done (and warm)."""
    if side == "art":
        from statsmodels.stats.proportion import proportion_confint  # noqa: F401 (ART's)

        art = art_classifier(model)
        np.random.seed(0)
        return lambda x: art.certify(x.numpy(), n=n, batch_size=batch)
    from robustbench_graph.perturbations.smoothing import class_counts  # noqa: F401
    return lambda x: rbg_certify(model, x, n, batch)


def memory(field: str) -> int:
    """``VmRSS`` (resident set) or ``VmHWM`` (its high-water mark) of this process, KiB."""
    for text in Path("/proc/self/status").read_text().splitlines():
        if text.startswith(field + ":"):
            return int(text.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(args: argparse.Namespace) -> None:
    """One side, one n, in a fresh process: the growth of the resident peak during certify."""
    torch.set_num_threads(args.threads)
    model = build(args.case)
    model.load_state_dict(torch.load(args.weights, weights_only=True))
    model.eval()
    x, _ = test_images(args.images)
    with torch.inference_mode():
        model(torch.rand(args.batch, 1, 28, 28))  # warm-up at the batch size
    certify = certifier(args.child, model, args.n, args.batch)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
    rss0 = memory("VmRSS")
    t0 = time.perf_counter()
    certify(x)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_mib": (memory("VmHWM") - rss0) / 1024}))


def bound_agreement() -> float:
    """The largest difference of ART's and rbg's lower bounds on the same counts."""
    from robustbench_graph.perturbations import smoothing_stats as stats

    art = art_classifier(nn.Linear(1, 1))
    worst = 0.0
    for n in (100, 1000, 100_000):
        k = np.unique(np.linspace(1, n, 25).astype(int))
        mine = stats.clopper_pearson_lower(k, n, ALPHA)
        theirs = np.array([art._lower_confidence_bound(int(j), n) for j in k])
        worst = max(worst, float(np.abs(mine - theirs).max()))
    return worst


def spawn(side: str, case: str, n: int, images: int, weights: Path, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, "--case", case, "--n", str(n),
         "--images", str(images), "--weights", str(weights), "--threads", str(threads),
         "--batch", str(BATCH)], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{side} n={n} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(case: str, model: nn.Module, weights: Path, ns: tuple[int, ...], images: int,
            repeats: int, threads: int) -> list[dict]:
    """Per n: median images/s of each side (in this process, interleaved), the growth of
    each side's resident peak (one fresh process per side), their certified accuracy."""
    x, labels = test_images(images)
    rows = []
    for n in ns:
        sides = {side: certifier(side, model, n, BATCH) for side in ("art", "rbg")}
        seconds: dict[str, list[float]] = {"art": [], "rbg": []}
        first = {}
        for r in range(repeats):
            for side in tuple(sides)[:: 1 if r % 2 == 0 else -1]:
                t0 = time.perf_counter()
                got = sides[side](x)
                seconds[side].append(time.perf_counter() - t0)
                first.setdefault(side, got)
        row = {"case": case, "n": n, "images": images}
        for side in sides:
            row[f"{side}_ips"] = images / statistics.median(seconds[side])
            row[f"{side}_mib"] = spawn(side, case, n, images, weights, threads)["peak_mib"]
            prediction, radius = first[side]
            ok = (np.asarray(prediction) == labels.numpy())
            row[f"{side}_certified"] = float(ok.mean())
            row[f"{side}_radius"] = float(np.where(ok, radius, 0.0).mean())
        rows.append(row | {"ratio": row["rbg_ips"] / row["art_ips"]})
        print(line(rows[-1]), flush=True)
    return rows


def line(r: dict) -> str:
    return (f"{r['case']:<9} n={r['n']:<7} ART {r['art_ips']:8.2f} img/s  rbg "
            f"{r['rbg_ips']:8.2f} img/s  ratio {r['ratio']:6.2f}x  peak growth ART "
            f"{r['art_mib']:7.1f} MiB  rbg {r['rbg_mib']:6.1f} MiB  certified acc ART "
            f"{r['art_certified']:.2f} rbg {r['rbg_certified']:.2f} (of {r['images']}), "
            f"ACR {r['art_radius']:.3f}/{r['rbg_radius']:.3f}")


def agreement(case: str, model: nn.Module, images: int) -> dict:
    """Both sides once on ``images`` images at n = AGREE_N: certified accuracy at r = 0 and
    0.5 and the ACR of each, and the binomial sd of a certified accuracy on that many."""
    x, labels = test_images(images)
    row = {"case": case, "images": images, "n": AGREE_N}
    for side in ("art", "rbg"):
        prediction, radius = certifier(side, model, AGREE_N, BATCH)(x)
        ok = np.asarray(prediction) == labels.numpy()
        row[side] = (float(ok.mean()), float((ok & (np.asarray(radius) >= 0.5)).mean()),
                     float(np.where(ok, radius, 0.0).mean()))
    p = row["rbg"][0]
    row["sd"] = float(np.sqrt(p * (1 - p) / images))
    return row


def agreement_line(r: dict) -> str:
    (a0, a5, aacr), (b0, b5, bacr) = r["art"], r["rbg"]
    return (f"{r['case']:<9} agreement, n={r['n']} on {r['images']} images: certified acc "
            f"r=0 ART {a0:.3f} rbg {b0:.3f}, r=0.5 ART {a5:.3f} rbg {b5:.3f} (binomial sd of "
            f"one {r['sd']:.3f}), ACR ART {aacr:.3f} rbg {bacr:.3f}")


def run(quick: bool, threads: int, cases: tuple[str, ...] | None = None, epochs: int = 1
        ) -> tuple[list[dict], list[dict], float]:
    """Train, save, compare every case at every n, check agreement; returns the speed rows,
    the agreement rows and the bound check."""
    ns, images, repeats, agree = SIZES["quick" if quick else "full"]
    rows, agreed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases or tuple(ns):
            weights = Path(tmp) / f"{case}.pt"
            model = train(case, epochs)
            torch.save(model.state_dict(), weights)
            rows += compare(case, model, weights, ns[case], images, repeats, threads)
            if case in agree:
                agreed.append(agreement(case, model, agree[case]))
                print(agreement_line(agreed[-1]), flush=True)
    return rows, agreed, bound_agreement()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small size (about 3 min)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per side")
    parser.add_argument("--epochs", type=int, default=1, help="mnist5k training epochs")
    parser.add_argument("--cases", default=None, help="comma-separated: smallcnn, linear")
    parser.add_argument("--child", choices=("art", "rbg"), help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)  # the child's model file
    parser.add_argument("--batch", type=int, default=BATCH, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import art
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, ART {art.__version__}, {args.threads} threads per side, "
          f"n0 {N0}, alpha {ALPHA}, sigma {SIGMA}, batch {BATCH}; load "
          "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    cases = tuple(args.cases.split(",")) if args.cases else None
    _, _, worst = run(args.quick, args.threads, cases, args.epochs)
    print(f"Clopper-Pearson lower bound on the same counts, ART against rbg: max abs diff "
          f"{worst:.1e}", flush=True)


if __name__ == "__main__":
    main()
