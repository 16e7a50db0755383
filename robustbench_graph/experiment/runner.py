"""``rbg run``: plan an experiment, skip what is done, run the rest on an executor, report."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .scheduler import OnOutcome
from .spec import Experiment
from .units import Unit, plan, state

if TYPE_CHECKING:
    from ..report import Report


@dataclass
class RunSummary:
    """What one ``rbg run`` did."""

    units: list[Unit]
    already_done: list[Unit]
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    report_error: str | None = None
    built: Report | None = None  # the report written (its claims' verdicts, for the terminal)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [o for o in self.outcomes if o["status"] == "failed"]


def states(units: list[Unit]) -> list[tuple[str, str]]:
    """:func:`.units.state` of each unit, without a look at the disk per unit whose run
    folder and lock file are both absent (it is pending): the folders are listed once, so a
    new grid of 10^5 units is described in seconds."""
    listed: dict[str, set[str]] = {}
    out = []
    for u in units:
        parent, name = os.path.split(u.run_dir)
        if parent not in listed:
            try:
                listed[parent] = set(os.listdir(parent or "."))
            except OSError:
                listed[parent] = set()
        if name in listed[parent] or f".{name}.{u.kind}.lock" in listed[parent] \
                or f".{name}.{u.kind}.failed.json" in listed[parent]:
            out.append(state(u))
        else:
            out.append(("pending", "waits for its training" if u.kind == "attack" else ""))
    return out


def describe(units: list[Unit]) -> list[dict[str, Any]]:
    """One row per unit: id, kind, run, state, message (for --dry-run and status)."""
    return [{"id": u.id, "kind": u.kind, "run": os.path.basename(u.run_dir), "state": st,
             "message": message} for u, (st, message) in zip(units, states(units), strict=True)]


def todo(units: list[Unit]) -> tuple[list[Unit], list[Unit]]:
    """(units to run, units already done)."""
    run, done = [], []
    for u, (st, _) in zip(units, states(units), strict=True):
        (done if st == "done" else run).append(u)
    return run, done


def run_experiment(exp: Experiment, executor: Any, *, device: str = "auto",
                   on_outcome: OnOutcome | None = None, report: bool = True,
                   on_planned: Callable[[int], None] | None = None) -> RunSummary:
    """Run every unit of ``exp`` not yet done on ``executor``, then write the report of
    ``exp.out`` into ``exp.out / "report"`` (when at least one run has results).
    ``on_planned`` hears how many units are already done, before any runs."""
    units = plan(exp, device)
    exp.out.mkdir(parents=True, exist_ok=True)
    pending, done = todo(units)
    if on_planned is not None:
        on_planned(len(done))
    summary = RunSummary(units, done)
    if pending:
        summary.outcomes = executor.run(pending, on_outcome or (lambda _o: None))
    if report:
        from ..config import ReportConfig
        from ..errors import RbgError
        from ..report import build_report
        from ..report.collect import NoUsableResults

        try:
            summary.built = build_report(
                exp.out, exp.out / "report",
                ReportConfig(baseline=exp.baseline, plots=exp.plots, columns=exp.columns,
                             claims=exp.claims))
            summary.report = exp.out / "report" / "index.html"
        except (RbgError, NoUsableResults) as err:
            summary.report_error = str(err)
    return summary
