"""Choose the loss presets from a validation sweep (docs/losses.md#presets; issue #28).

Reads every run folder under RUNS (the shipped ``loss-sweep-mnist5k`` experiment), takes the
validation accuracy of each run's last epoch from ``train_log.csv`` (never the test split),
the median over seeds per configuration, and applies the declared rule:

* CE and losses whose swept option has no strength order (GSL's gradient clip): the
  configuration with the best median validation accuracy;
* every other loss: the *strongest* configuration whose median validation accuracy is within
  ``--budget`` points (1.5, the papers' parity claims) of CE's best, else its most accurate.

Prints the Markdown table that docs/losses.md#presets holds. With ``--by epochs`` the swept
value is the training length instead of a loss option (``gsl-epochs-mnist5k``), and each loss
gets its most accurate length.

    python scripts/loss_sweep.py /tmp/exp/loss-sweep-mnist5k
    python scripts/loss_sweep.py /tmp/exp/gsl-epochs-mnist5k --by epochs
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

# The swept option of each loss and the direction in which it is stronger (+1: larger is
# stronger, -1: smaller is stronger, 0: no order). CE's sweep is of the learning rate.
STRENGTH = {"ce": ("lr", 0), "laplacian": ("gamma", +1), "gsl": ("clip", 0),
            "lmd": ("lam", +1), "lmd-noise": ("sigma", +1), "noisy": ("sigma", +1),
            "both": ("sigma", +1), "stability": ("sigma", +1), "sp": ("p_star", -1)}


def last_val_accuracy(run: Path) -> float | None:
    rows = list(csv.DictReader((run / "train_log.csv").open()))
    vals = [(int(r["epoch"]), float(r["value"])) for r in rows
            if r["split"] == "val" and r["metric"] == "accuracy"]
    return max(vals)[1] if vals else None


def collect(root: Path, by: str = "option") -> tuple[dict[tuple[str, float], list[float]],
                                                    dict[tuple[str, float], int]]:
    """Last-epoch validation accuracies per (loss, swept value), and the number of runs per
    configuration that failed (diverged: the loss became NaN)."""
    out: dict[tuple[str, float], list[float]] = {}
    failed: dict[tuple[str, float], int] = {}
    for cfg_path in sorted(root.glob("*/config.json")):
        record = json.loads(cfg_path.read_text())
        train = record["train"]
        loss = train["loss"]
        option, _ = STRENGTH[loss]
        if by == "epochs":
            key = (loss, float(train["epochs"]))
        else:
            key = (loss, float(train["lr"] if option == "lr" else train["loss_options"][option]))
        status_path = cfg_path.parent / "status.json"
        status = json.loads(status_path.read_text()) if status_path.exists() else {}
        if status.get("status") == "failed":
            failed[key] = failed.get(key, 0) + 1
            out.setdefault(key, [])
            continue
        acc = last_val_accuracy(cfg_path.parent) if status.get("status") == "complete" else None
        if acc is not None:
            out.setdefault(key, []).append(acc)
    return out, failed


def choose(cells: dict[tuple[str, float], list[float]], failed: dict[tuple[str, float], int],
           budget: float, by: str = "option") -> tuple[dict[str, float], float]:
    """The chosen value per loss (a configuration with a diverged seed is never chosen)."""
    med = {k: statistics.median(v) for k, v in cells.items() if v and not failed.get(k)}
    ce_best = max(v for (loss, _), v in med.items() if loss == "ce")
    chosen = {}
    for loss, (_, order) in STRENGTH.items():
        values = sorted(v for (name, v) in med if name == loss)
        if not values:
            continue
        most_accurate = max(values, key=lambda v: (med[(loss, v)], -values.index(v)))
        if order == 0 or by == "epochs":
            chosen[loss] = most_accurate
            continue
        strong_first = sorted(values, reverse=order > 0)
        within = [v for v in strong_first if med[(loss, v)] >= ce_best - budget / 100]
        chosen[loss] = within[0] if within else most_accurate
    return chosen, ce_best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--budget", type=float, default=1.5, help="points below CE's best")
    parser.add_argument("--by", choices=("option", "epochs"), default="option",
                        help="the swept value: each loss's option, or the training length")
    args = parser.parse_args()
    cells, failed = collect(args.runs, args.by)
    chosen, ce_best = choose(cells, failed, args.budget, args.by)
    print(f"CE's best median validation accuracy: {100 * ce_best:.2f}%; budget "
          f"{args.budget} pt -> floor {100 * ce_best - args.budget:.2f}%\n")
    print("| loss | option | value | seeds | validation accuracy %, median [min–max] "
          "| chosen |")
    print("|---|---|---:|---:|---|:---:|")
    for (loss, value), accs in sorted(cells.items(), key=lambda kv: (
            list(STRENGTH).index(kv[0][0]), kv[0][1])):
        mark = "**yes**" if chosen.get(loss) == value else ""
        n_failed = failed.get((loss, value), 0)
        cell = (f"{100 * statistics.median(accs):.2f} [{100 * min(accs):.2f}–"
                f"{100 * max(accs):.2f}]" if accs else "–")
        if n_failed:
            cell += f"; {n_failed} diverged (NaN loss)"
        swept = "epochs" if args.by == "epochs" else STRENGTH[loss][0]
        print(f"| {loss} | {swept} | {value:g} | {len(accs) + n_failed} | "
              f"{cell} | {mark} |")


if __name__ == "__main__":
    main()
