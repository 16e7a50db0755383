"""scripts/loss_sweep.py: reads validation accuracy only, and chooses by its declared rules."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import load_script


def _run(root: Path, name: str, loss: str, epochs: int, val: float, test: float,
         options: dict | None = None) -> None:
    run = root / name
    run.mkdir(parents=True)
    train = {"loss": loss, "epochs": epochs, "lr": 0.05, "loss_options": options or {}}
    (run / "config.json").write_text(json.dumps({"train": train}))
    (run / "status.json").write_text(json.dumps({"status": "complete"}))
    rows = ["epoch,split,metric,value"]
    for epoch in range(1, epochs + 1):
        # an earlier epoch better than the last: the last one counts
        rows += [f"{epoch},val,accuracy,{val + (0.01 if epoch < epochs else 0)}",
                 f"{epoch},test,accuracy,{test}"]
    (run / "train_log.csv").write_text("\n".join(rows) + "\n")


def test_the_epochs_sweep_picks_each_loss_most_accurate_length_from_validation(tmp_path):
    sweep = load_script("loss_sweep")
    for seed in range(3):
        _run(tmp_path, f"ce-{seed}", "ce", 5, 0.96, 0.50)
        _run(tmp_path, f"ce-{seed}-e10", "ce", 10, 0.97, 0.10)
        _run(tmp_path, f"gsl-{seed}", "gsl", 5, 0.88, 0.99, {"clip": 2.0})
        _run(tmp_path, f"gsl-{seed}-e10", "gsl", 10, 0.95, 0.10, {"clip": 2.0})
        _run(tmp_path, f"gsl-{seed}-e20", "gsl", 20, 0.97, 0.10, {"clip": 2.0})
    cells, failed = sweep.collect(tmp_path, "epochs")
    assert set(cells) == {("ce", 5.0), ("ce", 10.0), ("gsl", 5.0), ("gsl", 10.0),
                          ("gsl", 20.0)} and not failed
    assert cells[("gsl", 20.0)] == [0.97] * 3  # the last epoch's validation accuracy
    chosen, ce_best = sweep.choose(cells, failed, 1.5, "epochs")
    # the test accuracies (best at 5 epochs) play no part
    assert chosen == {"ce": 10.0, "gsl": 20.0} and ce_best == 0.97
    # by option, the same runs are one configuration per loss (GSL's clip 2)
    cells, _ = sweep.collect(tmp_path)
    assert set(cells) == {("ce", 0.05), ("gsl", 2.0)} and len(cells[("gsl", 2.0)]) == 9
