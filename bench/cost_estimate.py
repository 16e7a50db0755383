"""Benchmark: the cost estimate `rbg attack` prints before work starts, against the measured
time of each family (issue 32).

Claim: on an mnist5k smallcnn run, each family of ``--suite all`` takes between half and
twice the time the estimate gives it (``experiment.cost``: the family's declared
``passes`` priced by a short timed probe of the network), at the same settings.

For each family, one at a time, in this process: the estimate of that family alone
(``estimate_run``, as ``rbg attack`` prints it) and the family's measured time through
``attack_run`` (the seconds of its cells, as ``rbg attack``'s "cost measured" line; run on a
copy of the run folder with ``overwrite``, so the run's own results are untouched). Each is
taken ``--repeats`` times (default 2) and the lower kept: the CPU is shared with other work,
which only ever slows a run. The load average is printed before and after.

Families that are slow at their defaults run with fewer images or draws (``SETTINGS``
below); the estimate is made with exactly the same settings. ``--full`` uses the defaults
(tens of minutes on 2 cores).

Runtime on a busy 2-core CPU: about 5 min with a run given (``--run``), plus about 1.5 min to
train one (3 epochs) when none is.

Usage: ``.venv/bin/python bench/cost_estimate.py [--run DIR] [--families a,b] [--repeats N]
[--full] [--device cpu|cuda]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import torch

from robustbench_graph.allocator import tune_malloc
from robustbench_graph.attack import TestSplits, attack_run
from robustbench_graph.config import AttackConfig, ImageSubset, TrainConfig
from robustbench_graph.device import resolve_device
from robustbench_graph.experiment.cost import EARLY_STOP, estimate_run
from robustbench_graph.perturbations import suite_names
from robustbench_graph.train import plan_runs, train_run

# (settings, test images) per family, cut so that the whole table takes a few minutes;
# None: all test images (1,000 on mnist5k). ``--full``: every family at its defaults.
SETTINGS: dict[str, tuple[dict[str, str], int | None]] = {
    "gaussian": ({"draws": "4"}, 500),
    "gaussian-iid": ({"draws": "4"}, 500),
    "uniform-noise": ({"draws": "4"}, 500),
    "patches": ({"draws": "4"}, 500),
    "gaussian-patches": ({"draws": "4"}, 500),
    "dropout": ({"repeats": "4"}, 500),
    "mnist-c": ({"severity": "1,3,5"}, 300),
    "fgsm-before-norm": ({}, 500),
    "fgsm-after-norm": ({}, 500),
    "curvature": ({}, 100),
    "pgd": ({}, 500),
    "autoattack": ({}, 100),
    "deepfool": ({"samples": "300"}, None),
    "smoothing": ({"samples": "20", "n": "200"}, None),
    "lipschitz": ({"images": "200", "draws": "10", "radius": "0.25,0.5,1,1.5"}, None),
}


def train_one(out: Path, device: str) -> Path:
    """A smallcnn trained with cross-entropy on mnist5k, 3 epochs (as `rbg train`)."""
    (spec,) = plan_runs(TrainConfig(dataset="mnist5k", model="smallcnn", loss="ce", epochs=3),
                        [0], out)
    train_run(spec, device=resolve_device(device))
    return spec.run_dir


def settings_of(name: str, full: bool) -> tuple[dict[str, dict[str, str]], int | None, str]:
    values, samples = ({}, None) if full else SETTINGS.get(name, ({}, None))
    text = ", ".join([f"{k}={v}" for k, v in values.items()]
                     + ([f"--samples {samples}"] if samples else [])) or "defaults"
    return ({name: values} if values else {}), samples, text


def measure(run: Path, name: str, cfg: AttackConfig, dev: torch.device, splits: TestSplits,
            work: Path) -> float:
    """Seconds of the family's cells through ``attack_run`` on a copy of the run folder."""
    copy = work / run.name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("results.csv", "*.per-image*",
                                                             ".attack*", ".autoattack*"))
    report = attack_run(copy, [name], cfg, device=dev, overwrite=True, splits=splits)
    return sum(report.seconds.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="an mnist5k run folder (default: train one)")
    parser.add_argument("--families", help="comma list (default: --suite all of the run)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="every family at its defaults")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    tune_malloc()
    dev = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or train_one(Path(tmp) / "runs", args.device)
        names = args.families.split(",") if args.families else suite_names("all", "grey")
        splits, rows = TestSplits(), []
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
              flush=True)
        for name in names:
            settings, samples, text = settings_of(name, args.full)
            cfg = AttackConfig(settings=settings, test_images=ImageSubset(samples))
            ests, times = [], []
            for _ in range(args.repeats):
                est = estimate_run(run, name, cfg, dev, splits)
                ests.append((est.families[0].seconds, est.families[0]))
                times.append(measure(run, name, cfg, dev, splits, Path(tmp) / "work"))
            seconds, fam = min(ests, key=lambda e: e[0])
            took = min(times)
            ratio = seconds / took if took > 0 else float("inf")
            rows.append((name, text, ("≤" if fam.at_most else "") + f"{seconds:.2f}",
                         f"{took:.2f}", f"{ratio:.2f}", "yes" if 0.5 <= ratio <= 2 else "no",
                         f"{fam.forward}/{fam.backward}"))
            print(f"  {name}: estimate {seconds:.2f} s, measured {took:.2f} s "
                  f"(each the lower of {args.repeats})", flush=True)
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    head = ("family", "settings", "estimated s", "measured s", "ratio", "within 2x",
            "passes fwd/bwd")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
              + " |")
    print("ratio: estimate / measured; ≤: marked by the estimator as an attack that stops "
          f"early ({', '.join(sorted(EARLY_STOP))})")


if __name__ == "__main__":
    main()
